"""Command-line flags in the Prometheus exporters' style, each with an environment twin.

``--web.listen-address`` reads its default from ``JOULECAST_WEB_LISTEN_ADDRESS``: the flag
name upper-cased, ``.`` and ``-`` turned into ``_``, under a ``JOULECAST_`` prefix. The
help text of every flag names its variable and default.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any


def env_name(flag: str, prefix: str = "JOULECAST_") -> str:
    return prefix + flag.lstrip("-").upper().replace(".", "_").replace("-", "_")


class FlagError(ValueError):
    pass


def add_flag(
    parser: argparse._ActionsContainer,
    flag: str,
    *,
    default: Any,
    help: str,
    type: Callable[[str], Any] = str,
    choices: list[str] | None = None,
    boolean: bool = False,
    prefix: str = "JOULECAST_",
    aliases: tuple[str, ...] = (),
) -> None:
    """Add ``flag`` with its environment twin. ``aliases`` are former spellings, accepted
    (with a warning on standard error) but hidden from ``--help``."""
    env = env_name(flag, prefix)
    raw = os.environ.get(env)
    value = default
    if raw is not None and raw != "":
        if boolean:
            if raw.lower() not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                raise FlagError(f"{env}={raw!r} is not a boolean")
            value = raw.lower() in ("1", "true", "yes", "on")
        else:
            try:
                value = type(raw)
            except (TypeError, ValueError, argparse.ArgumentTypeError) as err:
                raise FlagError(f"{env}={raw!r}: {err}") from err
            if choices and value not in choices:
                raise FlagError(f"{env}={raw!r}: choose from {', '.join(choices)}")
    dest = flag.lstrip("-").replace(".", "_").replace("-", "_")
    text = f"{help} [env {env}; default {default!r}]"
    if boolean:
        parser.add_argument(
            flag, dest=dest, default=value, help=text, action=argparse.BooleanOptionalAction
        )
    else:
        parser.add_argument(flag, dest=dest, default=value, help=text, type=type, choices=choices)
    for old in aliases:
        parser.add_argument(
            old,
            dest=dest,
            default=argparse.SUPPRESS,
            help=argparse.SUPPRESS,
            type=type,
            choices=choices,
            action=_Renamed,
            new=flag,
        )


class _Renamed(argparse.Action):
    """A former spelling of a flag: stores the value and says the new name once."""

    def __init__(self, *args: Any, new: str, **kwargs: Any) -> None:
        self.new = new
        super().__init__(*args, **kwargs)

    def __call__(self, parser: Any, namespace: Any, values: Any, option: str | None = None) -> None:
        import sys

        print(f"warning: {option} is deprecated; use {self.new}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def listen_address(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep:
        raise argparse.ArgumentTypeError(f"{value!r} is not HOST:PORT")
    try:
        port_n = int(port)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{value!r}: port must be a number") from err
    if not 0 <= port_n <= 65535:
        raise argparse.ArgumentTypeError(f"{value!r}: port out of range")
    return (host.strip("[]") or "0.0.0.0", port_n)


def _number(value: str) -> float:
    try:
        return float(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from err


def positive_float(value: str) -> float:
    f = _number(value)
    if not f > 0:
        raise argparse.ArgumentTypeError(f"{value!r} must be > 0")
    return f


def non_negative_float(value: str) -> float:
    f = _number(value)
    if not f >= 0 or f == float("inf"):
        raise argparse.ArgumentTypeError(f"{value!r} must be a finite number >= 0")
    return f


def positive_int(value: str) -> int:
    n = non_negative_int(value)
    if n < 1:
        raise argparse.ArgumentTypeError(f"{value!r} must be >= 1")
    return n


def non_negative_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{value!r} is not an integer") from err
    if n < 0:
        raise argparse.ArgumentTypeError(f"{value!r} must be >= 0")
    return n
