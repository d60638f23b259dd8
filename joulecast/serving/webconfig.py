"""What both daemons share about serving: the ``--web.*`` flags, the web configuration file
in the format Prometheus exporters share (exporter-toolkit), TLS and basic auth.

    tls_server_config:
      cert_file: server.crt
      key_file: server.key
      client_auth_type: RequireAndVerifyClientCert   # or NoClientCert (default), ...
      client_ca_file: ca.crt
    basic_auth_users:
      prometheus: $2b$12$...            # bcrypt hash, e.g. htpasswd -nBC 12 "" | tr -d ':'

Relative paths are read from the file's folder. SIGHUP reads the file again (certificates
included); a file that no longer loads is logged and the running configuration kept. PyYAML and bcrypt are imported only when
a configuration file is given (both come with the ``exporter`` and ``estimator`` extras).
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from joulecast.serving.auth import BasicAuth
from joulecast.serving.flags import add_flag
from joulecast.serving.limits import add_limit_flags

log = logging.getLogger("joulecast.serving.webconfig")

CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "RequestClientCert": ssl.CERT_OPTIONAL,
    "RequireAnyClientCert": ssl.CERT_REQUIRED,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}


class WebConfigError(ValueError):
    """The web configuration file is unusable; the message says which field and why."""


@dataclass(frozen=True)
class TlsConfig:
    cert_file: Path
    key_file: Path
    client_auth_type: str = "NoClientCert"
    client_ca_file: Path | None = None

    def context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        # no TLS 1.3 session tickets: behind them asyncio's TLS holds the first answer of
        # every new connection ~40 ms (a delayed ACK); scrapers keep connections alive anyway
        ctx.num_tickets = 0
        try:
            ctx.load_cert_chain(self.cert_file, self.key_file)
            ctx.verify_mode = CLIENT_AUTH[self.client_auth_type]
            if self.client_ca_file is not None:
                ctx.load_verify_locations(cafile=str(self.client_ca_file))
        except (OSError, ssl.SSLError) as err:
            raise WebConfigError(f"TLS: {err}") from err
        return ctx


@dataclass(frozen=True)
class WebConfig:
    tls: TlsConfig | None = None
    basic_auth_users: dict[str, str] = field(default_factory=dict)

    def ssl_context(self) -> ssl.SSLContext | None:
        return self.tls.context() if self.tls is not None else None

    def auth(self) -> BasicAuth | None:
        return BasicAuth(self.basic_auth_users) if self.basic_auth_users else None


def _path(base: Path, value: Any, name: str) -> Path:
    if not isinstance(value, str) or not value:
        raise WebConfigError(f"tls_server_config.{name} must be a file path")
    path = (base / value) if not Path(value).is_absolute() else Path(value)
    if not path.is_file():
        raise WebConfigError(f"tls_server_config.{name}: {path} is not a file")
    return path


def load_web_config(path: Path) -> WebConfig:
    try:
        import yaml
    except ImportError as err:  # pragma: no cover - the extras install it
        raise WebConfigError("--web.config.file needs PyYAML (pip install pyyaml)") from err
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise WebConfigError(f"{path}: {err}") from err
    if not isinstance(raw, dict):
        raise WebConfigError(f"{path}: a mapping is expected")
    unknown = set(raw) - {"tls_server_config", "basic_auth_users", "http_server_config"}
    if unknown:
        raise WebConfigError(f"{path}: unknown keys {', '.join(sorted(unknown))}")
    base = path.parent
    tls = None
    if raw.get("tls_server_config"):
        t = raw["tls_server_config"]
        if not isinstance(t, dict):
            raise WebConfigError("tls_server_config must be a mapping")
        auth_type = t.get("client_auth_type", "NoClientCert")
        if auth_type not in CLIENT_AUTH:
            raise WebConfigError(
                f"tls_server_config.client_auth_type must be one of {', '.join(CLIENT_AUTH)}"
            )
        ca = _path(base, t["client_ca_file"], "client_ca_file") if t.get("client_ca_file") else None
        if auth_type == "RequireAndVerifyClientCert" and ca is None:
            raise WebConfigError("client_auth_type RequireAndVerifyClientCert needs client_ca_file")
        tls = TlsConfig(
            _path(base, t.get("cert_file"), "cert_file"),
            _path(base, t.get("key_file"), "key_file"),
            auth_type,
            ca,
        )
    users = raw.get("basic_auth_users") or {}
    if not isinstance(users, dict) or not all(
        isinstance(u, str) and isinstance(h, str) and h.startswith("$2") for u, h in users.items()
    ):
        raise WebConfigError("basic_auth_users must map user names to bcrypt hashes ($2...)")
    config = WebConfig(tls, dict(users))
    config.ssl_context()  # fail at start-up, not at the first request
    return config


def add_web_flags(p: argparse.ArgumentParser, what: str) -> None:
    add_flag(
        p,
        "--web.config.file",
        default="",
        help="Web configuration file (TLS, basic auth) in the exporter-toolkit format",
    )
    add_flag(
        p,
        "--web.api-token",
        default="",
        help=f"Bearer token required by the {what} API (empty: none)",
    )
    add_flag(
        p,
        "--web.api-token-file",
        default="",
        help=f"File holding the bearer token of the {what} API",
    )
    add_limit_flags(p)


def api_token(args: argparse.Namespace) -> str | None:
    if args.web_api_token_file:
        try:
            token = Path(args.web_api_token_file).read_text().strip()
        except OSError as err:
            raise WebConfigError(f"--web.api-token-file: {err}") from err
        if not token:
            raise WebConfigError(f"--web.api-token-file {args.web_api_token_file} is empty")
        return token
    return args.web_api_token or None


def web_config(args: argparse.Namespace) -> WebConfig:
    return load_web_config(Path(args.web_config_file)) if args.web_config_file else WebConfig()


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def warn_if_exposed(
    log_to: logging.Logger, address: tuple[str, int], config: WebConfig, token: str | None
) -> None:
    """A warning at start-up when a non-loopback address is served without TLS or auth."""
    host = address[0]
    if is_loopback(host):
        return
    missing = []
    if config.tls is None:
        missing.append("TLS")
    if not config.basic_auth_users and not token:
        missing.append("authentication")
    if missing:
        log_to.warning(
            "serving %s:%d beyond this host without %s: anyone who reaches it can read the "
            "metrics and post markers; set --web.config.file (and --web.api-token-file)",
            host or "0.0.0.0",
            address[1],
            " or ".join(missing),
        )
