"""Field checks shared by the payload schemas: each raises :class:`SchemaError` with a
message fit to be returned to the user as a 4xx body. Standard library only."""

from __future__ import annotations

import math
import re
from typing import Any

LABEL_SAFE = re.compile(r"^[\x20-\x7e]*$")


class SchemaError(ValueError):
    """A payload does not match the schema. The message says which field and why."""


def require_object(payload: Any, what: str) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise SchemaError(f"{what} must be a JSON object")
    return payload


def int_in(value: Any, name: str, lo: int, hi: int) -> int:
    # bool is an int subclass in Python; true/false is never a count.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SchemaError(f"'{name}' must be an integer")
    if isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            raise SchemaError(f"'{name}' must be an integer")
        value = int(value)
    if not lo <= value <= hi:  # also an integer far beyond any float
        raise SchemaError(f"'{name}' must be between {lo} and {hi}, got {value}")
    return value


def number_in(value: Any, name: str, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SchemaError(f"'{name}' must be a number")
    try:
        value = float(value)
    except OverflowError:
        raise SchemaError(f"'{name}' is out of range") from None
    if not math.isfinite(value):
        raise SchemaError(f"'{name}' must be finite")
    if not lo <= value <= hi:
        raise SchemaError(f"'{name}' must be between {lo:g} and {hi:g}, got {value:g}")
    return value


def reject_unknown(payload: dict[str, Any], allowed: set[str], what: str) -> None:
    unknown = sorted(set(payload) - allowed)
    if unknown:
        raise SchemaError(f"unknown field(s) in {what}: {', '.join(map(str, unknown))}")


def optional_int(payload: dict[str, Any], name: str, lo: int, hi: int) -> int | None:
    return None if payload.get(name) is None else int_in(payload[name], name, lo, hi)


def int_list(value: Any, name: str, hi: int, max_len: int) -> tuple[int, ...]:
    if not isinstance(value, list):
        raise SchemaError(f"'{name}' must be a list of integers")
    if len(value) > max_len:
        raise SchemaError(f"'{name}' has more than {max_len} entries")
    items = tuple(int_in(v, f"{name}[]", 0, hi) for v in value)
    if len(set(items)) != len(items):
        raise SchemaError(f"'{name}' has duplicate entries")
    return items


def label_texts(payload: dict[str, Any], limits: dict[str, int], prefix: str) -> dict[str, str]:
    """The printable-ASCII texts of ``payload`` named in ``limits`` (name -> max length)."""
    out: dict[str, str] = {}
    for name, max_len in limits.items():
        value = payload.get(name)
        if value is None:
            continue
        if not isinstance(value, str) or len(value) > max_len or not LABEL_SAFE.fullmatch(value):
            raise SchemaError(
                f"'{prefix}.{name}' must be printable ASCII text of at most {max_len} characters"
            )
        out[name] = value
    return out
