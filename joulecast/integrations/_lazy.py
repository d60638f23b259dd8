"""Callback classes whose base class comes from a framework imported only when used.

Each integration module builds its class on first use and exposes it as a module
attribute (PEP 562), so that pickle finds it by name: Lightning's ``ddp_spawn`` and other
multiprocessing launchers send callbacks to new processes.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable


def first_importable(candidates: Iterable[tuple[str, str]], what: str) -> type:
    """The first ``module.attr`` that imports, e.g. ``("lightning.pytorch", "Callback")``."""
    for module, attr in candidates:
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError):
            continue
    raise ImportError(f"joulecast.integrations.{what} needs {what} installed")
