"""The real exporter daemon under floods, on loopback, each flood bounded in time: slow
connections (plain and TLS) and bad passwords while a scraper measures; SIGHUP reloads.

Latency is judged as a ratio: a scrape's p99 under the flood against its p99 measured just
before, in the same run, on the same machine (5x is the bound the daemon must hold).
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import signal
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import pytest

from tests.stack import ROOT, free_port

pytestmark = pytest.mark.integration

USER, PASSWORD = "prometheus", "s3cret-scrape-password"
CLIENT_TLS = ssl.create_default_context()  # made once: loading the CA store takes ~20 ms
CLIENT_TLS.check_hostname = False
CLIENT_TLS.verify_mode = ssl.CERT_NONE


def make_cert(d: Path, name: str) -> tuple[Path, Path]:
    key, crt = d / f"{name}.key", d / f"{name}.crt"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
        + ["-nodes", "-days", "2", "-subj", f"/CN={name}"]
        + ["-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(crt)],
        check=True,
        capture_output=True,
    )
    return crt, key


def write_config(path: Path, users: dict[str, str], cert: tuple[Path, Path] | None) -> None:
    lines = []
    if cert is not None:
        lines += ["tls_server_config:", f"  cert_file: {cert[0]}", f"  key_file: {cert[1]}"]
    if users:
        lines.append("basic_auth_users:")
        lines += [f"  {u}: '{h}'" for u, h in users.items()]
    path.write_text("\n".join(lines) + "\n")


def hashed(password: str, rounds: int = 12) -> str:
    return bcrypt.hashpw(password.encode()[:72], bcrypt.gensalt(rounds=rounds)).decode()


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@dataclass
class Daemon:
    proc: subprocess.Popen
    port: int
    tls: bool
    log: Path

    def connection(self, timeout: float = 10.0) -> http.client.HTTPConnection:
        if self.tls:
            return http.client.HTTPSConnection(
                "127.0.0.1", self.port, timeout=timeout, context=CLIENT_TLS
            )
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def get(self, path: str, auth: str | None = basic(USER, PASSWORD)) -> tuple[int, bytes]:
        conn = self.connection()
        try:
            conn.request("GET", path, headers={"Authorization": auth} if auth else {})
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def proc_status(self) -> dict[str, int]:
        fields = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("Threads", "VmRSS"):
                fields[name] = int(value.split()[0])
        return fields


@pytest.fixture
def start(tmp_path):
    started: list[Daemon] = []

    def factory(config: Path | None, tls: bool, *flags: str) -> Daemon:
        port = free_port()
        log = tmp_path / f"exporter-{port}.log"
        args = [sys.executable, "-m", "joulecast.exporter", "--backend", "simulated"]
        args += ["--web.listen-address", f"127.0.0.1:{port}", "--no-collector.rapl"]
        args += ["--state.dir", str(tmp_path / f"state-{port}"), *flags]
        if config is not None:
            args += ["--web.config.file", str(config)]
        proc = subprocess.Popen(args, cwd=ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT)
        d = Daemon(proc, port, tls, log)
        started.append(d)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            try:
                if d.get("/healthz")[0] == 200:
                    return d
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"exporter did not start: {log.read_text()}")

    yield factory
    for d in started:
        if d.proc.poll() is None:
            d.proc.terminate()
            try:
                d.proc.wait(10)
            except subprocess.TimeoutExpired:
                d.proc.kill()


def flood(d: Daemon, mode: str, *args: str) -> subprocess.Popen:
    cmd = [sys.executable, str(ROOT / "bench" / "floodclient.py"), mode, "127.0.0.1"]
    cmd += [str(d.port), *args] + (["--tls"] if d.tls else [])
    p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None
    assert p.stdout.readline().strip() == "ready"
    return p


def summary(p: subprocess.Popen) -> dict:
    out, _ = p.communicate(timeout=90)
    return json.loads(out.strip().splitlines()[-1])


def scrape_latency(d: Daemon, n: int = 100) -> tuple[float, float, list[int]]:
    """Median and p99 latency of n scrapes of /metrics, each on a new connection, and their
    statuses."""
    took, statuses = [], []
    for _ in range(n):
        started = time.perf_counter()
        try:
            status, _ = d.get("/metrics")
        except OSError:
            status = 0
        took.append(time.perf_counter() - started)
        statuses.append(status)
    took.sort()
    return took[(n - 1) // 2], took[int(0.99 * (n - 1))], statuses


def loaded_latency(d: Daemon) -> tuple[float, float, list[int]]:
    """Two rounds of scrapes under the flood, the one with the lower p99: on two cores a p99
    of a few milliseconds moves with the scheduler (the flood client shares the cores),
    while a starved server fails both rounds by orders of magnitude."""
    first, second = scrape_latency(d), scrape_latency(d)
    best = min(first, second, key=lambda r: r[1])
    return best[0], best[1], first[2] + second[2]


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_two_thousand_slow_connections_hold_neither_scrapes_nor_threads(start, tmp_path, tls):
    config = None
    if tls:
        config = tmp_path / "web.yml"
        write_config(config, {USER: hashed(PASSWORD, rounds=4)}, make_cert(tmp_path, "server"))
    d = start(config, tls, "--web.read-timeout", "8")
    unloaded, unloaded_p99, ok = scrape_latency(d)
    before = d.proc_status()
    slow = flood(d, "slow", "--n", "2000", "--duration", "20")
    loaded, loaded_p99, statuses = loaded_latency(d)
    during = d.proc_status()
    result = summary(slow)
    print(
        f"slow flood ({'tls' if tls else 'plain'}): median (p99) {unloaded * 1e3:.1f} "
        f"({unloaded_p99 * 1e3:.1f}) ms alone, {loaded * 1e3:.1f} ({loaded_p99 * 1e3:.1f}) ms "
        f"under 2,000 slow connections; {result}; {before} -> {during}"
    )
    assert set(ok) == {200} and set(statuses) == {200}
    assert loaded_p99 < 5 * unloaded_p99
    assert result["opened"] + result["refused"] == 2000
    # every slow connection was closed by the server: made room for others or cut at the
    # whole-request deadline (8 s), not held for the 20 s the flood lasted
    assert result["closed_by_server"] == result["opened"]
    assert result["last_closed_after_s"] < 8 + 4
    # no thread per connection; memory for 1,024 parked connections at most
    assert during["Threads"] <= before["Threads"] + 2 + 8 + 1
    assert during["VmRSS"] - before["VmRSS"] < 96 * 1024


def test_a_flood_of_bad_passwords_neither_starves_scrapes_nor_runs_bcrypt_unbounded(
    start, tmp_path
):
    config = tmp_path / "web.yml"
    write_config(config, {USER: hashed(PASSWORD)}, None)  # cost 12: ~0.3 s a check
    d = start(config, False)
    unloaded, unloaded_p99, ok = scrape_latency(d)
    before = d.proc_status()
    guesses = flood(d, "guess", "--threads", "64", "--duration", "8")
    loaded, loaded_p99, statuses = loaded_latency(d)
    during = d.proc_status()
    result = summary(guesses)
    status, metrics = d.get("/metrics")
    checks = {
        line.split('"')[1]: float(line.rsplit(" ", 1)[1])
        for line in metrics.decode().splitlines()
        if line.startswith("joulecast_http_auth_checks_total{")
    }
    print(
        f"bad-password flood: median (p99) {unloaded * 1e3:.1f} ({unloaded_p99 * 1e3:.1f}) ms "
        f"alone, {loaded * 1e3:.1f} ({loaded_p99 * 1e3:.1f}) ms under 64 guessing clients; "
        f"{result}; checks {checks}; {before} -> {during}"
    )
    assert set(ok) == {200} and set(statuses) == {200}
    assert loaded_p99 < 5 * unloaded_p99
    assert set(result["statuses"]) <= {"401", "429"}
    assert int(result["statuses"].get("429", 0)) > 0  # the throttle, not bcrypt, said no
    # bcrypt ran at most at the configured rate: 4/s for all clients, burst 16, over ~8 s
    assert checks["refused"] <= 16 + 4 * 12
    assert during["Threads"] <= before["Threads"] + 2 + 8 + 1


def test_sighup_reloads_users_and_certificates_and_survives_a_bad_file(start, tmp_path):
    config = tmp_path / "web.yml"
    first = make_cert(tmp_path, "first")
    write_config(config, {USER: hashed(PASSWORD, rounds=4)}, first)
    d = start(config, True)

    def served_cert() -> bytes:
        conn = d.connection()
        conn.connect()
        der = conn.sock.getpeercert(binary_form=True)  # type: ignore[union-attr]
        conn.close()
        return der

    cert_before = served_cert()
    write_config(config, {"alice": hashed("wonderland", rounds=4)}, make_cert(tmp_path, "second"))
    d.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while d.get("/metrics", basic("alice", "wonderland"))[0] != 200:
        assert time.monotonic() < deadline and d.proc.poll() is None
        time.sleep(0.2)
    assert d.get("/metrics")[0] == 401  # the old user is gone
    assert served_cert() != cert_before
    assert ssl.DER_cert_to_PEM_cert(served_cert()).strip() == (
        (tmp_path / "second.crt").read_text().strip()
    )
    config.write_text("basic_auth_users: [not, a, mapping\n")
    d.proc.send_signal(signal.SIGHUP)
    time.sleep(1)
    assert d.proc.poll() is None
    assert d.get("/metrics", basic("alice", "wonderland"))[0] == 200
    assert "keeping the running web configuration" in d.log.read_text()
    os.kill(d.proc.pid, signal.SIGTERM)
    assert d.proc.wait(10) == 0


def test_the_estimator_reloads_on_sighup_too(tmp_path):
    config = tmp_path / "web.yml"
    write_config(config, {USER: hashed(PASSWORD, rounds=4)}, None)
    port = free_port()
    log = tmp_path / "estimator.log"
    args = [sys.executable, "-m", "joulecast.estimator", "--prometheus.url", "http://127.0.0.1:9"]
    args += ["--web.listen-address", f"127.0.0.1:{port}", "--web.config.file", str(config)]
    args += ["--step.calibration-file", str(tmp_path / "calibration.json")]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT)
    d = Daemon(proc, port, False, log)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if d.get("/metrics")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, log.read_text()
            time.sleep(0.2)
        write_config(config, {"alice": hashed("wonderland", rounds=4)}, None)
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while d.get("/metrics", basic("alice", "wonderland"))[0] != 200:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.2)
        assert d.get("/metrics")[0] == 401
    finally:
        proc.terminate()
        proc.wait(10)
