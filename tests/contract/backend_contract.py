"""The contract every backend passes, as a mixin.

A test module subclasses :class:`BackendContract` and provides a ``remote_url`` fixture
(and, where needed, ``backend_env``, the environment for child processes, and
``backend_options``, e.g. a small part size so that a kill lands mid-upload). The same
tests then run against the local folder, S3, GCS and HTTP backends.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lfs_agent.backends import Backend, Capability, open_backend
from lfs_agent.errors import ConfigError, IntegrityError, ObjectNotFoundError
from lfs_agent.pointer import Pointer
from lfs_agent.remote import Remote
from tests.helpers import random_bytes, sha256

SLOW_UPLOAD = """
import json, sys, time
from pathlib import Path
from lfs_agent.backends import open_backend
backend = open_backend(sys.argv[1], json.loads(sys.argv[5]))
def progress(delta):
    print("progress", delta, flush=True)
    time.sleep(0.05)
backend.upload(sys.argv[2], Path(sys.argv[3]), int(sys.argv[4]), progress)
print("done", flush=True)
"""


class Recorder:
    def __init__(self) -> None:
        self.total = 0
        self.calls = 0

    def __call__(self, delta: int) -> None:
        self.total += delta
        self.calls += 1


class BackendContract:
    """Behaviour shared by all backends."""

    #: Whether downloads hash what they write (the caller then reads nothing back).
    hashes_downloads = True

    @pytest.fixture
    def backend_env(self) -> dict[str, str]:
        return dict(os.environ)

    @pytest.fixture
    def backend_options(self) -> dict[str, str]:
        return {}

    @pytest.fixture
    def backend(self, remote_url: str, backend_options: dict[str, str]) -> Backend:
        b = open_backend(remote_url, backend_options)
        yield b
        b.close()

    def _file(self, tmp_path: Path, data: bytes, name: str = "src") -> Path:
        path = tmp_path / name
        path.write_bytes(data)
        return path

    def test_stat_of_an_absent_object_is_none(self, backend):
        assert backend.stat(sha256(b"absent")) is None

    def test_stat_many_settles_only_truthfully(self, backend, tmp_path):
        present = {}
        for i in range(20):
            data = b"object %d" % i
            backend.upload(sha256(data), self._file(tmp_path, data), len(data), Recorder())
            present[sha256(data)] = len(data)
        absent = [sha256(b"absent %d" % i) for i in range(20)]
        remote = Remote(backend.url, opener=lambda *_: backend)
        answer = remote.stat_many([*present, *absent])
        # A backend may settle none (it stats one by one), never a wrong one.
        assert set(answer) <= {*present, *absent}
        for oid, size in answer.items():
            assert size == present.get(oid), oid

    def test_a_backend_has_the_methods_of_what_it_declares_and_declares_what_it_has(self, backend):
        methods = {
            Capability.LINK: ["links_into"],
            Capability.LISTING: ["stat_many"],
            Capability.RESUMABLE_UPLOADS: ["abort_stale_uploads"],
            Capability.RECORDS: ["put_meta", "get_meta", "list_meta"],
            Capability.COLLECT: [
                "list_entries",
                "stat_entry",
                "create_meta",
                "delete_entries",
                "versioned",
                "undelete",
            ],
        }
        assert set(methods) == set(Capability)
        for capability, names in methods.items():
            for name in names:
                declared = capability in backend.capabilities
                assert declared == callable(getattr(backend, name, None)), (capability, name)
        assert Capability.RECORDS in backend.capabilities  # tag metrics need every kind

    def test_upload_then_stat_and_download_round_trip(self, backend, tmp_path):
        data = random_bytes(300_000, seed=1)
        oid = sha256(data)
        progress = Recorder()
        backend.upload(oid, self._file(tmp_path, data), len(data), progress)
        assert backend.stat(oid) == len(data)
        assert progress.total == len(data)
        dest = tmp_path / "dest"
        down = Recorder()
        backend.download(oid, dest, len(data), down)
        assert dest.read_bytes() == data
        assert down.total == len(data)

    def test_a_download_reports_the_hash_of_what_its_file_holds(self, backend, tmp_path):
        data = random_bytes(3 * 1024 * 1024 + 7, seed=4)
        oid = sha256(data)
        backend.upload(oid, self._file(tmp_path, data), len(data), Recorder())
        # Into no file, and over partial files of an earlier attempt, right and wrong.
        for name, before in (
            ("new", None),
            ("partial", data[:1_000_000]),
            ("went-wrong", b"!" * 1_000_000),
        ):
            dest = tmp_path / name
            if before is not None:
                dest.write_bytes(before)
            hashed = backend.download(oid, dest, len(data), Recorder())
            held = dest.read_bytes()
            assert len(held) == len(data), name
            if self.hashes_downloads:
                assert hashed == Pointer(sha256(held), len(held)), name
            else:
                assert hashed is None, name
            if before is None:
                assert held == data

    def test_reupload_of_a_present_object_is_a_cheap_noop(self, backend, tmp_path):
        data = b"same bytes twice"
        oid = sha256(data)
        src = self._file(tmp_path, data)
        backend.upload(oid, src, len(data), Recorder())
        backend.upload(oid, src, len(data), Recorder())
        assert backend.stat(oid) == len(data)

    def test_download_of_a_missing_object_raises_not_found(self, backend, tmp_path):
        oid = sha256(b"never uploaded")
        with pytest.raises(ObjectNotFoundError, match=oid):
            backend.download(oid, tmp_path / "dest", 14, Recorder())

    def test_upload_of_bytes_that_do_not_match_the_oid_stores_nothing(self, backend, tmp_path):
        oid = sha256(b"the real content")
        src = self._file(tmp_path, b"something else!!")
        with pytest.raises(IntegrityError):
            backend.upload(oid, src, 16, Recorder())
        assert backend.stat(oid) is None

    def test_empty_and_large_chunked_objects_round_trip(self, backend, tmp_path):
        data = random_bytes(5 * 1024 * 1024 + 3, seed=2)
        oid = sha256(data)
        backend.upload(oid, self._file(tmp_path, data), len(data), Recorder())
        dest = tmp_path / "big"
        backend.download(oid, dest, len(data), Recorder())
        assert sha256(dest.read_bytes()) == oid

    def test_a_kill_during_upload_leaves_no_object(
        self, remote_url, backend, backend_env, backend_options, tmp_path
    ):
        data = random_bytes(8 * 1024 * 1024, seed=3)
        oid = sha256(data)
        src = self._file(tmp_path, data)
        env = dict(backend_env)
        env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                SLOW_UPLOAD,
                remote_url,
                oid,
                str(src),
                str(len(data)),
                json.dumps(backend_options),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith(b"progress"), proc.stderr.read() if proc.stderr else line
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        time.sleep(0.1)
        assert backend.stat(oid) is None
        # A later upload completes normally.
        backend.upload(oid, src, len(data), Recorder())
        assert backend.stat(oid) == len(data)

    def test_records_round_trip_and_list(self, backend):
        assert backend.get_meta("meta/tags/v1.json") is None
        assert backend.list_meta("meta/tags/") == []
        backend.put_meta("meta/tags/v1.json", b'{"a": 1}')
        backend.put_meta("meta/tags/v1.json", b'{"a": 2}')
        backend.put_meta("meta/tags/release/v2.json", b"{}")
        backend.put_meta("meta/history/v1/1.json", b"{}")
        assert backend.get_meta("meta/tags/v1.json") == b'{"a": 2}'
        assert backend.list_meta("meta/tags/") == ["meta/tags/release/v2.json", "meta/tags/v1.json"]

    @pytest.mark.parametrize("key", ["../x", "meta/../../x", "objects/aa", "/meta/x", "meta//x"])
    def test_record_keys_cannot_escape(self, backend, key):
        with pytest.raises(ConfigError, match="invalid record key"):
            backend.put_meta(key, b"{}")
