"""The metrics record service: pushing a record with its objects, loading records back."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from lfs_agent.errors import ConfigError, TransferError
from lfs_agent.metrics import (
    Artifact,
    LocalRecords,
    TagRecord,
    load_records,
    one_record,
    push_record_with_objects,
)
from lfs_agent.remote import Remote
from lfs_agent.store import ObjectStore
from tests.helpers import sha256


def record(tag: str, *artifacts: Artifact, acc: float = 0.5) -> TagRecord:
    return TagRecord(tag=tag, commit="c" * 40, metrics={"acc": acc}, artifacts=list(artifacts))


@pytest.fixture
def store(tmp_path: Path) -> ObjectStore:
    return ObjectStore(tmp_path / "lfs")


@pytest.fixture
def remote(tmp_path: Path) -> Iterator[Remote]:
    remote = Remote((tmp_path / "bucket").as_uri())
    yield remote
    remote.close()


def test_a_record_goes_up_after_the_objects_it_pins(store: ObjectStore, remote: Remote):
    pointer = store.ingest(io.BytesIO(b"model\n"))
    pinned = Artifact(path="model.bin", oid=pointer.oid, size=pointer.size)
    push_record_with_objects(store, remote, record("v1", pinned), stamp="20260101T000000Z")
    assert remote.size_of(pointer.oid) == pointer.size
    assert remote.records.list_meta("meta/history/v1/") == [
        f"meta/history/v1/20260101T000000Z-{'c' * 12}.json"
    ]
    assert load_records(LocalRecords(store.root / "records"), remote)["v1"].artifacts == [pinned]


def test_a_record_pinning_an_object_nobody_has_is_refused_by_path(
    store: ObjectStore, remote: Remote
):
    lost = Artifact(path="lost.bin", oid=sha256(b"lost\n"), size=5)
    with pytest.raises(TransferError, match=r"lost\.bin .* neither in the local store nor in"):
        push_record_with_objects(store, remote, record("v1", lost))
    assert remote.records.list_meta("meta/") == []


def test_the_bucket_wins_and_local_copies_fill_in(tmp_path: Path, remote: Remote):
    local = LocalRecords(tmp_path / "records")
    local.save(record("v1", acc=0.1), pending=False)
    local.save(record("v2", acc=0.2), pending=True)
    push_record_with_objects(ObjectStore(tmp_path / "lfs"), remote, record("v1", acc=0.9))
    found = load_records(local, remote)
    assert {tag: r.metrics["acc"] for tag, r in found.items()} == {"v1": 0.9, "v2": 0.2}
    assert load_records(local, None)["v1"].metrics["acc"] == 0.1


def test_a_damaged_record_is_passed_over_with_its_reason(tmp_path: Path, remote: Remote):
    local = LocalRecords(tmp_path / "records")
    remote.records.put_meta("meta/tags/v1.json", b"{not json")
    invalid: dict[str, ConfigError] = {}
    assert load_records(local, remote, ["v1"], invalid) == {}
    assert list(invalid) == ["v1"]
    with pytest.raises(ConfigError):
        one_record(local, remote, "v1")
    local.save(record("v1", acc=0.3), pending=False)
    assert one_record(local, remote, "v1").metrics["acc"] == 0.3


def test_a_tag_with_no_record_anywhere_is_named(tmp_path: Path):
    with pytest.raises(ConfigError, match="no metrics record for tag 'v9'"):
        one_record(LocalRecords(tmp_path / "records"), None, "v9")
