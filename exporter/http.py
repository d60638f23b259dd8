"""The exporter's HTTP endpoint: ``/metrics``, ``/healthz`` and the marker API on one port,
served by the shared :class:`joulecast.httpserver.ServiceServer`."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from joulecast.exporter.api import MarkerApi
from joulecast.exporter.collectors.exporter_self import ApiStats
from joulecast.httpserver import ServiceServer

LANDING = """<html><head><title>joulecast exporter</title></head><body>
<h1>joulecast exporter</h1><p><a href="{path}">Metrics</a> &middot;
<a href="/api/v1/jobs">Jobs</a> &middot; <a href="/healthz">Health</a></p></body></html>"""


def render_metrics(registry: CollectorRegistry) -> Callable[[str], tuple[bytes, str]]:
    def render(accept: str) -> tuple[bytes, str]:
        encoder, content_type = choose_encoder(accept)
        return encoder(registry), content_type

    return render


def exporter_server(
    address: tuple[str, int],
    registry: CollectorRegistry,
    api: MarkerApi,
    stats: ApiStats,
    health: Callable[[], tuple[bool, dict[str, Any]]],
    telemetry_path: str = "/metrics",
) -> ServiceServer:
    def handle(
        method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, dict, str]:
        resp = api.handle(method, path, headers, body)
        return resp.status, resp.body, resp.route

    return ServiceServer(
        address,
        metrics=render_metrics(registry),
        health=health,
        api=handle,
        telemetry_path=telemetry_path,
        landing=LANDING.format(path=telemetry_path),
        observe=stats.count,
    )


def sampler_health(
    last_sample: Callable[[], float], max_age_s: float
) -> Callable[[], tuple[bool, dict]]:
    def check() -> tuple[bool, dict]:
        age = time.time() - last_sample()
        ok = age <= max_age_s
        return ok, {
            "status": "ok" if ok else "unhealthy",
            "detail": f"last GPU sample {age:.1f}s ago",
        }

    return check
