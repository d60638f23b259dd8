"""The whole loop on one machine: exporter -> Prometheus -> estimator, and a training job.

    bash scripts/demo.sh                 # installs what it needs, then runs this
    python scripts/demo.py --help

Starts the exporter (NVML when an NVIDIA GPU is present, otherwise simulated GPUs, said so
loudly), a Prometheus scraping it and the estimator, and the estimator itself; then runs a
sample training job that posts epoch markers through the ``joulecast`` client. A live view
shows each epoch, the energy so far and the projections converging. At the end it writes a
PNG chart of the job and prints where to look. Ctrl-C stops everything it started.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import joulecast  # noqa: E402

KWH = 3.6e6


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stack:
    def __init__(self, out: Path) -> None:
        self.out = out
        self.procs: list[subprocess.Popen] = []

    def start(self, name: str, args: list[str], health: str) -> None:
        log = (self.out / f"{name}.log").open("w")
        proc = subprocess.Popen(
            args, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.procs.append(proc)
        deadline = time.time() + 60
        while time.time() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"{name} exited at start-up; see {self.out / (name + '.log')}")
            try:
                urllib.request.urlopen(health, timeout=1).read()
                return
            except OSError:
                time.sleep(0.2)
        raise SystemExit(f"{name} did not answer {health}; see {self.out / (name + '.log')}")

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in reversed(self.procs):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def prom(url: str, path: str, **params: object) -> list[dict]:
    data = urllib.parse.urlencode({k: str(v) for k, v in params.items()}).encode()
    with urllib.request.urlopen(url + path, data=data, timeout=10) as r:
        body = json.loads(r.read())
    return body["data"]["result"] if body.get("status") == "success" else []


def scrape(url: str) -> dict[tuple[str, str], float]:
    """The estimator's projections: (method, kind) -> value, kind in value/lower/upper."""
    text = urllib.request.urlopen(url + "/metrics", timeout=5).read().decode()
    out: dict[tuple[str, str], float] = {}
    for line in text.splitlines():
        for kind, name in (
            ("value", "joulecast_job_projected_energy_joules{"),
            ("lower", "joulecast_job_projected_energy_lower_joules{"),
            ("upper", "joulecast_job_projected_energy_upper_joules{"),
        ):
            if line.startswith(name):
                method = line.split('method="')[1].split('"')[0]
                out[(method, kind)] = float(line.rsplit(" ", 1)[1])
    return out


def bar(done: int, total: int, width: int = 24) -> str:
    filled = int(width * done / max(total, 1))
    return "#" * filled + "." * (width - filled)


def training(job: joulecast.Job, epochs: int, epoch_s: float, stop: threading.Event) -> None:
    """A stand-in training loop: each epoch takes epoch_s (the first one twice as long)."""
    with job:
        for epoch in range(1, epochs + 1):
            if stop.wait(epoch_s * (2.0 if epoch == 1 else 1.0)):
                return
            job.epoch_end({"loss": 2.0 / epoch})


def chart(
    path: Path, prom_url: str, job_id: str, gpu: int, t0: float, t1: float, truth: float
) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no chart (pip install 'joulecast[demo]')")
        return False
    step = max(1.0, (t1 - t0) / 400)
    power = prom(
        prom_url,
        "/api/v1/query_range",
        query=f'joulecast_gpu_power_watts{{gpu="{gpu}"}}',
        start=t0,
        end=t1,
        step=step,
    )
    epochs = prom(
        prom_url,
        "/api/v1/query_range",
        query=f'joulecast_job_epochs_completed{{job_id="{job_id}"}}',
        start=t0,
        end=t1,
        step=step,
    )
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    if power:
        xs = [float(t) - t0 for t, _ in power[0]["values"]]
        ax1.plot(xs, [float(v) for _, v in power[0]["values"]], color="tab:orange", lw=1)
    last = None
    for t, v in epochs[0]["values"] if epochs else []:
        if last is not None and v != last:
            ax1.axvline(float(t) - t0, color="grey", lw=0.5, alpha=0.5)
            ax2.axvline(float(t) - t0, color="grey", lw=0.5, alpha=0.3)
        last = v
    ax1.set_ylabel("GPU power (W)")
    ax1.set_title(f"joulecast demo: job {job_id} (grey lines: epoch ends)")
    colors = {
        "step_epoch": "tab:blue",
        "step_power": "tab:green",
        "mlco2": "tab:red",
        "green_algorithms": "tab:purple",
    }
    for method, color in colors.items():
        sel = f'{{job_id="{job_id}",method="{method}"}}'
        val = prom(
            prom_url,
            "/api/v1/query_range",
            query=f"joulecast_job_projected_energy_joules{sel}",
            start=t0,
            end=t1,
            step=step,
        )
        if not val:
            continue
        xs = [float(t) - t0 for t, _ in val[0]["values"]]
        ax2.plot(xs, [float(v) / 1000 for _, v in val[0]["values"]], color=color, label=method)
        lo = prom(
            prom_url,
            "/api/v1/query_range",
            query=f"joulecast_job_projected_energy_lower_joules{sel}",
            start=t0,
            end=t1,
            step=step,
        )
        hi = prom(
            prom_url,
            "/api/v1/query_range",
            query=f"joulecast_job_projected_energy_upper_joules{sel}",
            start=t0,
            end=t1,
            step=step,
        )
        if lo and hi and len(lo[0]["values"]) == len(hi[0]["values"]):
            ax2.fill_between(
                [float(t) - t0 for t, _ in lo[0]["values"]],
                [float(v) / 1000 for _, v in lo[0]["values"]],
                [float(v) / 1000 for _, v in hi[0]["values"]],
                color=color,
                alpha=0.15,
            )
    ax2.axhline(truth / 1000, color="black", ls="--", label="measured total")
    ax2.set_ylabel("projected total energy (kJ)")
    ax2.set_xlabel("seconds since the job started")
    ax2.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def dashboards(prom_url: str, t0: float, t1: float, job_id: str, out: Path) -> list[Path]:
    sys.path.insert(0, str(ROOT / "grafana"))
    from render import render_all

    # the boards the demo feeds: it queues no job and runs no scheduler
    boards = ["node.json", "jobs.json", "estimator.json"]
    return render_all(prom_url, t0 - 30, t1, {"job_id": job_id}, out, boards)


def main() -> int:
    ap = argparse.ArgumentParser(description="joulecast end-to-end demo")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--epoch-seconds", type=float, default=1.5)
    ap.add_argument("--out", type=Path, default=ROOT / "demo-out")
    ap.add_argument("--backend", default="auto", choices=["auto", "simulated", "nvml"])
    ap.add_argument(
        "--no-wait", action="store_true", help="exit after the chart instead of waiting for Ctrl-C"
    )
    ap.add_argument(
        "--dashboards",
        type=Path,
        metavar="DIR",
        help="also render the Node, Jobs and Estimator dashboards of the run to DIR/dashboard-*.png "
        "(grafana/render.py; the pictures in docs/ come from --dashboards docs/img)",
    )
    args = ap.parse_args()
    if args.epochs < 8 or args.epoch_seconds <= 0:
        ap.error("--epochs must be >= 8 and --epoch-seconds > 0")
    if shutil.which("prometheus") is None:
        print(
            "Prometheus is not installed. On Debian/Ubuntu: sudo apt-get install prometheus "
            "(bash scripts/demo.sh does it when run as root).",
            file=sys.stderr,
        )
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    stack = Stack(args.out)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    ep, pp, sp = free_port(), free_port(), free_port()
    exporter_url, prom_url, est_url = (f"http://127.0.0.1:{p}" for p in (ep, pp, sp))
    try:
        print("starting the exporter ...")
        stack.start(
            "exporter",
            [
                sys.executable,
                "-m",
                "joulecast.exporter",
                "--backend",
                args.backend,
                "--simulated.gpus",
                "2",
                "--simulated.warmup-seconds",
                str(2 * args.epoch_seconds),
                "--simulated.cycle-seconds",
                str(args.epoch_seconds),
                "--web.listen-address",
                f"127.0.0.1:{ep}",
                "--state.dir",
                str(args.out / "exporter-state"),
            ],
            exporter_url + "/healthz",
        )
        info = urllib.request.urlopen(exporter_url + "/metrics").read().decode()
        simulated = 'simulated="true"' in info
        print(
            "  GPU backend:",
            'SIMULATED (no NVIDIA GPU found; metrics say simulated="true")'
            if simulated
            else "NVML",
        )
        cfg = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(ROOT / "prometheus" / "rules" / "*.yml")],
            "scrape_configs": [
                {
                    "job_name": "joulecast-exporter",
                    "static_configs": [{"targets": [f"127.0.0.1:{ep}"]}],
                },
                {
                    "job_name": "joulecast-estimator",
                    "static_configs": [{"targets": [f"127.0.0.1:{sp}"]}],
                },
            ],
        }
        (args.out / "prometheus.yml").write_text(json.dumps(cfg, indent=2))
        print("starting Prometheus ...")
        stack.start(
            "prometheus",
            [
                "prometheus",
                f"--config.file={args.out / 'prometheus.yml'}",
                f"--storage.tsdb.path={args.out / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{pp}",
            ],
            prom_url + "/-/ready",
        )
        print("starting the estimator ...")
        stack.start(
            "estimator",
            [
                sys.executable,
                "-m",
                "joulecast.estimator",
                "--prometheus.url",
                prom_url,
                "--cycle.interval",
                "1",
                "--web.listen-address",
                f"127.0.0.1:{sp}",
                "--carbon.intensity",
                "300",
                "--step.calibration-file",
                str(args.out / "step-calibration.json"),
            ],
            est_url + "/metrics",
        )
        deadline = time.time() + 30
        while time.time() < deadline and len(prom(prom_url, "/api/v1/query", query="up == 1")) < 2:
            time.sleep(0.5)

        job_id = f"demo-{int(time.time())}"
        job = joulecast.job(
            job_id,
            epochs=args.epochs,
            url=exporter_url,
            gpus=[0],
            features={
                "model_name": "resnet50",
                "model_gflops": 4.1,
                "batch_size": 64,
                "host_ram_gb": 16,
            },
        )
        print(
            f"\ntraining job {job_id}: {args.epochs} epochs of ~{args.epoch_seconds:g}s on GPU 0\n"
        )
        t0 = time.time()
        trainer = threading.Thread(
            target=training, args=(job, args.epochs, args.epoch_seconds, stop), daemon=True
        )
        trainer.start()
        tty = sys.stdout.isatty()
        last_line = ""
        while trainer.is_alive() and not stop.is_set():
            time.sleep(1.0)
            state = json.loads(
                urllib.request.urlopen(f"{exporter_url}/api/v1/jobs/{job_id}").read()
            )
            p = scrape(est_url)
            step = p.get(("step_epoch", "value"))
            proj = (
                f"STEP {step / 1000:8.1f} kJ [{p[('step_epoch', 'lower')] / 1000:.1f}-{p[('step_epoch', 'upper')] / 1000:.1f}]"
                if step
                else "STEP   (waiting for stable epochs)"
            )
            base = p.get(("mlco2", "value"))
            line = (
                f"epoch {state['epochs_completed']:>3}/{args.epochs} [{bar(state['epochs_completed'], args.epochs)}] "
                f"so far {state['energy_joules'] / 1000:7.1f} kJ | {proj}"
                + (f" | TDPxh {base / 1000:.1f} kJ" if base else "")
            )
            if tty:
                print("\r" + line.ljust(len(last_line)), end="", flush=True)
            elif line != last_line:
                print(line, flush=True)
            last_line = line
        trainer.join(timeout=5)
        trained = time.time()  # the job's last live moment: where dashboards are rendered
        if stop.is_set():
            print("\nstopped")
            return 130
        t1 = time.time() + 3
        time.sleep(3)
        final = json.loads(urllib.request.urlopen(f"{exporter_url}/api/v1/jobs/{job_id}").read())
        truth = final["epoch_end_energy_joules"]
        print(
            f"\n\nmeasured total: {truth / 1000:.1f} kJ ({truth / KWH:.4f} kWh) over {final['epochs_completed']} epochs"
        )
        track = prom(
            prom_url,
            "/api/v1/query",
            query=f'joulecast_job_projection_error_ratio{{job_id="{job_id}"}}',
        )
        for r in sorted(track, key=lambda r: (r["metric"]["at_epoch"], r["metric"]["method"])):
            print(
                f"  projection at epoch {r['metric']['at_epoch']:>2} by {r['metric']['method']:<17} off by {100 * float(r['value'][1]):+7.1f} %"
            )
        png = args.out / "demo-job.png"
        if chart(png, prom_url, job_id, 0, t0, t1, truth):
            print(f"\nchart: {png}")
        if args.dashboards:
            for path in dashboards(prom_url, t0, trained - 2, job_id, args.dashboards):
                print(f"dashboard: {path}")
        print(f"""
Prometheus:  {prom_url}/graph   exporter: {exporter_url}/metrics   estimator: {est_url}/metrics
Try in Prometheus:
  joulecast_job_projected_energy_joules{{job_id="{job_id}"}} / 3.6e6        projected kWh by method
  joulecast:job_projected_energy:kwh                                       the recording rule
  rate(joulecast_gpu_energy_joules_total[1m])                             GPU power from the energy counter
  joulecast_method_mean_absolute_error_ratio                              each method's track record
logs and data: {args.out}""")
        if not args.no_wait and sys.stdin.isatty():
            print("\nPress Ctrl-C to stop everything.")
            stop.wait()
        return 0
    finally:
        stop.set()
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
