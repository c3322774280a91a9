"""S3's limits: every upload plan is one S3 accepts, whatever the options say."""

from __future__ import annotations

import pytest

from lfs_agent.backends.s3.limits import S3_LIMITS, S3Limits, UploadPlan
from lfs_agent.errors import BackendError
from lfs_agent.options import GIB, MIB

TIB = 1024 * GIB


def accepted(plan: UploadPlan, size: int, limits: S3Limits = S3_LIMITS) -> bool:
    """Whether S3 takes an upload of ``size`` bytes made as ``plan`` says."""
    if not plan.multipart:
        return size <= limits.max_put_size and plan.part_count == 1
    last = size - (plan.part_count - 1) * plan.part_size
    return (
        limits.min_part_size <= plan.part_size <= limits.max_part_size
        and 1 <= plan.part_count <= limits.max_parts
        and 0 < last <= plan.part_size
    )


def test_an_object_at_most_the_threshold_is_one_put():
    assert S3_LIMITS.plan(64 * MIB, 64 * MIB, 32 * MIB) == UploadPlan(False, 64 * MIB, 1)
    assert S3_LIMITS.plan(0, 64 * MIB, 32 * MIB) == UploadPlan(False, 1, 1)


def test_an_object_over_the_threshold_goes_in_parts_of_the_part_size():
    assert S3_LIMITS.plan(100 * MIB, 64 * MIB, 32 * MIB) == UploadPlan(True, 32 * MIB, 4)


def test_an_object_over_5_gib_goes_multipart_whatever_the_threshold_says():
    six_gb = 6 * 1000**3
    assert S3_LIMITS.plan(5 * GIB, 8 * GIB, 32 * MIB) == UploadPlan(False, 5 * GIB, 1)
    plan = S3_LIMITS.plan(six_gb, 8 * GIB, 32 * MIB)
    assert plan == UploadPlan(True, 32 * MIB, 179)
    assert S3_LIMITS.plan(5 * GIB + 1, 100 * GIB, 32 * MIB).multipart


def test_the_part_size_grows_to_keep_at_most_10000_parts():
    # 1 TiB in 32 MiB parts would be 32,768 parts.
    plan = S3_LIMITS.plan(TIB, 64 * MIB, 32 * MIB)
    assert plan.part_count == 10_000
    assert plan.part_size == -(-TIB // 10_000)
    assert accepted(plan, TIB)


def test_part_sizes_stay_within_5_mib_and_5_gib():
    assert S3_LIMITS.part_size_for(100 * MIB, 1 * MIB) == 5 * MIB
    assert S3_LIMITS.part_size_for(100 * GIB, 8 * GIB) == 5 * GIB


def test_an_object_larger_than_s3_holds_is_refused_before_anything_is_sent():
    with pytest.raises(BackendError, match="larger than the 5497558138880 bytes S3 holds"):
        S3_LIMITS.plan(5 * TIB + 1, 64 * MIB, 32 * MIB)


SIZES = [1, 5 * MIB, 5 * MIB + 1, 64 * MIB + 1, 5 * GIB, 5 * GIB + 1, 6 * 1000**3, TIB, 5 * TIB]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("threshold", [5 * MIB, 64 * MIB, 5 * GIB, 8 * GIB, 100 * TIB])
@pytest.mark.parametrize("part_size", [5 * MIB, 32 * MIB, 5 * GIB])
def test_every_plan_is_one_s3_accepts(size, threshold, part_size):
    assert accepted(S3_LIMITS.plan(size, threshold, part_size), size)


def test_smaller_limits_are_kept_as_well():
    limits = S3Limits(max_put_size=8 * MIB, min_part_size=5 * MIB, max_parts=2)
    plan = limits.plan(12 * MIB, 64 * MIB, 5 * MIB)
    assert plan == UploadPlan(True, 6 * MIB, 2)
    assert accepted(plan, 12 * MIB, limits)
