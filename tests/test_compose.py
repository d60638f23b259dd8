"""docker-compose.yml validates with Debian's docker-compose and keeps its promises."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
needs_compose = pytest.mark.skipif(
    shutil.which("docker-compose") is None, reason="docker-compose (Debian) not installed"
)


def compose(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["docker-compose", *args], cwd=ROOT, capture_output=True, text=True, timeout=60
    )


@needs_compose
def test_compose_config_is_valid():
    for profile in ("demo", "gpu"):
        out = compose("--profile", profile, "config", "-q")
        assert out.returncode == 0, out.stderr


@needs_compose
def test_compose_pins_images_mounts_provisioning_and_checks_health():
    svc = yaml.safe_load(compose("config").stdout)["services"]
    for s in svc.values():
        assert ":" in s["image"] and not s["image"].endswith(":latest"), s["image"]
    assert svc["exporter"]["pid"] == "host"
    assert svc["exporter"]["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == [
        "gpu"
    ]
    assert svc["exporter-simulated"]["environment"]["JOULECAST_BACKEND"] == "simulated"
    for name in ("prometheus", "alertmanager", "grafana"):
        assert "healthcheck" in svc[name], name
    grafana_mounts = " ".join(str(v) for v in svc["grafana"]["volumes"])
    assert "provisioning" in grafana_mounts and "dashboards" in grafana_mounts
    for path in (
        "prometheus/prometheus.yml",
        "alertmanager/alertmanager.yml",
        "grafana/provisioning/datasources/prometheus.yml",
        "docker/Dockerfile.exporter",
        "docker/Dockerfile.estimator",
        "docker/Dockerfile.demo-job",
    ):
        assert (ROOT / path).is_file(), path


def test_published_ports_are_loopback_only():
    """Safe by default: nothing is reachable from other hosts until it is protected."""
    import yaml

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), (name, port)
    for unit in (ROOT / "deploy" / "systemd").glob("*.service"):
        listen = [
            line
            for line in unit.read_text().splitlines()
            if line.startswith("Environment=JOULECAST_WEB_LISTEN_ADDRESS=")
        ]
        assert listen and all("=127.0.0.1:" in line for line in listen), unit.name
