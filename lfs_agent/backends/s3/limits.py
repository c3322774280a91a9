"""S3's limits on uploads, in one object, and the plan of an upload within them.

S3 takes a single PUT of at most 5 GiB; a larger object must go as a multipart upload
of at most 10,000 parts, each of 5 MiB to 5 GiB (the last one may be smaller), and no
object may be larger than 5 TiB. The options choose a part size and a threshold above
which an object goes multipart; :meth:`S3Limits.plan` turns them into a plan S3 will
accept whatever they say, as s3transfer's ``ChunksizeAdjuster`` does: an object too
large for one PUT goes multipart, and the part size grows until the parts number at
most 10,000.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from lfs_agent.errors import BackendError
from lfs_agent.options import GIB, MIB

__all__ = ["S3_LIMITS", "S3Limits", "UploadPlan"]


@dataclass(frozen=True)
class UploadPlan:
    """How one object goes to S3.

    Attributes:
        multipart: A multipart upload (else a single PUT).
        part_size: Bytes per part (the last part may hold fewer); for a single PUT,
            the object's size (at least 1).
        part_count: Parts of the multipart upload; 1 for a single PUT.
    """

    multipart: bool
    part_size: int
    part_count: int


@dataclass(frozen=True)
class S3Limits:
    """What S3 accepts, from its documentation ("Amazon S3 multipart upload limits").

    Tests may shrink them; the backend uses :data:`S3_LIMITS`.
    """

    #: Most bytes of a single PUT.
    max_put_size: int = 5 * GIB
    #: Least bytes of every part but the last.
    min_part_size: int = 5 * MIB
    #: Most bytes of a part.
    max_part_size: int = 5 * GIB
    #: Most parts of one multipart upload.
    max_parts: int = 10_000
    #: Most bytes of an object.
    max_object_size: int = 5 * 1024 * GIB

    def part_size_for(self, size: int, wanted: int) -> int:
        """The part size for a multipart upload of ``size`` bytes.

        Args:
            size: The object's bytes.
            wanted: The configured part size.

        Returns:
            ``wanted`` within S3's bounds for a part, grown where ``size`` would
            otherwise take more than :attr:`max_parts` parts.
        """
        part_size = min(max(wanted, self.min_part_size), self.max_part_size)
        return min(max(part_size, math.ceil(size / self.max_parts)), self.max_part_size)

    def plan(self, size: int, threshold: int, part_size: int) -> UploadPlan:
        """How to upload ``size`` bytes given the configured threshold and part size.

        Args:
            size: The object's bytes.
            threshold: Objects larger than this go multipart; above
                :attr:`max_put_size` the limit decides instead.
            part_size: The configured part size.

        Raises:
            BackendError: the object is larger than S3 holds.
        """
        if size > self.max_object_size:
            raise BackendError(
                f"an object of {size} bytes is larger than the {self.max_object_size} "
                "bytes S3 holds in one object"
            )
        if size <= min(threshold, self.max_put_size):
            return UploadPlan(multipart=False, part_size=max(size, 1), part_count=1)
        chosen = self.part_size_for(size, part_size)
        return UploadPlan(multipart=True, part_size=chosen, part_count=math.ceil(size / chosen))


#: S3's own limits.
S3_LIMITS = S3Limits()
