"""Remote: asks a backend only for what it declares, through its breaker, and closes it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from lfs_agent.backends import Capability
from lfs_agent.errors import BackendError, UnreachableError
from lfs_agent.remote import Remote
from lfs_agent.store import ObjectStore
from tests.helpers import sha256

OID = sha256(b"x")


class Plain:
    """A backend of the four primitives only; counts what it is asked."""

    url = "fake://bucket"
    max_workers = None
    capabilities: frozenset[Capability] = frozenset()

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.closed = 0

    def stat(self, oid: str) -> int | None:
        self.calls.append(f"stat {oid}")
        return None

    def upload(self, oid: str, src_path: Path, size: int, progress: object, checked: bool = False):
        self.calls.append(f"upload {oid}")

    def download(self, oid: str, dest_path: Path, size: int, progress: object) -> None:
        self.calls.append(f"download {oid}")

    def close(self) -> None:
        self.closed += 1


class Everything(Plain):
    """A backend declaring every capability, each refusing as an unreachable remote."""

    capabilities = frozenset(Capability)

    def stat_many(self, oids: Sequence[str]) -> dict[str, int | None]:
        self.calls.append("stat_many")
        return dict.fromkeys(oids, 1)

    def abort_stale_uploads(self) -> int:
        self.calls.append("abort_stale_uploads")
        return 3

    def links_into(self, directory: Path) -> bool:
        self.calls.append("links_into")
        return True

    def get_meta(self, key: str) -> bytes | None:
        self.calls.append(f"get_meta {key}")
        raise UnreachableError("cannot reach fake://bucket: Connection refused")

    def put_meta(self, key: str, data: bytes) -> None:
        self.calls.append(f"put_meta {key}")

    def list_meta(self, prefix: str) -> list[str]:
        self.calls.append(f"list_meta {prefix}")
        return []


def remote_for(backend: Plain) -> Remote:
    return Remote(backend.url, opener=lambda *_: backend)  # type: ignore[arg-type,return-value]


def test_a_backend_is_asked_nothing_it_does_not_declare(tmp_path: Path):
    backend = Plain()
    remote = remote_for(backend)
    assert remote.stat_many([OID]) == {}
    assert remote.abort_stale_uploads() == 0
    assert not remote.downloads_are_links(ObjectStore(tmp_path / "lfs"))
    with pytest.raises(BackendError, match="fake://bucket cannot keep records"):
        remote.records  # noqa: B018 - the property is the call under test
    assert backend.calls == []
    assert remote.size_of(OID) is None  # without a listing, each object is stat'ed
    assert backend.calls == [f"stat {OID}"]


def test_what_a_backend_declares_is_used(tmp_path: Path):
    backend = Everything()
    remote = remote_for(backend)
    listed = remote.stat_many([OID])
    assert listed == {OID: 1}
    assert remote.size_of(OID, listed) == 1  # settled by the listing: no stat
    assert remote.abort_stale_uploads() == 3
    assert remote.downloads_are_links(ObjectStore(tmp_path / "lfs"))
    assert backend.calls == ["stat_many", "abort_stale_uploads", "links_into"]


def test_records_pass_the_breaker_like_objects(tmp_path: Path):
    backend = Everything()
    remote = remote_for(backend)
    with pytest.raises(UnreachableError):
        remote.records.get_meta("meta/tags/v1.json")
    with pytest.raises(UnreachableError, match="Connection refused"):
        remote.records.list_meta("meta/tags/")
    with pytest.raises(UnreachableError):
        remote.download_file(OID, tmp_path / "d", 1)
    assert backend.calls == ["get_meta meta/tags/v1.json"]  # one try, then none


def test_an_upload_the_remote_holds_is_skipped_and_an_empty_one_sent(tmp_path: Path):
    backend = Everything()
    remote = remote_for(backend)
    src = tmp_path / "src"
    src.write_bytes(b"x")
    assert not remote.upload_file(OID, src, 1, listed={OID: 1})
    assert remote.upload_file(OID, src, 1, listed={OID: None})
    empty = sha256(b"")
    assert remote.upload_file(empty, src, 0)  # no size tells an empty object is there
    assert backend.calls == [f"upload {OID}", f"upload {empty}"]


def test_leaving_the_with_block_closes_the_backend_once_opened():
    backend = Plain()
    with remote_for(backend) as remote:
        pass
    assert backend.closed == 0  # never opened: nothing to close
    with remote_for(backend) as remote:
        remote.size_of(OID)
    assert backend.closed == 1
