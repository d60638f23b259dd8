"""The exporter's HTTP endpoint: ``/metrics``, ``/healthz`` and the marker API on one port,
served by the shared :class:`joulecast.serving.server.ServiceServer`."""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry

from joulecast.exporter.api import MarkerApi
from joulecast.exporter.collectors.exporter_self import ApiStats
from joulecast.serving.daemon import make_server, renderer
from joulecast.serving.server import ServiceServer

log = logging.getLogger("joulecast.exporter")

LANDING = """<html><head><title>joulecast exporter</title></head><body>
<h1>joulecast exporter</h1><p><a href="{path}">Metrics</a> &middot;
<a href="/api/v1/jobs">Jobs</a> &middot; <a href="/healthz">Health</a></p></body></html>"""


def exporter_server(
    args: argparse.Namespace,
    registry: CollectorRegistry,
    api: MarkerApi,
    stats: ApiStats,
    health: Callable[[], tuple[bool, dict[str, Any]]],
) -> ServiceServer:
    def handle(
        method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, dict, str]:
        resp = api.handle(method, path, headers, body)
        return resp.status, resp.body, resp.route

    return make_server(
        args,
        log,
        api_token_used=True,
        metrics=renderer(registry),
        health=health,
        api=handle,
        telemetry_path=args.web_telemetry_path,
        landing=LANDING.format(path=args.web_telemetry_path),
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


def exporter_health(
    sampling: Callable[[], tuple[bool, dict]], store: Callable[[], tuple[bool, str]]
) -> Callable[[], tuple[bool, dict]]:
    """503 when sampling has stopped (unhealthy) or job state cannot be persisted (degraded:
    markers are refused with 503 until the disk recovers)."""

    def check() -> tuple[bool, dict]:
        ok, detail = sampling()
        stored, why = store()
        if ok and not stored:
            return False, {"status": "degraded", "detail": why}
        return ok, detail if stored else {**detail, "state": why}

    return check
