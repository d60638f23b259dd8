"""Which estimator shard owns a job: the exporter labels every job series with the job's
bucket, each estimator shard reads only the buckets it owns.

A job's bucket is the job id's 64-bit BLAKE2b hash mod 1024 (``job_bucket`` on every
``joulecast_job_*`` series): the same on every node of a multi-node job, so a job stays
whole in one shard. The buckets are dealt to ``count`` shards by rendezvous hashing (each
bucket goes to the shard with the highest hash of ``"bucket/shard"``): adding a shard moves
only the buckets the new one wins, about 1/count of them, and removing one moves only its
own. The queue's jobs are dealt the same way. (CRC32 would not do: it is linear, and the
rendezvous comparisons of a bucket's shards would be correlated.)
"""

from __future__ import annotations

import hashlib

BUCKETS = 1024


def _hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def bucket(job_id: str) -> int:
    return _hash(job_id) % BUCKETS


def owner(bucket_: int, count: int) -> int:
    """The shard, of ``count``, that owns ``bucket_``."""
    return max(range(count), key=lambda shard: _hash(f"{bucket_}/{shard}"))


def owned(index: int, count: int) -> list[int]:
    """The buckets shard ``index`` of ``count`` owns."""
    return [b for b in range(BUCKETS) if owner(b, count) == index]


def owns(index: int, count: int, job_id: str) -> bool:
    return count <= 1 or owner(bucket(job_id), count) == index
