"""What lfs_agent.log writes is safe to show: no password, no raw escape sequence."""

from __future__ import annotations

import subprocess
import sys


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "import sys\nfrom lfs_agent import log\n" + code],
        capture_output=True,
        text=True,
        check=True,
    )


def test_records_are_redacted_and_escaped_and_nothing_is_imported_before_one_is_kept():
    out = run(
        "log.configure(log.WARNING)\n"
        "logger = log.get_logger('lfs_agent.x')\n"
        "logger.debug('dropped %s', 'http://u:S3CRET@h/x')\n"
        "print(sorted(m for m in ('logging', 'lfs_agent.redact') if m in sys.modules))\n"
        "logger.warning('cannot reach %s: %s', 'http://u:S3CRET@h/x', 'no\\x1b[2J\\nroute')\n"
    )
    assert out.stdout == "[]\n"
    assert out.stderr == "lfs-agent: cannot reach http://***@h/x: no\\x1b[2J\nroute\n"


def test_debug_records_of_the_sdk_loggers_and_tracebacks_are_redacted_too():
    out = run(
        "log.configure(log.DEBUG)\n"
        "import logging\n"
        "logging.getLogger('lfs_agent.backends.http').debug('retrying https://t:S3CRET@h')\n"
        "try:\n"
        "    raise OSError('refused by https://t:S3CRET@h?token=S3CRET')\n"
        "except OSError:\n"
        "    log.get_logger('lfs_agent.t').debug('traceback', exc_info=True)\n"
    )
    assert "S3CRET" not in out.stderr
    assert out.stderr.startswith("lfs-agent: retrying https://***@h\nlfs-agent: traceback\n")
    assert "OSError: refused by https://***@h?token=***" in out.stderr
