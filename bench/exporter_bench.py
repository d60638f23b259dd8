"""Exporter cost: scrape latency, CPU and memory at 10 Hz sampling, energy counter error.

    python bench/exporter_bench.py            # quick set (about 2 minutes on 2 cores)
    python bench/exporter_bench.py --full     # 1/8/64 GPUs x 0/100/1000 jobs

Starts the real exporter (simulated GPUs) as a subprocess per configuration, registers live
jobs through the marker API, scrapes /metrics over loopback as Prometheus does (a kept-alive connection, gzip, its
Accept header) and times each scrape; new connections are timed beside it. CPU is
the exporter process's user+system time over an idle window (no scrapes) divided by wall
time. Energy error compares integrated power with the simulation's exact energy at several
sampling rates (in-process, simulated clock). Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url: str, body: dict) -> int:
    req = urllib.request.Request(url, json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status


def start_exporter(gpus: int, state: str, hz: float) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "joulecast.exporter",
            "--backend",
            "simulated",
            "--simulated.gpus",
            str(gpus),
            "--web.listen-address",
            f"127.0.0.1:{port}",
            "--state.dir",
            state,
            "--sampling.gpu-hz",
            str(hz),
            "--jobs.max-live",
            "100000",
            "--log.level",
            "warning",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            urllib.request.urlopen(url + "/healthz", timeout=1).read()
            return proc, url
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("exporter did not start")


#: what Prometheus sends when it scrapes (it keeps the connection alive between scrapes)
SCRAPE_HEADERS = {
    "Accept": "application/openmetrics-text;version=1.0.0;q=0.5,"
    "text/plain;version=0.0.4;q=0.4,*/*;q=0.1",
    "Accept-Encoding": "gzip",
}


def timed_scrapes(url: str, n: int, keep_alive: bool = True) -> tuple[list[float], int]:
    """Scrape /metrics n times, as Prometheus does (one kept-alive connection, gzip);
    the seconds of each scrape and the size of the last (compressed) body."""
    host, port = url.rsplit("//", 1)[1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    lat, size = [], 0
    for _ in range(n):
        if not keep_alive:
            conn.close()
            conn = http.client.HTTPConnection(host, int(port), timeout=10)
        s = time.perf_counter()
        conn.request("GET", "/metrics", headers=SCRAPE_HEADERS)
        body = conn.getresponse().read()
        lat.append(time.perf_counter() - s)
        size = len(body)
    conn.close()
    return lat, size


def scrape_config(gpus: int, jobs: int, scrapes: int, idle_s: float) -> dict:
    with tempfile.TemporaryDirectory() as state:
        proc, url = start_exporter(gpus, state, 10.0)
        try:
            for j in range(jobs):
                post(
                    url + "/api/v1/jobs",
                    {
                        "job_id": f"job-{j}",
                        "epochs_planned": 100,
                        "gpus": [j % max(gpus, 1)] if gpus else [],
                        "features": {
                            "model_gflops": 4.1,
                            "batch_size": 64,
                            "model_name": "resnet50",
                        },
                    },
                )
                post(f"{url}/api/v1/jobs/job-{j}/epochs", {"epoch": 1})
            p = psutil.Process(proc.pid)
            time.sleep(1.0)
            c0, t0 = p.cpu_times(), time.perf_counter()
            time.sleep(idle_s)
            c1, t1 = p.cpu_times(), time.perf_counter()
            cpu = ((c1.user - c0.user) + (c1.system - c0.system)) / (t1 - t0)
            lat, size = timed_scrapes(url, scrapes)
            fresh, _ = timed_scrapes(url, scrapes, keep_alive=False)
            rss = p.memory_info().rss
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    lat.sort()
    return {
        "gpus": gpus,
        "jobs": jobs,
        "scrapes": scrapes,
        "p50_ms": 1000 * statistics.median(lat),
        "p99_ms": 1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))],
        "new_connection_p50_ms": 1000 * statistics.median(fresh),
        "body_kib": size / 1024,
        "cpu_percent_idle_10hz": 100 * cpu,
        "rss_mib": rss / 2**20,
    }


def node_exporter_scrapes(scrapes: int) -> dict | None:
    """Debian's prometheus-node-exporter with its default collectors, on this machine."""
    import shutil

    binary = shutil.which("prometheus-node-exporter")
    if binary is None:
        return None
    port = free_port()
    proc = subprocess.Popen(
        [binary, f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(url + "/metrics", timeout=2).read()
                break
            except OSError:
                time.sleep(0.05)
        lat, size = timed_scrapes(url, scrapes)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    lat.sort()
    return {
        "p50_ms": 1000 * statistics.median(lat),
        "p99_ms": 1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))],
        "body_kib": size / 1024,
    }


def energy_error(hz: float, seconds: float = 600.0) -> dict:
    from joulecast.exporter.devices.simulated import SimulatedBackend
    from joulecast.exporter.jobs.registry import GpuDirectory, JobRegistry
    from joulecast.exporter.sampler import Sampler
    from joulecast.schema import parse_job_spec

    clock = [1_000_000.0]
    backend = SimulatedBackend(1, energy_counter=False, seed=7)
    registry = JobRegistry(
        GpuDirectory(tuple(backend.devices()), backend.lists_processes),
        None,
        clock=lambda: clock[0],
    )
    backend.set_busy(registry.busy)
    sampler = Sampler(backend, registry, gpu_hz=hz, clock=lambda: clock[0])
    sampler.sample_once()
    registry.register(parse_job_spec({"job_id": "j", "epochs_planned": 5, "gpus": [0]}))
    rng = random.Random(0)
    for _ in range(int(seconds * hz)):
        clock[0] += (1 / hz) * (1 + rng.uniform(-0.2, 0.2))
        sampler.sample_once()
    truth = backend.true_energy(0)
    got = sampler.snapshot().gpus[0].integrated_energy_joules
    return {"hz": hz, "seconds": seconds, "relative_error_percent": 100 * (got - truth) / truth}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--full", action="store_true", help="1/8/64 GPUs x 0/100/1000 jobs")
    ap.add_argument("--scrapes", type=int, default=200)
    ap.add_argument("--idle-seconds", type=float, default=10.0)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "exporter.json"))
    args = ap.parse_args()
    configs = (
        [(g, j) for g in (1, 8, 64) for j in (0, 100, 1000)]
        if args.full
        else [(1, 0), (8, 100), (8, 1000)]
    )
    rows = [scrape_config(g, j, args.scrapes, args.idle_seconds) for g, j in configs]
    errors = [energy_error(hz) for hz in (1.0, 10.0, 50.0)]
    node = node_exporter_scrapes(args.scrapes)
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "scrape": rows,
        "energy_error": errors,
        "node_exporter_default_scrape": node,
    }
    print(
        f"{'gpus':>5} {'jobs':>5} {'p50 ms':>8} {'p99 ms':>8} {'new conn p50':>13} {'gzip KiB':>9} {'CPU % (10 Hz, idle)':>20} {'RSS MiB':>8}"
    )
    for r in rows:
        print(
            f"{r['gpus']:>5} {r['jobs']:>5} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['new_connection_p50_ms']:>13.2f} {r['body_kib']:>9.0f} {r['cpu_percent_idle_10hz']:>20.1f} {r['rss_mib']:>8.0f}"
        )
    if node:
        ratio = rows[1]["p50_ms"] / node["p50_ms"] if len(rows) > 1 else float("nan")
        print(
            f"node_exporter (Debian, default collectors, same machine, same run): p50 {node['p50_ms']:.2f} ms, "
            f"p99 {node['p99_ms']:.2f} ms, {node['body_kib']:.0f} KiB; joulecast with 8 GPUs and 100 jobs: {ratio:.1f}x its p50"
        )
    print(f"\n{'sampling Hz':>11} {'energy error % vs ground truth (10 min, jittered)':>50}")
    for e in errors:
        print(f"{e['hz']:>11g} {e['relative_error_percent']:>50.3f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
