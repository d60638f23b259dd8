"""Flags of the Prometheus room: where the TSDB is and how to talk to it."""

from __future__ import annotations

import argparse

from joulecast.estimator.prometheus.client import PromConfig
from joulecast.flags import add_flag, non_negative_int, positive_float


def _headers(v: str) -> dict[str, str]:
    out = {}
    for part in filter(None, (p.strip() for p in v.split(","))):
        k, sep, val = part.partition("=")
        if not sep or not k.strip():
            raise argparse.ArgumentTypeError(f"{part!r}: NAME=VALUE expected")
        out[k.strip()] = val.strip()
    return out


def add_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("Prometheus")
    f = add_flag
    f(
        g,
        "--prometheus-url",
        default="http://127.0.0.1:9090",
        help="Base URL of the Prometheus-compatible query API",
    )
    f(g, "--prometheus.timeout", default=10.0, type=positive_float, help="Query timeout (s)")
    f(
        g,
        "--prometheus.retries",
        default=2,
        type=non_negative_int,
        help="Retries of a failed query (exponential backoff)",
    )
    f(g, "--prometheus.username", default="", help="Basic auth user")
    f(g, "--prometheus.password", default="", help="Basic auth password")
    f(g, "--prometheus.bearer-token", default="", help="Bearer token")
    f(
        g,
        "--prometheus.headers",
        default={},
        type=_headers,
        help="Extra headers NAME=VALUE,... (e.g. X-Scope-OrgID=team-a)",
    )
    f(
        g,
        "--query.lookback",
        default=86400.0,
        type=positive_float,
        help="History read at start-up (s)",
    )


def prom_config(args: argparse.Namespace) -> PromConfig:
    return PromConfig(
        url=args.prometheus_url,
        timeout_s=args.prometheus_timeout,
        retries=args.prometheus_retries,
        username=args.prometheus_username or None,
        password=args.prometheus_password or None,
        bearer_token=args.prometheus_bearer_token or None,
        headers=dict(args.prometheus_headers),
    )
