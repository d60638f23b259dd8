"""The distribution: one import name, a client with no third-party dependency."""

from __future__ import annotations

import email
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (whl,) = out.glob("joulecast-*.whl")
    return whl


def test_wheel_installs_only_the_joulecast_import_name(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/", 1)[0] for n in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"joulecast"}
    for room in ("exporter/cli.py", "estimator/step/stage.py", "estimator/pre/gpus.py"):
        assert f"joulecast/{room}" in names
    assert "joulecast/estimator/pre/models/seed/metadata.json" in names
    assert "joulecast/estimator/pre/data/gpu_specs.csv" in names


def test_base_install_has_no_third_party_dependency(wheel):
    with zipfile.ZipFile(wheel) as z:
        meta_name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        meta = email.message_from_bytes(z.read(meta_name))
    requires = meta.get_all("Requires-Dist") or []
    assert requires, "the extras declare their dependencies"
    assert all("extra ==" in r for r in requires), requires
    extras = set(meta.get_all("Provides-Extra") or [])
    assert {"exporter", "estimator"} <= extras


def test_every_package_folder_is_listed():
    """A new subpackage must be named in pyproject.toml, or the wheel silently lacks it."""
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(conf["tool"]["setuptools"]["packages"])
    roots = conf["tool"]["setuptools"]["package-dir"]
    found = set()
    for name, folder in roots.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((name, *rel)))
    assert found == listed


@pytest.mark.integration
def test_client_from_a_bare_install_posts_markers(wheel, tmp_path, make_exporter):
    """``pip install joulecast`` into a fresh venv: nothing else installed, markers land."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "--no-index", str(wheel)],
        check=True,
        timeout=300,
    )
    frozen = subprocess.run(
        [str(py), "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True
    ).stdout
    third_party = {line.split("==")[0].lower() for line in frozen.split()} - {
        "joulecast",
        "pip",
        "setuptools",
        "wheel",
    }
    assert third_party == set(), frozen
    exp = make_exporter("--simulated.gpus", "1")
    script = (
        "import joulecast\n"
        f"with joulecast.job('bare-install', epochs=2, url={exp.url!r}, gpus=[0]) as j:\n"
        "    j.epoch_end({'loss': 1.0})\n"
        "    j.epoch_end({'loss': 0.5})\n"
    )
    run = subprocess.run([str(py), "-c", script], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    from tests.conftest import http

    status, body = http("GET", exp.url + "/api/v1/jobs/bare-install")
    assert status == 200 and len(body["epochs"]) == 2


@pytest.mark.integration
@pytest.mark.parametrize(
    "extra, command, absent",
    [
        ("exporter", "joulecast-exporter", "sklearn"),  # no estimator stack on a GPU node
        ("estimator", "joulecast-estimator", "pynvml"),  # no NVML beside Prometheus
    ],
)
def test_each_extra_installs_its_daemon_and_only_its_stack(wheel, tmp_path, extra, command, absent):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    install = subprocess.run(
        [str(py), "-m", "pip", "install", "-q", f"{wheel}[{extra}]"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stderr[-2000:]
    version = subprocess.run(
        [str(venv / "bin" / command), "--version"], capture_output=True, text=True, timeout=60
    )
    assert version.returncode == 0 and "joulecast" in version.stdout, version.stderr
    probe = subprocess.run([str(py), "-c", f"import {absent}"], capture_output=True, timeout=60)
    assert probe.returncode != 0, f"{absent} came with joulecast[{extra}]"
