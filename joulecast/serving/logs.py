"""``--log.level`` and ``--log.format`` (logfmt or json), as Prometheus exporters have them."""

from __future__ import annotations

import argparse
import json
import logging
import time

from joulecast.serving.flags import add_flag

LEVELS = ["debug", "info", "warning", "error"]


def add_log_flags(p: argparse.ArgumentParser) -> None:
    add_flag(p, "--log.level", default="info", choices=LEVELS, help="Log level")
    add_flag(p, "--log.format", default="logfmt", choices=["logfmt", "json"], help="Log format")


def _stamp(record: logging.LogRecord) -> str:
    ms = int(record.msecs)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{ms:03d}Z"


def _logfmt_value(v: str) -> str:
    if v and not any(c in v for c in ' ="\\\n'):
        return v
    return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _fields(formatter: logging.Formatter, record: logging.LogRecord) -> dict[str, str]:
    out = {
        "ts": _stamp(record),
        "level": record.levelname.lower(),
        "logger": record.name,
        "msg": record.getMessage(),
    }
    if record.exc_info:
        out["err"] = formatter.formatException(record.exc_info)
    return out


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{k}={_logfmt_value(v)}" for k, v in _fields(self, record).items())


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(_fields(self, record))


def setup_logging(args: argparse.Namespace) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if args.log_format == "json" else LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(args.log_level.upper())
