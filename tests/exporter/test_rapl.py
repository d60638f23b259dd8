"""RAPL powercap reading against fixture sysfs trees."""

from __future__ import annotations

from pathlib import Path

from joulecast.exporter.host.rapl import RaplReader


def zone(root: Path, name: str, label: str, energy_uj: int, wrap_uj: int = 262143328850) -> Path:
    z = root / "class" / "powercap" / name
    z.mkdir(parents=True)
    (z / "name").write_text(label + "\n")
    (z / "energy_uj").write_text(f"{energy_uj}\n")
    (z / "max_energy_range_uj").write_text(f"{wrap_uj}\n")
    return z


def test_reads_package_and_dram_and_undoes_wraps(tmp_path):
    pkg = zone(tmp_path, "intel-rapl:0", "package-0", 1_000_000, wrap_uj=10_000_000)
    dram = zone(tmp_path, "intel-rapl:0:1", "dram", 5_000_000)
    reader = RaplReader(tmp_path)
    assert {(z.domain, z.socket) for z in reader.zones} == {("package", "0"), ("dram", "0")}
    reader.read()
    (pkg / "energy_uj").write_text("9000000")
    (dram / "energy_uj").write_text("6000000")
    reader.read()
    (pkg / "energy_uj").write_text("500000")  # wrapped at 10 J
    got = {r.domain: r.joules_total for r in reader.read()}
    assert got["package"] == 8.0 + 1.5
    assert got["dram"] == 1.0


def test_missing_or_unreadable_powercap_is_no_data(tmp_path):
    assert RaplReader(tmp_path).read() == []
    z = zone(tmp_path, "intel-rapl:0", "package-0", 1)
    (z / "energy_uj").unlink()
    assert RaplReader(tmp_path).zones == []
