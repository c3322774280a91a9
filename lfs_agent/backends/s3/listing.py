"""Which of many objects a bucket holds, from one ordered listing of its keys.

A HEAD per object costs a round trip each; a ListObjectsV2 page settles up to a thousand
keys at once. :func:`stat_by_listing` decides, page by page, whether listing on is
still cheaper than a HEAD of each object left.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Iterator

__all__ = ["KEYS_PER_STAT", "LIST_MIN_OBJECTS", "stat_by_listing"]


#: Fewer objects than this are stat'ed one by one: a listing would not be cheaper.
LIST_MIN_OBJECTS = 16
#: A listing page costs one request plus the parsing of its keys: this many keys cost
#: about as much as one more request (so a full page of 1,000 keys is 11 stats' worth).
KEYS_PER_STAT = 100


def _oid_fraction(key: str) -> float | None:
    """Where the key's oid lies in [0, 1): oids are uniformly spread sha256 digests."""
    name = key.rpartition("/")[2]
    try:
        return int(name[:13], 16) / 16**13
    except ValueError:
        return None


def stat_by_listing(
    oids: Iterable[str],
    key_of: Callable[[str], str],
    pages_after: Callable[[str], Iterator[list[tuple[str, int]]]],
) -> dict[str, int | None]:
    """Settle which ``oids`` a bucket holds from one ordered listing of its object keys.

    Keys (``objects/ab/cd/<oid>``) sort in oid order, so after each page every wanted
    oid whose key is at most the page's last key is settled: present with its size, or
    absent. Oids are uniformly spread, so the keys seen per unit of oid space predict
    how many pages are left; the listing stops as soon as those pages would cost more
    than a stat of each unsettled oid, which keeps a push of a few objects to a huge
    bucket from listing it all.

    Args:
        oids: The objects to look for.
        key_of: An oid's key in the bucket.
        pages_after: Lists the bucket's object keys after the given key, in key order:
            yields pages of ``(key, size)``.

    Returns:
        The settled oids: their size, or None when absent. Unsettled oids are left
        out, and so is every oid when there are fewer than :data:`LIST_MIN_OBJECTS`.
    """
    wanted = sorted(set(oids))
    if len(wanted) < LIST_MIN_OBJECTS:
        return {}
    keys = {key_of(oid): oid for oid in wanted}
    ordered = sorted(keys)
    first = _oid_fraction(ordered[0]) or 0.0
    last_wanted = _oid_fraction(ordered[-1]) or 1.0
    sizes: dict[str, int] = {}
    settled = ""  # every wanted key <= this is settled
    pages = 0
    # The key just before the first wanted one (keys never end in a NUL).
    for page in pages_after(ordered[0][:-1]):
        pages += 1
        for key, size in page:
            oid = keys.get(key)
            if oid is not None:
                sizes[oid] = size
        if not page:
            continue
        settled = page[-1][0]
        if settled >= ordered[-1]:
            break
        unsettled = len(ordered) - bisect.bisect_right(ordered, settled)
        reached = _oid_fraction(settled)
        if reached is None or reached <= first:
            continue  # not a pace we can judge yet
        left = pages * (last_wanted - reached) / (reached - first)
        if left * (1 + len(page) / KEYS_PER_STAT) > unsettled:
            return {keys[k]: sizes.get(keys[k]) for k in ordered if k <= settled}
    # The listing ran to its end (or past the last wanted key): everything is settled.
    return {oid: sizes.get(oid) for oid in wanted}
