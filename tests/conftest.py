"""Shared fixtures: an in-process exporter on a free loopback port, HTTP helpers."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


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


@pytest.fixture
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared is not beside the checkout")
    return SHARED


@pytest.fixture
def make_exporter(tmp_path: Path) -> Iterator:
    from exporter.cli import build, build_parser

    started = []

    def factory(*flags: str, backend=None, state_dir: Path | None = None):
        args = build_parser().parse_args(
            [
                "--web.listen-address",
                "127.0.0.1:0",
                "--state-dir",
                str(state_dir or tmp_path / "state"),
                "--no-collector.rapl",
                *flags,
            ]
        )
        exp = build(args, backend=backend)
        exp.start()
        started.append(exp)
        return exp

    yield factory
    for exp in started:
        exp.stop()
