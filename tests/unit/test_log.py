"""lfs_agent.log: records below the level cost no import; the rest reach logging."""

from __future__ import annotations

import logging
import subprocess
import sys

from lfs_agent import log


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "import sys\nfrom lfs_agent import log\n" + code],
        capture_output=True,
        text=True,
        check=True,
    )


def test_records_below_the_level_import_nothing_and_the_first_kept_one_sets_up_logging():
    out = run(
        "log.configure(log.WARNING)\n"
        "logger = log.get_logger('lfs_agent.x')\n"
        "logger.debug('dropped %s', 1)\n"
        "logger.info('dropped too')\n"
        "print('logging' in sys.modules)\n"
        "logger.warning('kept %s', 'here')\n"
        "print('logging' in sys.modules)\n"
    )
    assert out.stdout.split() == ["False", "True"]
    assert out.stderr == "lfs-agent: kept here\n"


def test_at_debug_the_handler_is_in_place_for_the_sdk_backends_own_loggers():
    out = run(
        "log.configure(log.DEBUG)\n"
        "import logging\n"
        "logging.getLogger('lfs_agent.backends.s3').debug('from the backend')\n"
        "log.get_logger('lfs_agent.git').debug('run %s', 'git status')\n"
    )
    assert out.stderr == "lfs-agent: from the backend\nlfs-agent: run git status\n"


def test_exception_adds_the_traceback():
    out = run(
        "log.configure(log.WARNING)\n"
        "try:\n"
        "    raise ValueError('boom')\n"
        "except ValueError:\n"
        "    log.get_logger('lfs_agent.t').exception('failed %s', 'x')\n"
    )
    assert out.stderr.startswith("lfs-agent: failed x\nTraceback")
    assert "ValueError: boom" in out.stderr


def test_without_configure_every_record_goes_to_logging(caplog):
    logger = log.get_logger("lfs_agent.unconfigured")
    with caplog.at_level(logging.DEBUG, logger="lfs_agent.unconfigured"):
        logger.debug("seen %d", 1)
        logger.error("seen %s", "too")
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("DEBUG", "seen 1"),
        ("ERROR", "seen too"),
    ]
    assert caplog.records[0].funcName == "test_without_configure_every_record_goes_to_logging"


def test_the_first_records_of_several_threads_set_up_one_handler():
    out = run(
        "import threading\n"
        "log.configure(log.WARNING)\n"
        "logger = log.get_logger('lfs_agent.t')\n"
        "start = threading.Barrier(8)\n"
        "def first(i):\n"
        "    start.wait()\n"
        "    logger.warning('thread %d', i)\n"
        "threads = [threading.Thread(target=first, args=(i,)) for i in range(8)]\n"
        "for t in threads: t.start()\n"
        "for t in threads: t.join()\n"
        "import logging\n"
        "print(len(logging.getLogger('lfs_agent').handlers))\n"
    )
    assert out.stdout.strip() == "1"
    assert sorted(out.stderr.splitlines()) == sorted(f"lfs-agent: thread {i}" for i in range(8))


def test_is_enabled_for_follows_the_configured_level_and_pkt_lines_log_only_then():
    out = run(
        "import io\n"
        "from lfs_agent.pktline import PktLineReader, PktLineWriter\n"
        "logger = log.get_logger('lfs_agent.t')\n"
        "print(logger.is_enabled_for(log.DEBUG))\n"  # unconfigured: logging decides
        "log.configure(log.WARNING)\n"
        "print(logger.is_enabled_for(log.DEBUG), logger.is_enabled_for(log.WARNING))\n"
        "quiet = PktLineReader(io.BytesIO(b'0009quiet0000').read)\n"
        "print(quiet.read_packet(), quiet.read_packet())\n"
        "log.configure(log.DEBUG)\n"
        "loud = PktLineReader(io.BytesIO(b'0008loud0000').read)\n"
        "print(loud.read_packet(), loud.read_packet())\n"
        "out = io.BytesIO()\n"
        "writer = PktLineWriter(out.write, out.flush)\n"
        "writer.write_text_list(['sent'])\n"
    )
    assert out.stdout.split("\n")[:4] == ["True", "False True", "b'quiet' None", "b'loud' None"]
    assert out.stderr == (
        "lfs-agent: git> b'loud'\nlfs-agent: git> 0000\n"
        "lfs-agent: git< b'sent\\n'\nlfs-agent: git< 0000\n"
    )
