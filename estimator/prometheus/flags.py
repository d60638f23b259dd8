"""Flags of the Prometheus room: where the TSDB is and how to talk to it."""

from __future__ import annotations

import argparse
import urllib.parse
from pathlib import Path

from joulecast.estimator.prometheus.client import PromConfig
from joulecast.serving.flags import add_flag, non_negative_int, positive_float, positive_int


def _headers(v: str) -> dict[str, str]:
    out = {}
    for part in filter(None, (p.strip() for p in v.split(","))):
        k, sep, val = part.partition("=")
        if not sep or not k.strip():
            raise argparse.ArgumentTypeError(f"{part!r}: NAME=VALUE expected")
        out[k.strip()] = val.strip()
    return out


def prometheus_url(v: str) -> str:
    """A base URL with a scheme and a host, e.g. ``http://127.0.0.1:9090``."""
    parsed = urllib.parse.urlsplit(v.strip())
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise argparse.ArgumentTypeError(
            f"{v!r} is not a URL with http:// or https:// and a host (e.g. http://127.0.0.1:9090)"
        )
    return v.strip().rstrip("/")


def _secret(path: str, flag: str) -> str:
    try:
        value = Path(path).read_text().strip()
    except OSError as err:
        raise ValueError(f"{flag}: {err}") from err
    if not value:
        raise ValueError(f"{flag}: {path} is empty")
    return value


def _readable(path: str, flag: str) -> str | None:
    if not path:
        return None
    if not Path(path).is_file():
        raise ValueError(f"{flag}: {path} is not a file")
    return path


def add_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("Prometheus")
    f = add_flag
    f(
        g,
        "--prometheus.url",
        default="http://127.0.0.1:9090",
        type=prometheus_url,
        help="Base URL of the Prometheus-compatible query API (http:// or https://)",
        aliases=("--prometheus-url",),
    )
    f(
        g,
        "--prometheus.timeout",
        default=10.0,
        type=positive_float,
        help="Seconds a query may take, its whole answer read (not each read)",
    )
    f(
        g,
        "--prometheus.max-answer-bytes",
        default=64 * 1024 * 1024,
        type=positive_int,
        help="Largest answer read from a query, decompressed (bigger: the query fails)",
    )
    f(
        g,
        "--prometheus.retries",
        default=2,
        type=non_negative_int,
        help="Retries of a failed query (exponential backoff)",
    )
    f(g, "--prometheus.username", default="", help="Basic auth user")
    f(g, "--prometheus.password", default="", help="Basic auth password")
    f(g, "--prometheus.password-file", default="", help="File holding the basic auth password")
    f(g, "--prometheus.bearer-token", default="", help="Bearer token")
    f(g, "--prometheus.bearer-token-file", default="", help="File holding the bearer token")
    f(g, "--prometheus.tls.ca-file", default="", help="CA certificate(s) to verify the server with")
    f(g, "--prometheus.tls.cert-file", default="", help="Client certificate (mutual TLS)")
    f(g, "--prometheus.tls.key-file", default="", help="Key of the client certificate")
    f(
        g,
        "--prometheus.tls.insecure-skip-verify",
        default=False,
        boolean=True,
        help="Do not verify the server's certificate (testing only)",
    )
    f(
        g,
        "--prometheus.headers",
        default={},
        type=_headers,
        help="Extra headers NAME=VALUE,... (e.g. X-Scope-OrgID=team-a)",
    )
    f(
        g,
        "--prometheus.tenant",
        default="",
        help="Tenant the store serves (sent in --prometheus.tenant-header: Mimir, Cortex, "
        "a multi-tenant proxy; VictoriaMetrics cluster takes it in the URL path instead)",
    )
    f(g, "--prometheus.tenant-file", default="", help="File holding the tenant")
    f(
        g,
        "--prometheus.tenant-header",
        default="X-Scope-OrgID",
        help="Header that carries the tenant",
    )
    f(
        g,
        "--query.lookback",
        default=86400.0,
        type=positive_float,
        help="History read at start-up (s)",
    )
    f(
        g,
        "--query.overlap",
        default=30.0,
        type=positive_float,
        help="Seconds before the last cycle a cycle reads again: scrape and ingestion lag "
        "(remote_write, VictoriaMetrics' -search.latencyOffset)",
    )
    f(
        g,
        "--query.incremental",
        default=True,
        boolean=True,
        help="Between whole reads, read every job's live series and only what changed of the rest",
    )
    f(
        g,
        "--query.resync-interval",
        default=300.0,
        type=positive_float,
        help="Seconds between whole reads of every job's state",
    )


def prom_config(args: argparse.Namespace) -> PromConfig:
    """The client's configuration; secrets files are read and TLS files checked here, so a
    mistake stops the start-up with a message instead of failing every cycle."""
    password = args.prometheus_password or None
    if args.prometheus_password_file:
        password = _secret(args.prometheus_password_file, "--prometheus.password-file")
    token = args.prometheus_bearer_token or None
    if args.prometheus_bearer_token_file:
        token = _secret(args.prometheus_bearer_token_file, "--prometheus.bearer-token-file")
    headers = dict(args.prometheus_headers)
    tenant = args.prometheus_tenant or None
    if args.prometheus_tenant_file:
        tenant = _secret(args.prometheus_tenant_file, "--prometheus.tenant-file")
    if tenant:
        headers[args.prometheus_tenant_header] = tenant
    return PromConfig(
        url=args.prometheus_url,
        timeout_s=args.prometheus_timeout,
        max_answer_bytes=args.prometheus_max_answer_bytes,
        retries=args.prometheus_retries,
        username=args.prometheus_username or None,
        password=password,
        bearer_token=token,
        headers=headers,
        ca_file=_readable(args.prometheus_tls_ca_file, "--prometheus.tls.ca-file"),
        cert_file=_readable(args.prometheus_tls_cert_file, "--prometheus.tls.cert-file"),
        key_file=_readable(args.prometheus_tls_key_file, "--prometheus.tls.key-file"),
        insecure_skip_verify=args.prometheus_tls_insecure_skip_verify,
    )
