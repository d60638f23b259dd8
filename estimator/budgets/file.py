"""Default energy budgets for jobs that declare none: one per scheduler account and one for
the fleet, read from ``--budgets.file`` and published for the alert rules to join.

    # budgets.yml
    default_kwh: 50          # a job with no budget of its own nor of its account
    accounts:                # the ``account`` label of joulecast_job_info (Slurm's -A)
      physics: 20
      ml-research: 200

A job's own ``budget_kwh`` always wins (``joulecast:job_energy_budget:joules`` in
``prometheus/rules/``). The file is read again whenever it changes; a change that does not
parse is logged and the budgets in force are kept, as Prometheus keeps its configuration
(``joulecast_budgets_last_reload_successful`` says so).
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from joulecast.fields import LABEL_SAFE
from joulecast.serving.files import read_small

log = logging.getLogger("joulecast.estimator")
KWH = 3.6e6
MAX_KWH = 1e9
MAX_ACCOUNTS = 10_000


class BudgetError(ValueError):
    """The budgets file cannot be used; the message names the key and the rule."""


@dataclass(frozen=True)
class Budgets:
    default_kwh: float | None = None
    accounts: dict[str, float] = field(default_factory=dict)


def _kwh(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BudgetError(f"{where}: a number of kWh is expected, not {value!r}")
    if not (math.isfinite(value) and 0 < value <= MAX_KWH):
        raise BudgetError(f"{where}: must be above 0 and at most {MAX_KWH:g} kWh")
    return float(value)


def parse_budgets(raw: Any) -> Budgets:
    if raw is None:
        return Budgets()
    if not isinstance(raw, dict):
        raise BudgetError("a mapping with default_kwh and accounts is expected")
    unknown = sorted(set(map(str, raw)) - {"default_kwh", "accounts"})
    if unknown:
        raise BudgetError(f"unknown key(s): {', '.join(unknown)}")
    default = raw.get("default_kwh")
    accounts = raw.get("accounts") or {}
    if not isinstance(accounts, dict):
        raise BudgetError("accounts: a mapping of account name to kWh is expected")
    if len(accounts) > MAX_ACCOUNTS:
        raise BudgetError(f"accounts: {len(accounts)} entries, at most {MAX_ACCOUNTS}")
    out = {}
    for name, kwh in accounts.items():
        if not isinstance(name, str) or not 0 < len(name) <= 128 or not LABEL_SAFE.match(name):
            raise BudgetError(f"accounts: {name!r} is not an account name")
        out[name] = _kwh(kwh, f"accounts.{name}")
    return Budgets(None if default is None else _kwh(default, "default_kwh"), out)


def load_budgets(path: Path) -> Budgets:
    import yaml

    try:
        return parse_budgets(yaml.safe_load(read_small(path)))
    except (OSError, ValueError, yaml.YAMLError) as err:  # BudgetError is a ValueError
        raise BudgetError(f"{path}: {err}") from None


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


class BudgetFile:
    """The budgets in force, read again when the file changes (checked at each scrape)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._budgets = load_budgets(path)  # a bad file at start-up stops the daemon
        self._stamp = _stamp(path)
        self.last_reload_ok = True
        self._lock = threading.Lock()

    def current(self) -> Budgets:
        with self._lock:
            stamp = _stamp(self.path)
            if stamp != self._stamp:
                self._stamp = stamp
                self._reload()
            return self._budgets

    def _reload(self) -> None:
        try:
            self._budgets = load_budgets(self.path)
        except BudgetError as err:
            log.error("keeping the budgets in force: %s", err)
            self.last_reload_ok = False
            return
        self.last_reload_ok = True
        log.info("budgets reloaded from %s: %d accounts", self.path, len(self._budgets.accounts))
