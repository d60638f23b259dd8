"""Every flag has an environment twin; bad values are clear errors."""

from __future__ import annotations

import pytest

from joulecast.serving.flags import FlagError, env_name


def test_env_names():
    assert env_name("--web.listen-address") == "JOULECAST_WEB_LISTEN_ADDRESS"
    assert env_name("--simulated.gpus") == "JOULECAST_SIMULATED_GPUS"


def test_exporter_env_twins(monkeypatch):
    from joulecast.exporter.cli import build_parser

    monkeypatch.setenv("JOULECAST_SIMULATED_GPUS", "3")
    monkeypatch.setenv("JOULECAST_COLLECTOR_RAPL", "false")
    monkeypatch.setenv("JOULECAST_WEB_LISTEN_ADDRESS", "0.0.0.0:9999")
    args = build_parser().parse_args([])
    assert args.simulated_gpus == 3 and args.collector_rapl is False
    assert args.web_listen_address == ("0.0.0.0", 9999)
    assert build_parser().parse_args(["--simulated.gpus", "5"]).simulated_gpus == 5  # flag wins
    monkeypatch.setenv("JOULECAST_COLLECTOR_RAPL", "maybe")
    with pytest.raises(FlagError, match="JOULECAST_COLLECTOR_RAPL"):
        build_parser()


def test_estimator_env_twins(monkeypatch):
    from joulecast.estimator.cli import build_parser, step_config

    monkeypatch.setenv("JOULECAST_PROMETHEUS_URL", "http://vm:8428")
    monkeypatch.setenv("JOULECAST_PROMETHEUS_HEADERS", "X-Scope-OrgID=team-a")
    monkeypatch.setenv("JOULECAST_STEP_STABILIZING_EPOCH", "10")
    args = build_parser().parse_args([])
    assert args.prometheus_url == "http://vm:8428"
    assert args.prometheus_headers == {"X-Scope-OrgID": "team-a"}
    assert step_config(args).stabilizing_epoch == 10 and step_config(args).window is None
    assert step_config(build_parser().parse_args(["--step.paper"])).window == 5
