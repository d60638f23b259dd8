"""The garbage collector held off while a cycle runs.

A cycle decodes tens of thousands of series into short-lived containers while the
estimator keeps every job's checkpoints: each automatic collection of the oldest
generation walks that whole heap again. At 10,000 jobs CPython's collector took about a
third of a cycle (``bench/estimator_scale.py``). Reference counting still frees what a
cycle drops; only reference cycles wait, for one collection of the young generations at
the cycle's end. The collector's state is restored whatever happens.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused(enabled: bool = True) -> Iterator[None]:
    """Within: no automatic collection (when ``enabled``); at the end, the young
    generations (0 and 1) collected once."""
    was_enabled = gc.isenabled()
    if not enabled or not was_enabled:
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.collect(1)
