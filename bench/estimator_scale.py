"""Estimator cycle time and queries per cycle with 100 / 1,000 / 10,000 running jobs.

    python bench/estimator_scale.py                  # 100, 1000, 10000 jobs
    python bench/estimator_scale.py --jobs 100 1000   # a quicker set

For each size: a synthetic target serves the exporter's per-job series for N jobs whose
epochs advance in real time (the exporter itself is measured by bench/exporter_bench.py);
a real Prometheus (Debian package) scrapes it every 5 s for --fill seconds; then the
estimator runs its cycles against that Prometheus. Reports the first cycle (history read
over the whole lookback), the median of later cycles, queries per cycle, and the time
spent in the STEP maths. Prints a table and writes bench/results/estimator_scale.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from joulecast.estimator.prometheus.client import PromClient, PromConfig  # noqa: E402
from joulecast.estimator.service import Estimator, EstimatorConfig  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SyntheticJobs:
    """N jobs: epoch length 8-30 s, 250-350 W, 100 epochs planned, started at t0."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.t0 = time.time() - 60.0
        self.jobs = [(f"job-{i:05d}", 8 + (i * 7) % 23, 250 + (i * 13) % 100) for i in range(n)]

    def render(self) -> bytes:
        now = time.time()
        out = []
        for job_id, epoch_s, watts in self.jobs:
            age = now - self.t0
            done = min(int(age // epoch_s), 100)
            end_t = self.t0 + done * epoch_s
            lbl = f'{{job_id="{job_id}"}}'
            out.append(
                f'joulecast_job_info{{job_id="{job_id}",state="running",gpus="0",gpu_model="NVIDIA A100-SXM4-80GB",model_name="resnet50"}} 1\n'
                f"joulecast_job_epochs_completed{lbl} {done}\n"
                f"joulecast_job_epochs_planned{lbl} 100\n"
                f"joulecast_job_epoch_end_energy_joules{lbl} {watts * done * epoch_s:.1f}\n"
                f"joulecast_job_epoch_end_timestamp_seconds{lbl} {end_t:.3f}\n"
                f"joulecast_job_start_timestamp_seconds{lbl} {self.t0:.3f}\n"
                f"joulecast_job_running{lbl} 1\n"
                f"joulecast_job_energy_joules_total{lbl} {watts * age:.1f}\n"
                f"joulecast_job_gpu_tdp_watts{lbl} 400\n"
                f"joulecast_job_gpu_utilization_mean_ratio{lbl} 0.9\n"
            )
        return "".join(out).encode()


def serve(jobs: SyntheticJobs) -> tuple[ThreadingHTTPServer, str]:
    class H(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            body = jobs.render()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f"127.0.0.1:{srv.server_address[1]}"


def run_size(n: int, fill_s: float, cycles: int, tmp: Path) -> dict:
    jobs = SyntheticJobs(n)
    srv, target = serve(jobs)
    port = free_port()
    cfg = tmp / f"prom-{n}.yml"
    cfg.write_text(
        json.dumps(
            {
                "global": {"scrape_interval": "5s", "scrape_timeout": "5s"},
                "scrape_configs": [
                    {"job_name": "joulecast-exporter", "static_configs": [{"targets": [target]}]}
                ],
            }
        )
    )
    prom = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={cfg}",
            f"--storage.tsdb.path={tmp / f'data-{n}'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(url + "/-/ready", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        time.sleep(fill_s)
        est = Estimator(
            PromClient(PromConfig(url, timeout_s=120)), EstimatorConfig(lookback_s=3600)
        )
        first = est.cycle()
        later = []
        for _ in range(cycles):
            time.sleep(1.0)
            later.append(est.cycle())
        return {
            "jobs": n,
            "projected_jobs": len(first.jobs) if not later else len(later[-1].jobs),
            "first_cycle_s": first.last_cycle_duration_s,
            "cycle_median_s": statistics.median(s.last_cycle_duration_s for s in later)
            if later
            else None,
            "queries_per_cycle": later[-1].last_cycle_queries
            if later
            else first.last_cycle_queries,
            "stale": (later[-1] if later else first).stale,
        }
    finally:
        prom.terminate()
        prom.wait(timeout=30)
        srv.shutdown()


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--jobs", type=int, nargs="+", default=[100, 1000, 10000])
    ap.add_argument("--fill", type=float, default=60.0, help="seconds of scraping before measuring")
    ap.add_argument("--cycles", type=int, default=5)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "estimator_scale.json")
    args = ap.parse_args()
    if shutil.which("prometheus") is None:
        raise SystemExit("needs Debian's prometheus package")
    with tempfile.TemporaryDirectory() as tmp:
        rows = [run_size(n, args.fill, args.cycles, Path(tmp)) for n in args.jobs]
    print(
        f"{'jobs':>6} {'projected':>9} {'first cycle s':>13} {'cycle s (median)':>16} {'queries/cycle':>13}"
    )
    for r in rows:
        med = f"{r['cycle_median_s']:.3f}" if r["cycle_median_s"] is not None else "-"
        print(
            f"{r['jobs']:>6} {r['projected_jobs']:>9} {r['first_cycle_s']:>13.3f} {med:>16} {r['queries_per_cycle']:>13}"
        )
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "fill_s": args.fill,
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
