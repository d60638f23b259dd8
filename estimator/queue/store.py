"""Queued jobs: JSON job specs in a directory, also posted through ``POST /api/v1/queue``.

A spec: ``{"job_id": "...", "epochs": 30, "gpu_model": "NVIDIA A100-SXM4-80GB" (optional),
"features": {"model_gflops": 4.1, "batch_size": 64, "train_samples": 50000, ...}}`` with
the marker API's feature names and validation. A posted spec is written to the directory
(temporary file, fsync, rename) before the 201 answer, so nothing acknowledged is lost.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from joulecast.estimator.pre.gpus import UnknownGpu, lookup
from joulecast.schema import MAX_EPOCHS, JobFeatures, SchemaError, parse_features, validate_job_id
from joulecast.serving.files import FileRejections, read_small

log = logging.getLogger("joulecast.estimator")
MAX_QUEUE = 1000  # default cap: what is forecast and published stays bounded
NEEDED = ("model_gflops", "batch_size", "train_samples")  # features PRE cannot do without


@dataclass(frozen=True)
class QueuedJob:
    job_id: str
    epochs: int  # 0: not stated (a pending Slurm job forecast from its past runs)
    features: JobFeatures
    gpu_model: str | None = None
    #: (scheduler, user, job name) of a scheduler's pending job: whose past runs it repeats
    owner: tuple[str, str, str] | None = None
    gpus: int = 0  # GPUs requested, when the scheduler says
    time_limit_s: float | None = None  # the scheduler kills the job past it

    @property
    def planned(self) -> bool:
        """Epochs and the features PRE needs are all stated."""
        return self.epochs > 0 and all(getattr(self.features, f) is not None for f in NEEDED)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "job_id": self.job_id,
            "epochs": self.epochs,
            "features": self.features.as_dict(),
        }
        if self.gpu_model:
            out["gpu_model"] = self.gpu_model
        return out


def parse_queued_job(payload: Any) -> QueuedJob:
    if not isinstance(payload, dict):
        raise SchemaError("queued job must be a JSON object")
    unknown = sorted(set(payload) - {"job_id", "epochs", "gpu_model", "features"})
    if unknown:
        raise SchemaError(f"unknown field(s) in queued job: {', '.join(unknown)}")
    epochs = payload.get("epochs")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or not 1 <= epochs <= MAX_EPOCHS:
        raise SchemaError(f"'epochs' must be an integer between 1 and {MAX_EPOCHS}")
    features = parse_features(payload.get("features"))
    for needed in NEEDED:
        if getattr(features, needed) is None:
            raise SchemaError(f"'features.{needed}' is required to forecast a queued job")
    gpu = payload.get("gpu_model")
    if gpu is not None:
        if not isinstance(gpu, str) or len(gpu) > 128:
            raise SchemaError("'gpu_model' must be a GPU name")
        try:
            gpu = lookup(gpu).name
        except UnknownGpu as err:
            raise SchemaError(str(err)) from None
    return QueuedJob(validate_job_id(payload.get("job_id")), epochs, features, gpu)


class QueueStore:
    def __init__(
        self, directory: Path, max_jobs: int = MAX_QUEUE, rejections: FileRejections | None = None
    ) -> None:
        self.directory = directory
        self.max_jobs = max_jobs
        self.rejections = rejections or FileRejections()
        directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.invalid_files: dict[str, str] = {}  # set aside since start: name -> why

    def _path(self, job_id: str) -> Path:
        return self.directory / f"{job_id}.json"

    def add(self, job: QueuedJob) -> bool:
        """Write durably; returns False if the same job_id was already queued (replaced)."""
        with self._lock:
            existed = self._path(job.job_id).exists()
            if not existed and len(list(self.directory.glob("*.json"))) >= self.max_jobs:
                raise OverflowError(f"the queue holds {self.max_jobs} jobs (--queue.max-jobs)")
            fd, tmp = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
            try:
                with os.fdopen(fd, "w") as fh:
                    json.dump(job.as_dict(), fh)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, self._path(job.job_id))
            except OSError:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            dfd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
            return not existed

    def remove(self, job_id: str) -> bool:
        with self._lock:
            try:
                self._path(validate_job_id(job_id)).unlink()
                return True
            except FileNotFoundError:
                return False

    def jobs(self) -> list[QueuedJob]:
        """Every queued spec that parses; one that does not is set aside (renamed
        ``*.rejected-*``) with a warning, and the others are forecast as ever."""
        out = []
        for path in sorted(self.directory.glob("*.json")):
            try:
                out.append(parse_queued_job(json.loads(read_small(path))))
            except FileNotFoundError:  # removed meanwhile
                continue
            except (OSError, ValueError, RecursionError) as err:  # SchemaError: ValueError
                reason = str(err)[:300] or err.__class__.__name__
                with self._lock:
                    self.invalid_files[path.name] = reason
                    while len(self.invalid_files) > 100:  # the latest hundred
                        del self.invalid_files[next(iter(self.invalid_files))]
                    self.rejections.set_aside(path, "queue", reason)
        return out
