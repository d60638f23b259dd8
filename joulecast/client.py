"""Training-side client: posts job and epoch markers to the node's exporter.

Standard library only. The client never breaks a training run: when the exporter cannot be
reached it warns once, keeps training, and tries again at the next marker.

    import joulecast
    with joulecast.job("run-42", epochs=100, features={"batch_size": 64}) as job:
        for epoch in range(100):
            train_one_epoch()
            job.epoch_end()
"""

from __future__ import annotations

import json
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from joulecast.schema import (
    EpochMarker,
    JobFeatures,
    JobSpec,
    SchemaError,
    parse_features,
    parse_gpu_selector,
    validate_job_id,
)

DEFAULT_URL = "http://127.0.0.1:9866"
log = logging.getLogger("joulecast")


@dataclass(frozen=True)
class Response:
    status: int
    body: dict[str, Any]


def _post(url: str, payload: dict[str, Any], token: str | None, timeout: float) -> Response:
    data = json.dumps(payload).encode()
    req = urllib.request.Request(url, data=data, method="POST")
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return Response(resp.status, json.loads(resp.read() or b"{}"))
    except urllib.error.HTTPError as err:  # a 4xx/5xx answer is still an answer
        try:
            body = json.loads(err.read() or b"{}")
        except ValueError:
            body = {}
        return Response(err.code, body)


def _selector(env: Mapping[str, str], var: str) -> tuple[list[int], list[str]] | None:
    value = env.get(var, "").strip()
    if not value or value.lower() in ("nodevfiles", "-1", "all", "none", "void"):
        return None
    try:
        indices, uuids = parse_gpu_selector(value)
    except SchemaError:
        return None
    return list(indices), list(uuids)


def gpus_from_environment(env: Mapping[str, str] | None = None) -> tuple[list[int], list[str]]:
    """GPUs of this process's allocation, as the node's exporter can name them.

    ``CUDA_VISIBLE_DEVICES`` UUIDs first; then a container's ``NVIDIA_VISIBLE_DEVICES``
    (set by the NVIDIA container toolkit and the Kubernetes device plugin: host UUIDs or
    indices, where ``CUDA_VISIBLE_DEVICES`` indices would count from the container's first
    GPU); then ``CUDA_VISIBLE_DEVICES`` indices; then Slurm's ``SLURM_STEP_GPUS`` /
    ``SLURM_JOB_GPUS``. Nothing usable: ``([], [])``.
    """
    env = os.environ if env is None else env
    cuda = _selector(env, "CUDA_VISIBLE_DEVICES")
    if cuda is not None and cuda[1]:
        return cuda
    for found in (
        _selector(env, "NVIDIA_VISIBLE_DEVICES"),
        cuda,
        _selector(env, "SLURM_STEP_GPUS"),
        _selector(env, "SLURM_JOB_GPUS"),
    ):
        if found is not None:
            return found
    return [], []


class Job:
    """A registered training job. Use :func:`joulecast.job` to create one."""

    def __init__(
        self,
        job_id: str,
        epochs: int,
        *,
        features: Mapping[str, Any] | None = None,
        gpus: list[int | str] | None = None,
        url: str | None = None,
        token: str | None = None,
        timeout: float = 1.0,
        post: Callable[[str, dict[str, Any], str | None, float], Response] = _post,
        embedded: bool | Callable[[], float] = False,
    ) -> None:
        self.job_id = validate_job_id(job_id)
        self.epochs_planned = int(epochs)
        self.features: JobFeatures = parse_features(dict(features) if features else None)
        self.url = (url or os.environ.get("JOULECAST_URL") or DEFAULT_URL).rstrip("/")
        self.token = token if token is not None else os.environ.get("JOULECAST_TOKEN")
        self.timeout = timeout
        self.epoch = 0
        self._post_fn = post
        self._registered = False
        self._warned = False
        if gpus is None:
            indices, uuids = gpus_from_environment()
            self._gpus: list[int | str] = [*indices, *uuids]
        else:
            self._gpus = list(gpus)
        self._listeners: list[Callable[[int], None]] = []
        self.embedded = None
        if embedded:
            from joulecast.embedded import EmbeddedStep, NvmlEnergy

            gpu_indices = [g for g in self._gpus if isinstance(g, int)]
            energy = embedded if callable(embedded) else NvmlEnergy(gpu_indices or None)
            self.embedded = EmbeddedStep(self.epochs_planned, energy)
            self._listeners.append(lambda epoch: self.embedded.on_epoch(epoch, self.epochs_planned))

    # -- protocol -----------------------------------------------------------------------
    def spec(self) -> JobSpec:
        indices, uuids = parse_gpu_selector(self._gpus) if self._gpus else ((), ())
        pids = () if self._gpus else (os.getpid(),)
        return JobSpec(
            job_id=self.job_id,
            epochs_planned=self.epochs_planned,
            gpus=indices,
            gpu_uuids=uuids,
            pids=pids,
            features=self.features,
        )

    def _send(self, path: str, payload: dict[str, Any]) -> Response | None:
        try:
            resp = self._post_fn(self.url + path, payload, self.token, self.timeout)
        except (OSError, ValueError) as err:  # refused, timeout, DNS, bad JSON
            self._warn(f"joulecast exporter at {self.url} unreachable ({err}); training goes on")
            return None
        if resp.status >= 500 or resp.status in (401, 403, 429):
            self._warn(f"joulecast exporter answered {resp.status}: {resp.body.get('error', '')}")
        return resp

    def _warn(self, message: str) -> None:
        if not self._warned:
            log.warning(message)
            self._warned = True

    def register(self) -> bool:
        resp = self._send("/api/v1/jobs", self.spec().as_dict())
        # 409: already registered (a retry after a lost answer, or a restarted script).
        self._registered = resp is not None and resp.status in (200, 201, 409)
        if resp is not None and 400 <= resp.status < 500 and resp.status not in (409, 429):
            self._warn(f"joulecast job rejected: {resp.body.get('error', resp.status)}")
        return self._registered

    def epoch_end(
        self, metrics: Mapping[str, float] | None = None, *, epochs_planned: int | None = None
    ) -> None:
        """Mark the end of the next epoch (1, 2, ...). Never raises on transport errors."""
        self.epoch += 1
        if epochs_planned is not None:
            self.epochs_planned = int(epochs_planned)
        for listener in self._listeners:
            listener(self.epoch)
        if not self._registered and not self.register():
            return
        clean = {k: float(v) for k, v in (metrics or {}).items() if _is_number(v)}
        marker = EpochMarker(epoch=self.epoch, metrics=clean, epochs_planned=epochs_planned)
        resp = self._send(f"/api/v1/jobs/{self.job_id}/epochs", marker.as_dict())
        if resp is not None and resp.status == 404:  # exporter lost us (state dir wiped)
            self._registered = False

    def finish(self) -> None:
        if self._registered:
            self._send(f"/api/v1/jobs/{self.job_id}/finish", {})

    def add_listener(self, fn: Callable[[int], None]) -> None:
        """Call ``fn(epoch)`` at every epoch end (used by the embedded STEP mode)."""
        self._listeners.append(fn)

    def __enter__(self) -> Job:
        if self.embedded is not None:
            self.embedded.start()
        self.register()
        return self

    def __exit__(self, *exc: object) -> None:
        self.finish()


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v


def job(job_id: str, epochs: int, **kwargs: Any) -> Job:
    """Create a job handle; use it as a context manager around the training loop."""
    return Job(job_id, epochs, **kwargs)
