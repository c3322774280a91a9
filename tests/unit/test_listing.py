"""stat_by_listing: settling many oids from one ordered listing of a bucket's keys."""

from __future__ import annotations

import bisect
from collections.abc import Iterator

from hypothesis import given, settings
from hypothesis import strategies as st

from lfs_agent.backends import object_key
from lfs_agent.backends.s3.listing import LIST_MIN_OBJECTS, stat_by_listing
from tests.helpers import sha256


class FakeBucket:
    """Sorted object keys listed in pages, counting the pages asked for."""

    def __init__(self, sizes: dict[str, int], page_size: int = 1000) -> None:
        self.keys = sorted((object_key(oid), size) for oid, size in sizes.items())
        self.page_size = page_size
        self.pages = 0

    def pages_after(self, start: str) -> Iterator[list[tuple[str, int]]]:
        i = bisect.bisect_right(self.keys, (start, float("inf")))
        while i < len(self.keys):
            self.pages += 1
            yield self.keys[i : i + self.page_size]
            i += self.page_size


def oids(tag: str, n: int) -> list[str]:
    return [sha256(f"{tag} {i}".encode()) for i in range(n)]


def test_a_few_objects_are_left_to_a_stat_each():
    bucket = FakeBucket(dict.fromkeys(oids("held", 5), 1))
    assert stat_by_listing(oids("held", LIST_MIN_OBJECTS - 1), object_key, bucket.pages_after) == {}
    assert bucket.pages == 0


def test_a_small_bucket_settles_everything_in_one_page():
    held = {oid: i + 1 for i, oid in enumerate(oids("held", 50))}
    bucket = FakeBucket(held)
    wanted = [*oids("held", 30), *oids("absent", 30)]
    answer = stat_by_listing(wanted, object_key, bucket.pages_after)
    assert answer == {oid: held.get(oid) for oid in wanted}
    assert bucket.pages == 1


def test_a_huge_bucket_is_not_listed_for_a_few_dozen_objects():
    held = dict.fromkeys(oids("held", 100_000), 7)
    bucket = FakeBucket(held)
    wanted = [*oids("held", 20), *oids("absent", 20)]
    answer = stat_by_listing(wanted, object_key, bucket.pages_after)
    assert bucket.pages <= 2  # the pace shows ~100 pages to go: the rest get a stat each
    assert len(answer) < len(wanted)
    for oid, size in answer.items():
        assert size == held.get(oid)


def test_many_objects_in_a_big_bucket_are_listed_through():
    held = dict.fromkeys(oids("held", 20_000), 3)
    bucket = FakeBucket(held)
    wanted = [*oids("held", 5_000), *oids("absent", 5_000)]
    answer = stat_by_listing(wanted, object_key, bucket.pages_after)
    assert answer == {oid: held.get(oid) for oid in wanted}  # 20 pages beat 10,000 stats


@settings(max_examples=60, deadline=None)
@given(
    held=st.lists(st.integers(0, 400), max_size=300, unique=True),
    wanted=st.lists(st.integers(0, 400), min_size=1, max_size=120, unique=True),
    page_size=st.integers(1, 50),
)
def test_every_settled_answer_is_true(held: list[int], wanted: list[int], page_size: int):
    sizes = {sha256(b"%d" % i): i for i in held}
    bucket = FakeBucket(sizes, page_size)
    wanted_oids = [sha256(b"%d" % i) for i in wanted]
    answer = stat_by_listing(wanted_oids, object_key, bucket.pages_after)
    assert set(answer) <= set(wanted_oids)
    for oid, size in answer.items():
        assert size == sizes.get(oid)
