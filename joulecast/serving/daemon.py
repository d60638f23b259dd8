"""What the exporter and the estimator share as daemons: common flags, the standard
collectors (process, platform, build info, the HTTP server's own figures), the HTTP server
as the web configuration asks, and SIGHUP to reload that configuration."""

from __future__ import annotations

import argparse
import logging
import resource
import signal
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from joulecast.serving import buildinfo
from joulecast.serving.exposition import encoder_for
from joulecast.serving.limits import server_limits
from joulecast.serving.logs import add_log_flags
from joulecast.serving.server import ServiceServer
from joulecast.serving.webconfig import (
    WebConfigError,
    add_web_flags,
    api_token,
    warn_if_exposed,
    web_config,
)


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


class ServerCollector(Collector):
    """The HTTP server's connections, closes by reason and password checks by result."""

    def __init__(self, server: ServiceServer) -> None:
        self._server = server

    def collect(self) -> Iterator[Metric]:
        stats = self._server.stats
        open_ = GaugeMetricFamily(
            "joulecast_http_connections", "Connections open to this daemon's HTTP server."
        )
        open_.add_metric([], float(stats.open_connections))
        yield open_
        closed = CounterMetricFamily(
            "joulecast_http_connections_closed",
            "Connections the server closed itself, by reason: evicted (to make room past "
            "--web.max-connections), limit (no room), timeout (request not whole in "
            "--web.read-timeout), tls (failed handshake).",
            labels=["reason"],
        )
        for reason in ("evicted", "limit", "timeout", "tls"):
            closed.add_metric([reason], float(stats.closed.get(reason, 0)))
        yield closed
        auth = CounterMetricFamily(
            "joulecast_http_auth_checks",
            "Basic auth checks by result: cached (a pair verified before), ok, refused, "
            "throttled (429: past --web.auth.rate or --web.auth.rate-per-client).",
            labels=["result"],
        )
        for result in ("cached", "ok", "refused", "throttled"):
            auth.add_metric([result], float(stats.auth.get(result, 0)))
        yield auth
        busy = CounterMetricFamily(
            "joulecast_http_busy_answers",
            "API requests answered 503 because every --web.workers thread and its queue "
            "were taken.",
        )
        busy.add_metric([], float(stats.busy))
        yield busy


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


def raise_fd_limit(wanted: int, log: logging.Logger) -> None:
    """Lift the soft limit of open files to what ``--web.max-connections`` needs (as Go
    programs do at start), within the hard limit; warn when the hard limit is too low."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if hard != resource.RLIM_INFINITY and hard < wanted:
        log.warning(
            "the open-file limit (%d) is below what --web.max-connections needs (%d)",
            hard,
            wanted,
        )


def make_server(
    args: argparse.Namespace, log: logging.Logger, *, api_token_used: bool, **kwargs: Any
) -> ServiceServer:
    """The daemon's server on ``--web.listen-address`` with TLS and basic auth from
    ``--web.config.file``; warns when it is exposed beyond this host unprotected."""
    config = web_config(args)
    token = api_token(args) if api_token_used else None
    warn_if_exposed(log, args.web_listen_address, config, token)
    limits = server_limits(args)
    raise_fd_limit(limits.max_connections + 256, log)
    return ServiceServer(
        args.web_listen_address,
        tls=config.ssl_context(),
        auth=config.auth(),
        api_bearer=token is not None,
        limits=limits,
        **kwargs,
    )


def reload_web_config(args: argparse.Namespace, server: ServiceServer, log: logging.Logger) -> bool:
    """Read ``--web.config.file`` again and hand it to the server; a file that no longer
    loads is logged and the running configuration kept."""
    try:
        config = web_config(args)
        server.reload(config.ssl_context(), config.auth())
    except WebConfigError as err:
        log.error("SIGHUP: keeping the running web configuration: %s", err)
        return False
    log.info("SIGHUP: web configuration reloaded from %s", args.web_config_file or "(none)")
    return True


def on_sighup(callback: Callable[[], Any]) -> None:
    """Run ``callback`` on SIGHUP (main thread only) instead of dying of it."""
    signal.signal(signal.SIGHUP, lambda *_: callback())
