"""Scrape latency of the exporter daemon under hostile floods, on loopback.

    python bench/http_flood.py [--scrapes 100] [--slow 2000] [--guessers 64]

Starts ``joulecast-exporter`` (simulated GPUs) and, from a process of its own
(``bench/floodclient.py``), each flood in turn: slow connections on plain HTTP, the same
behind TLS and basic auth, and clients guessing passwords against a cost-12 bcrypt hash as
fast as they can. During each flood a scraper fetches ``/metrics`` on a new connection each
time; its p50/p99 are set beside the same measure taken just before that flood, in the same
run. Also the daemon's threads and resident memory before and during. Writes
bench/results/http_flood.json.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bcrypt

ROOT = Path(__file__).resolve().parents[1]
USER, PASSWORD = "prometheus", "bench-password"
FLOOD = ROOT / "bench" / "floodclient.py"
CLIENT_TLS = ssl.create_default_context()  # made once: loading the CA store takes ~20 ms
CLIENT_TLS.check_hostname, CLIENT_TLS.verify_mode = False, ssl.CERT_NONE


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def web_config(d: Path, tls: bool, rounds: int) -> Path:
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=rounds)).decode()
    lines = []
    if tls:
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=bench",
                "-keyout",
                str(d / "k.pem"),
                "-out",
                str(d / "c.pem"),
            ],
            check=True,
            capture_output=True,
        )
        lines += ["tls_server_config:", f"  cert_file: {d / 'c.pem'}", f"  key_file: {d / 'k.pem'}"]
    lines += ["basic_auth_users:", f"  {USER}: '{hashed}'"]
    path = d / f"web-{tls}-{rounds}.yml"
    path.write_text("\n".join(lines) + "\n")
    return path


class Daemon:
    def __init__(self, d: Path, config: Path | None, tls: bool) -> None:
        self.port, self.tls = free_port(), tls
        args = [
            sys.executable,
            "-m",
            "joulecast.exporter",
            "--backend",
            "simulated",
            "--web.listen-address",
            f"127.0.0.1:{self.port}",
            "--no-collector.rapl",
            "--state.dir",
            str(d / f"state-{self.port}"),
        ]
        if config is not None:
            args += ["--web.config.file", str(config)]
        self.proc = subprocess.Popen(
            args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.auth = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        for _ in range(150):
            try:
                if self.get("/healthz") == 200:
                    return
            except OSError:
                time.sleep(0.2)
        raise SystemExit("the exporter did not start")

    def get(self, path: str) -> int:
        if self.tls:
            conn = http.client.HTTPSConnection(
                "127.0.0.1", self.port, timeout=10, context=CLIENT_TLS
            )
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", path, headers={"Authorization": self.auth})
            resp = conn.getresponse()
            resp.read()
            return resp.status
        finally:
            conn.close()

    def status(self) -> dict[str, int]:
        out = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("Threads", "VmRSS"):
                out[name] = int(value.split()[0])
        return out

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(10)


def scrapes(d: Daemon, n: int) -> dict:
    took, failed = [], 0
    for _ in range(n):
        t = time.perf_counter()
        try:
            failed += d.get("/metrics") != 200
        except OSError:
            failed += 1
        took.append(time.perf_counter() - t)
    took.sort()
    return {
        "p50_ms": 1e3 * took[n // 2],
        "p99_ms": 1e3 * took[int(0.99 * (n - 1))],
        "failed": failed,
    }


def run(d: Daemon, mode: str, args: list[str], n: int) -> dict:
    alone = scrapes(d, n)
    before = d.status()
    cmd = [sys.executable, str(FLOOD), mode, "127.0.0.1", str(d.port), *args]
    flood = subprocess.Popen(cmd + (["--tls"] if d.tls else []), stdout=subprocess.PIPE, text=True)
    assert flood.stdout is not None and flood.stdout.readline().strip() == "ready"
    loaded = scrapes(d, n)
    during = d.status()
    out, _ = flood.communicate(timeout=120)
    return {
        "alone": alone,
        "flooded": loaded,
        "ratio_p99": loaded["p99_ms"] / alone["p99_ms"],
        "before": before,
        "during": during,
        "flood": json.loads(out.splitlines()[-1]),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scrapes", type=int, default=100)
    p.add_argument("--slow", type=int, default=2000)
    p.add_argument("--guessers", type=int, default=64)
    a = p.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        cases = [
            (
                f"{a.slow} slow connections, plain",
                None,
                False,
                "slow",
                ["--n", str(a.slow), "--duration", "15"],
            ),
            (
                f"{a.slow} slow connections, TLS + basic auth",
                web_config(d, True, 4),
                True,
                "slow",
                ["--n", str(a.slow), "--duration", "15"],
            ),
            (
                f"{a.guessers} clients guessing passwords (bcrypt cost 12)",
                web_config(d, False, 12),
                False,
                "guess",
                ["--threads", str(a.guessers), "--duration", "8"],
            ),
        ]
        for name, config, tls, mode, args in cases:
            daemon = Daemon(d, config, tls)
            try:
                results[name] = run(daemon, mode, args, a.scrapes)
            finally:
                daemon.stop()
    print(
        "| flood | scrape p50 / p99 alone | under the flood | p99 ratio | failed | threads | RSS |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, r in results.items():
        al, fl, b, du = r["alone"], r["flooded"], r["before"], r["during"]
        print(
            f"| {name} | {al['p50_ms']:.1f} / {al['p99_ms']:.1f} ms | {fl['p50_ms']:.1f} / "
            f"{fl['p99_ms']:.1f} ms | {r['ratio_p99']:.1f}x | {fl['failed']} | "
            f"{b['Threads']} -> {du['Threads']} | {b['VmRSS'] // 1024} -> "
            f"{du['VmRSS'] // 1024} MiB |"
        )
    out = ROOT / "bench" / "results" / "http_flood.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
