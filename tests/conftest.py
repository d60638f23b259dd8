"""Shared fixtures: an in-process exporter on a free loopback port, HTTP helpers."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"

#: Development data the suite reads from ``../shared`` (a folder beside the checkout, not
#: part of the repository): what each file is needed for.
SHARED_FILES = {
    "data/reference_runs.csv": "PRE accuracy and self-calibration tests",
    "data/traces/eatit_vgg16_rtx3090.csv": "STEP on real per-epoch traces",
    "data/power_traces": "replay of real 1 Hz GPU power traces",
}


def missing_shared() -> dict[str, str]:
    return {rel: why for rel, why in SHARED_FILES.items() if not (SHARED / rel).exists()}


def pytest_sessionstart(session: pytest.Session) -> None:
    """Say once, at the top of the run (also under -q), what is skipped and why."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None and session.config.get_verbosity() < 0:
        for line in pytest_report_header(session.config):
            reporter.write_line(line)


def pytest_report_header(config: pytest.Config) -> list[str]:
    missing = missing_shared()
    if not missing:
        lines = [f"development data: {SHARED} (all present)"]
    else:
        head = f"development data: {len(missing)} of {len(SHARED_FILES)} missing under {SHARED}"
        lines = [head + "; these tests are skipped:"] + [
            f"  ../shared/{rel}: {why}" for rel, why in missing.items()
        ]
    frameworks = os.environ.get("JOULECAST_FRAMEWORKS_PYTHON", "")
    lines.append(
        f"training frameworks: {frameworks}"
        if frameworks
        else "training frameworks: none (JOULECAST_FRAMEWORKS_PYTHON unset): "
        "tests/frameworks is skipped; scripts/test.sh sets it up"
    )
    return lines


def shared_path(rel: str) -> Path:
    """A file of ``../shared``, or a skip that names it when it is not there."""
    path = SHARED / rel
    if not path.exists():
        pytest.skip(f"development data ../shared/{rel} is not beside the checkout")
    return path


def http(
    method: str,
    url: str,
    body: object = None,
    *,
    raw: bytes | None = None,
    headers: dict | None = None,
    timeout: float = 5.0,
) -> tuple[int, dict]:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            text = resp.read()
            return resp.status, json.loads(text) if text else {}
    except urllib.error.HTTPError as err:
        text = err.read()
        try:
            return err.code, json.loads(text) if text else {}
        except ValueError:
            return err.code, {"raw": text.decode(errors="replace")}


def scrape(url: str) -> str:
    with urllib.request.urlopen(url + "/metrics", timeout=5) as resp:
        return resp.read().decode()


def exporter_in_process(state_dir: Path, *flags: str, backend=None):
    """A started exporter of this process (``exp.stop()`` when done)."""
    from joulecast.exporter.cli import build, build_parser

    args = build_parser().parse_args(
        ["--web.listen-address", "127.0.0.1:0", "--state.dir", str(state_dir),
         "--no-collector.rapl", *flags]
    )  # fmt: skip
    exp = build(args, backend=backend)
    exp.start()
    return exp


@pytest.fixture
def make_exporter(tmp_path: Path) -> Iterator:
    started = []

    def factory(*flags: str, backend=None, state_dir: Path | None = None):
        exp = exporter_in_process(state_dir or tmp_path / "state", *flags, backend=backend)
        started.append(exp)
        return exp

    yield factory
    for exp in started:
        exp.stop()
