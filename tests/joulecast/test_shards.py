"""Job buckets and their owners: stable, even, and a change of shard count moves only the
buckets it must."""

from __future__ import annotations

from collections import Counter

from joulecast.shards import BUCKETS, bucket, owned, owner, owns


def test_a_jobs_bucket_is_stable_and_in_range():
    assert bucket("job-1") == bucket("job-1") and 0 <= bucket("job-1") < BUCKETS


def test_buckets_are_dealt_evenly_and_every_one_has_one_owner():
    for count in (2, 4, 10):
        shares = Counter(owner(b, count) for b in range(BUCKETS))
        assert set(shares) == set(range(count))
        assert max(shares.values()) < 1.35 * BUCKETS / count  # near-even
        assert sorted(b for i in range(count) for b in owned(i, count)) == list(range(BUCKETS))


def test_adding_a_shard_moves_only_buckets_to_it_and_about_one_in_n():
    for count in (2, 4, 9):
        moved = [b for b in range(BUCKETS) if owner(b, count) != owner(b, count + 1)]
        assert all(owner(b, count + 1) == count for b in moved)  # only to the new shard
        assert abs(len(moved) / BUCKETS - 1 / (count + 1)) < 0.06


def test_one_shard_owns_everything():
    assert owns(0, 1, "anything") and not any(owns(1, 2, j) and owns(0, 2, j) for j in "abcdef")
