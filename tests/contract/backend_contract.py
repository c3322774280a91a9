"""The contract every backend passes, as a mixin.

A test module subclasses :class:`BackendContract` and provides a ``remote_url`` fixture
(and, where needed, ``backend_env``, the environment for child processes, and
``backend_options``, e.g. a small part size so that a kill lands mid-upload). The same
tests then run against the local folder, S3, GCS and HTTP backends.

A backend declaring :attr:`Capability.COLLECT` also passes :class:`CollectContract`
(folder, S3, GCS and the in-memory reference backend), which needs a ``backend`` fixture
only, and a ``versioned_backend`` one for the tests of undeleting.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from lfs_agent.backends import (
    Backend,
    Capability,
    CollectingBackend,
    Deleted,
    Entry,
    object_key,
    open_backend,
)
from lfs_agent.errors import BackendError, ConfigError, IntegrityError, ObjectNotFoundError
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


#: How far the store's clock (an entry's ``modified``) may be from ours, in seconds.
CLOCK_SLACK = 5.0


class CollectContract:
    """What garbage collection needs of a backend declaring :attr:`Capability.COLLECT`."""

    #: Seconds a write must come after the one before it for the tag to change with the
    #: same bytes (S3 keeps LastModified to the second); 0 where any rewrite does.
    tag_resolution = 0.0
    #: Why conditional creates and deletes cannot be tested here (an emulator that
    #: ignores them), or None.
    preconditions_untestable: str | None = None

    @pytest.fixture
    def versioned_backend(self) -> CollectingBackend:
        pytest.skip("this backend keeps no earlier versions")

    def _upload(self, backend: CollectingBackend, tmp_path: Path, data: bytes) -> str:
        src = tmp_path / f"obj-{sha256(data)[:12]}"
        src.write_bytes(data)
        backend.upload(sha256(data), src, len(data), Recorder())
        return object_key(sha256(data))

    def _wait_for_a_new_tag(self) -> None:
        """Sleep into the store's next tick of ``tag_resolution`` seconds, if it has one."""
        if self.tag_resolution:
            now = time.time()
            time.sleep(self.tag_resolution - now % self.tag_resolution + 0.05)

    def _needs_preconditions(self) -> None:
        if self.preconditions_untestable:
            pytest.skip(self.preconditions_untestable)

    def test_the_backend_declares_collect(self, backend):
        assert Capability.COLLECT in backend.capabilities

    def test_a_listing_has_sizes_tags_and_the_stores_clock(self, backend, tmp_path):
        keys = {self._upload(backend, tmp_path, b"one"), self._upload(backend, tmp_path, b"three")}
        backend.put_meta("meta/repos/r1.json", b"{}")
        backend.put_meta("meta/tags/v1.json", b"{}")
        listing = backend.list_entries("objects/")
        assert iter(listing) is listing  # a stream, not a list built first
        objects = {e.key: e for e in listing}
        assert set(objects) == keys
        assert sorted(e.size for e in objects.values()) == [3, 5]
        for entry in objects.values():
            assert abs(entry.modified - time.time()) < CLOCK_SLACK
            assert entry.tag
            assert backend.stat_entry(entry.key) == entry
        assert [e.key for e in backend.list_entries("meta/repos")] == ["meta/repos/r1.json"]
        assert list(backend.list_entries("meta/gc/")) == []
        assert backend.stat_entry(object_key(sha256(b"absent"))) is None

    def test_a_rewrite_with_the_same_bytes_changes_the_tag(self, backend):
        backend.put_meta("meta/repos/r.json", b"same")
        before = backend.stat_entry("meta/repos/r.json")
        self._wait_for_a_new_tag()
        backend.put_meta("meta/repos/r.json", b"same")
        after = backend.stat_entry("meta/repos/r.json")
        assert before is not None and after is not None
        assert after.tag != before.tag
        assert after.modified >= before.modified

    def test_create_meta_creates_once_with_the_stores_time(self, backend):
        created = backend.create_meta("meta/gc/lock.json", b'{"a": 1}')
        assert created is not None
        assert created.key == "meta/gc/lock.json"
        assert created.size == 8
        assert abs(created.modified - time.time()) < CLOCK_SLACK
        assert backend.stat_entry("meta/gc/lock.json") == created
        self._needs_preconditions()
        assert backend.create_meta("meta/gc/lock.json", b'{"a": 2}') is None
        assert backend.get_meta("meta/gc/lock.json") == b'{"a": 1}'

    def test_of_two_racing_creates_exactly_one_wins(self, backend):
        self._needs_preconditions()
        barrier = threading.Barrier(2)
        results: dict[int, Entry | None] = {}

        def create(n: int) -> None:
            barrier.wait()
            results[n] = backend.create_meta("meta/gc/race.json", b'{"n": %d}' % n)

        threads = [threading.Thread(target=create, args=(n,)) for n in (1, 2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        winners = [n for n, entry in results.items() if entry is not None]
        assert len(winners) == 1, results
        assert backend.get_meta("meta/gc/race.json") == b'{"n": %d}' % winners[0]

    def test_delete_entries_deletes_what_is_unchanged_and_skips_what_is_gone(
        self, backend, tmp_path
    ):
        key = self._upload(backend, tmp_path, b"garbage")
        backend.put_meta("meta/repos/old.json", b"{}")
        listed = [*backend.list_entries("objects/"), *backend.list_entries("meta/repos/")]
        assert len(listed) == 2
        gone = [e for e in listed if e.key == "meta/repos/old.json"]
        assert [d.key for d in backend.delete_entries(gone)] == ["meta/repos/old.json"]
        deleted = backend.delete_entries(listed)  # the record is already gone
        assert deleted == [Deleted(key, deleted[0].version)]
        assert backend.stat_entry(key) is None
        assert backend.stat(sha256(b"garbage")) is None
        assert list(backend.list_entries("objects/")) == []
        assert backend.delete_entries([]) == []

    def test_delete_entries_skips_a_key_written_again_since_its_listing(self, backend, tmp_path):
        self._needs_preconditions()
        backend.put_meta("meta/repos/a.json", b"{}")
        backend.put_meta("meta/repos/b.json", b"{}")
        listed = sorted(backend.list_entries("meta/repos/"))
        self._wait_for_a_new_tag()
        backend.put_meta("meta/repos/b.json", b"{}")  # same bytes, written again
        assert [d.key for d in backend.delete_entries(listed)] == ["meta/repos/a.json"]
        assert backend.get_meta("meta/repos/b.json") == b"{}"

    def test_more_than_a_thousand_entries_per_call_are_refused(self, backend):
        entries = [Entry(f"meta/x/{i}", 1, 0.0, "t") for i in range(1001)]
        with pytest.raises(ValueError, match="1000"):
            backend.delete_entries(entries)

    @pytest.mark.parametrize(
        "key", ["../x", "meta/../../x", "objects/../../x", "meta//x", "tmp/x", "/meta/x", ""]
    )
    def test_keys_outside_objects_and_meta_are_refused(self, backend, key):
        with pytest.raises(BackendError, match="invalid key"):
            backend.stat_entry(key)
        with pytest.raises(BackendError, match="invalid key"):
            list(backend.list_entries(key))
        with pytest.raises(BackendError, match="invalid key"):
            backend.delete_entries([Entry(key, 1, 0.0, "1")])
        with pytest.raises(ConfigError, match="invalid record key"):
            backend.create_meta(key, b"{}")

    def test_an_unversioned_backend_cannot_undelete(self, backend):
        backend.put_meta("meta/repos/r.json", b"{}")
        entry = backend.stat_entry("meta/repos/r.json")
        assert backend.versioned() is False
        assert backend.delete_entries([entry]) == [Deleted("meta/repos/r.json", "")]
        assert backend.undelete(Deleted("meta/repos/r.json", "")) is False
        assert backend.stat_entry("meta/repos/r.json") is None

    def test_a_versioned_backend_undeletes_identical_bytes(self, versioned_backend, tmp_path):
        backend = versioned_backend
        assert backend.versioned() is True
        data = b"kept by versioning" * 100
        key = self._upload(backend, tmp_path, data)
        backend.put_meta("meta/repos/r.json", b'{"r": 1}')
        listed = [*backend.list_entries("objects/"), *backend.list_entries("meta/repos/")]
        deleted = backend.delete_entries(listed)
        assert sorted(d.key for d in deleted) == sorted([key, "meta/repos/r.json"])
        assert all(d.version for d in deleted)
        assert backend.stat_entry(key) is None
        assert backend.undelete(Deleted(key, "")) is False
        for d in deleted:
            assert backend.undelete(d) is True
        dest = tmp_path / "back"
        backend.download(sha256(data), dest, len(data), Recorder())
        assert dest.read_bytes() == data
        assert backend.get_meta("meta/repos/r.json") == b'{"r": 1}'
        assert sorted(e.key for e in backend.list_entries("objects/")) == [key]

    def test_a_remote_collects_through_its_collector(self, backend):
        collector = Remote(backend.url, opener=lambda *_: backend).collector
        created = collector.create_meta("meta/gc/lock.json", b"{}")
        assert created is not None
        written = collector.put_meta_entry("meta/repos/r.json", b"{}")
        assert written == collector.stat_entry("meta/repos/r.json")
        assert {e.key for e in collector.list_entries("meta/")} == {
            "meta/gc/lock.json",
            "meta/repos/r.json",
        }
        assert [d.key for d in collector.delete_entries([written])] == ["meta/repos/r.json"]
        assert collector.versioned() is backend.versioned()
