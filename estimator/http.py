"""The estimator's HTTP endpoint: ``/metrics``, ``/healthz`` and the queue API, served by the
shared :class:`joulecast.httpserver.ServiceServer`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from joulecast.estimator.queue.api import QueueApi
from joulecast.httpserver import ServiceServer


def estimator_server(
    address: tuple[str, int],
    registry: CollectorRegistry,
    health: Callable[[], tuple[bool, dict[str, Any]]],
    telemetry_path: str = "/metrics",
    queue_api: QueueApi | None = None,
) -> ServiceServer:
    def render(accept: str) -> tuple[bytes, str]:
        encoder, content_type = choose_encoder(accept)
        return encoder(registry), content_type

    def handle(
        method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, dict, str]:
        assert queue_api is not None
        status, payload = queue_api.handle(method, path, headers, body)
        return status, payload, "/api/v1/queue"

    return ServiceServer(
        address,
        metrics=render,
        health=health,
        api=handle if queue_api is not None else None,
        telemetry_path=telemetry_path,
        no_api_message="no queue: start the estimator with --queue.dir",
    )
