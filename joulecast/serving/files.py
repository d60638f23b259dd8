"""Files a daemon reads from disk that turn out unusable: set aside, said, counted.

A daemon never crashes and never stops other jobs' work over one bad file. The file is
renamed beside itself (``NAME.rejected-20261202T101500``) so that it is not read again and
nothing is lost, a warning names it and says what was wrong, and the rejection is counted
by kind for the daemon's ``joulecast_files_rejected_total{kind}``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger("joulecast.files")

#: bytes read of a small JSON file (a queue spec, a calibration, model metadata) at most
MAX_SMALL_FILE = 1024 * 1024


class FileRejections:
    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def set_aside(self, path: Path, kind: str, reason: str) -> Path | None:
        """Rename ``path`` out of the way; the new path, or None if it could not be moved."""
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        target = path.with_name(f"{path.name}.rejected-{stamp}")
        try:
            path.rename(target)
        except OSError as err:
            target = None
            log.warning(
                "%s %s is unusable (%s) and could not be set aside: %s", kind, path, reason, err
            )
        else:
            log.warning("%s %s is unusable (%s); set aside as %s", kind, path, reason, target.name)
        with self._lock:
            self._counts[kind] += 1
        return target

    def count(self, kind: str) -> None:
        """One more rejection of ``kind`` that was handled in place (not a file moved)."""
        with self._lock:
            self._counts[kind] += 1

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


def read_small(path: Path, limit: int = MAX_SMALL_FILE) -> str:
    """A small text file whole; ValueError if it is larger than ``limit`` or not UTF-8."""
    with path.open("rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"larger than {limit} bytes")
    try:
        return data.decode()
    except UnicodeDecodeError as err:
        raise ValueError(f"not UTF-8 ({err.reason} at byte {err.start})") from None


def write_json_atomic(path: Path, doc: object) -> None:
    """Write ``doc`` as JSON to ``path`` through a temporary file, fsync and rename: a crash
    leaves the old file or the new one, never half of one. OSError when it cannot."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(doc, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class RejectionsCollector(Collector):
    def __init__(self, rejections: FileRejections, kinds: tuple[str, ...]) -> None:
        self._rejections = rejections
        self._kinds = kinds

    def collect(self) -> Iterator[Metric]:
        counts = self._rejections.counts()
        family = CounterMetricFamily(
            "joulecast_files_rejected",
            "Files read from disk that were unusable and set aside (renamed *.rejected-*), "
            "by kind.",
            labels=["kind"],
        )
        for kind in sorted(set(self._kinds) | set(counts)):
            family.add_metric([kind], float(counts.get(kind, 0)))
        yield family
