"""promtool: the config and rules parse, and every alert has firing and silent unit tests."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "prometheus"

pytestmark = pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool (Debian prometheus) not installed"
)


def promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, cwd=PROM, timeout=60)


def test_check_config():
    out = promtool("check", "config", "--syntax-only", "prometheus.yml")
    assert out.returncode == 0, out.stdout + out.stderr


def test_check_rules():
    out = promtool("check", "rules", "rules/joulecast.rules.yml")
    assert out.returncode == 0, out.stdout + out.stderr


def test_rule_unit_tests():
    out = promtool("test", "rules", "tests/alerts_test.yml")
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_alert_is_unit_tested_and_has_a_runbook():
    rules = (PROM / "rules" / "joulecast.rules.yml").read_text()
    tests = (PROM / "tests" / "alerts_test.yml").read_text()
    docs = (ROOT / "docs" / "alerts.md").read_text()
    alerts = re.findall(r"- alert: (\w+)", rules)
    assert len(alerts) >= 6
    for a in alerts:
        assert f"alertname: {a}" in tests, a
        assert f"## {a}" in docs, a
