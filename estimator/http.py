"""The estimator's HTTP endpoint: ``/metrics``, ``/healthz``, a landing page and the queue
API, served by the shared :class:`joulecast.serving.server.ServiceServer`."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry

from joulecast.estimator.queue.api import QueueApi
from joulecast.serving.daemon import make_server, renderer
from joulecast.serving.server import ServiceServer

log = logging.getLogger("joulecast.estimator")

LANDING = """<html><head><title>joulecast estimator</title></head><body>
<h1>joulecast estimator</h1><p><a href="{path}">Metrics</a> &middot;
<a href="/api/v1/queue">Queue</a> &middot; <a href="/healthz">Health</a></p></body></html>"""


def estimator_server(
    args: argparse.Namespace,
    registry: CollectorRegistry,
    health: Callable[[], tuple[bool, dict[str, Any]]],
    queue_api: QueueApi | None = None,
) -> ServiceServer:
    def handle(
        method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, dict, str]:
        assert queue_api is not None
        status, payload = queue_api.handle(method, path, headers, body)
        return status, payload, "/api/v1/queue"

    return make_server(
        args,
        log,
        api_token_used=queue_api is not None,
        metrics=renderer(registry),
        health=health,
        api=handle if queue_api is not None else None,
        telemetry_path=args.web_telemetry_path,
        landing=LANDING.format(path=args.web_telemetry_path),
        no_api_message="no queue: start the estimator with --queue.dir",
    )
