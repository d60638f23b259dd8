"""What the exporter and the estimator share as daemons: common flags, the standard
collectors (process, platform, build info), the HTTP server as the web configuration asks.
Server side only: the training client never imports this module."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from joulecast import buildinfo
from joulecast.exposition import encoder_for
from joulecast.httpserver import ServiceServer
from joulecast.logs import add_log_flags
from joulecast.web import add_web_flags, api_token, warn_if_exposed, web_config


class BuildInfoCollector(Collector):
    def __init__(self, daemon: str) -> None:
        self._labels = buildinfo.labels(daemon)

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily(
            "joulecast_build_info",
            "Version, source revision and Python version of this joulecast daemon.",
            labels=list(self._labels),
        )
        info.add_metric(list(self._labels.values()), 1.0)
        yield info


def add_common_flags(p: argparse.ArgumentParser, what: str) -> None:
    add_web_flags(p, what)
    add_log_flags(p)


def metrics_registry(daemon: str) -> CollectorRegistry:
    """A registry with the standard process_*, python_* and build info families."""
    registry = CollectorRegistry(auto_describe=False)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    registry.register(BuildInfoCollector(daemon))
    return registry


def renderer(registry: CollectorRegistry) -> Callable[[str], tuple[bytes, str]]:
    """Accept header -> body in the negotiated format (Prometheus text or OpenMetrics)."""

    def render(accept: str) -> tuple[bytes, str]:
        encoder, content_type = choose_encoder(accept)
        fast = encoder_for(content_type)
        body = fast(registry.collect()) if fast is not None else encoder(registry)
        return body, content_type

    return render


def make_server(
    args: argparse.Namespace, log: logging.Logger, *, api_token_used: bool, **kwargs: Any
) -> ServiceServer:
    """The daemon's server on ``--web.listen-address`` with TLS and basic auth from
    ``--web.config.file``; warns when it is exposed beyond this host unprotected."""
    config = web_config(args)
    token = api_token(args) if api_token_used else None
    warn_if_exposed(log, args.web_listen_address, config, token)
    auth = config.auth()
    return ServiceServer(
        args.web_listen_address,
        tls=config.ssl_context(),
        auth=auth.check if auth is not None else None,
        api_bearer=token is not None,
        **kwargs,
    )
