"""Estimator cycles at fleet scale: 10,000 and 100,000 running jobs, 1, 4 and 10 shards, on a
real Prometheus and a real VictoriaMetrics single-node.

    python bench/estimator_scale.py                                   # the whole set
    python bench/estimator_scale.py --jobs 10000 --shards 1 --tsdb prometheus --cycles 4

For each store and fleet size:

* a synthetic fleet serves the exporter's per-job series (the same names and labels,
  ``job_bucket`` included) for N job slots, split over 10 scrape targets (nodes). A job
  plans 100 epochs of 8-30 s at 250-350 W; when it ends it stays on /metrics as finished
  for 60 s while a new job (a new id) starts in its slot: a churn of about 5 jobs a second
  at 10,000 slots. The store scrapes every ``--scrape-interval`` (15 s) for ``--fill`` s.
* for each shard count S, shard 0 of S runs in its own process (its memory is its own) for
  ``--cycles`` cycles started every ``--interval`` s (15 s), the first of which reads the
  whole lookback. Each replica reads only its buckets, so shard 0 stands for any shard.
* with one shard (up to ``--compare-max`` jobs), two older paths run beside today's, one
  after the other, each pass for ``--cycles`` cycles with the older path and today's in
  their own processes, one cycle of each in turn every interval, on the same store and
  the same churning fleet (the row's own figures are today's of the first pass):

  - ``baseline``: the estimator of ``--baseline-rev`` (default ``8b9ea44``, the tree before
    sharded and incremental cycles), taken from git into a temporary folder and imported
    from there. The ratio of its median cycle to today's is the speed-up (``speedup``).
  - ``whole_reads``: today's code with whole reads every cycle and the collector running
    within cycles. It shares every other gain (decoding, STEP), so its ratio
    (``speedup_whole_reads``) is what incremental cycles alone bring.

Per row: cycle time (first, median, max of the later ones), queries and series fetched per
cycle, peak memory (RSS) of the replica, and the end-to-end delay from an epoch's end (its
timestamp in the fleet) to the end of the first cycle whose projection uses it. Prints a
table and writes bench/results/estimator_scale.json.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import platform
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: a worker of the baseline path imports the estimator of another tree (--baseline-rev)
TREE = os.environ.get("JOULECAST_BENCH_TREE")
sys.path.insert(0, TREE or str(ROOT))

from joulecast.estimator.prometheus.client import PromClient, PromConfig  # noqa: E402
from joulecast.estimator.service import Estimator, EstimatorConfig  # noqa: E402

if TREE is None:  # the fleet's side; the baseline tree may predate shards
    from joulecast.shards import bucket  # noqa: E402

NODES = 10
LINGER_S = 60.0  # a finished job stays on /metrics this long
EPOCHS = 100
MODEL = "NVIDIA A100-SXM4-80GB"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class Slot:
    index: int
    epoch_s: float
    watts: float
    origin: float  # when the slot's first job started

    @property
    def life_s(self) -> float:
        return EPOCHS * self.epoch_s

    def job_id(self, generation: int) -> str:
        return f"j{self.index:06d}-{generation}"


class SyntheticFleet:
    """``n`` job slots over ``NODES`` nodes; every slot runs one job after another."""

    def __init__(self, n: int, t0: float) -> None:
        self.slots = []
        for i in range(n):
            epoch_s = 8.0 + (i * 7) % 23
            phase = (i * 0.6180339887) % 1.0  # spread the jobs over their lives
            self.slots.append(
                Slot(i, epoch_s, 250.0 + (i * 13) % 100, t0 - phase * EPOCHS * epoch_s)
            )
        self._labels: dict[str, str] = {}

    def jobs_at(self, slot: Slot, now: float) -> list[tuple[str, float, bool]]:
        """(job id, start, running) of what ``slot`` shows at ``now``."""
        g = int((now - slot.origin) // slot.life_s)
        start = slot.origin + g * slot.life_s
        out = [(slot.job_id(g), start, True)]
        if g > 0 and now - start < LINGER_S:
            out.append((slot.job_id(g - 1), start - slot.life_s, False))
        return out

    def epoch_end(self, slot: Slot, start: float, now: float) -> tuple[int, float]:
        done = min(int((now - start) // slot.epoch_s), EPOCHS)
        return done, start + done * slot.epoch_s

    def _lbl(self, job_id: str) -> str:
        lbl = self._labels.get(job_id)
        if lbl is None:
            lbl = self._labels[job_id] = f'{{job_id="{job_id}",job_bucket="{bucket(job_id)}"}}'
        return lbl

    def render(self, node: int, now: float) -> bytes:
        out = []
        for slot in self.slots[node::NODES]:
            for job_id, start, running in self.jobs_at(slot, now):
                out.append(self._series(job_id, slot, start, running, now))
        return "".join(out).encode()

    def _series(self, job_id: str, slot: Slot, start: float, running: bool, now: float) -> str:
        lbl = self._lbl(job_id)
        end = start + slot.life_s
        done, end_t = self.epoch_end(slot, start, min(now, end))
        state = "running" if running else "finished"
        energy = slot.watts * (min(now, end) - start)
        text = (
            f'joulecast_job_info{{job_id="{job_id}",job_bucket="{bucket(job_id)}",'
            f'state="{state}",gpus="0",gpu_model="{MODEL}",model_name="resnet50"}} 1\n'
            f"joulecast_job_epochs_completed{lbl} {done}\n"
            f"joulecast_job_epochs_planned{lbl} {EPOCHS}\n"
            f"joulecast_job_epoch_end_energy_joules{lbl} {slot.watts * (end_t - start):.1f}\n"
            f"joulecast_job_epoch_end_timestamp_seconds{lbl} {end_t:.3f}\n"
            f"joulecast_job_start_timestamp_seconds{lbl} {start:.3f}\n"
            f"joulecast_job_running{lbl} {1 if running else 0}\n"
            f"joulecast_job_failed{lbl} 0\n"
            f"joulecast_job_lost{lbl} 0\n"
            f"joulecast_job_gpus{lbl} 1\n"
            f"joulecast_job_gpu_tdp_watts{lbl} 400\n"
            f"joulecast_job_gpu_memory_bytes{lbl} 85899345920\n"
            f"joulecast_job_gpu_utilization_mean_ratio{lbl} {0.85 + (now % 60) / 600:.4f}\n"
            f"joulecast_job_energy_joules_total{lbl} {energy:.1f}\n"
        )
        if not running:
            text += f"joulecast_job_end_timestamp_seconds{lbl} {end:.3f}\n"
        return text


def serve(fleet: SyntheticFleet) -> tuple[ThreadingHTTPServer, list[str]]:
    class H(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            node = int(self.path.rsplit("/", 1)[-1])
            body = fleet.render(node, time.time())
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, [f"127.0.0.1:{srv.server_address[1]}" for _ in range(NODES)]


def start_store(kind: str, target: str, scrape_s: int, tmp: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cfg = tmp / f"{kind}.yml"
    cfg.write_text(
        json.dumps(
            {
                "global": {"scrape_interval": f"{scrape_s}s", "scrape_timeout": f"{scrape_s}s"},
                "scrape_configs": [
                    {
                        "job_name": f"joulecast-exporter-{i}",
                        "metrics_path": f"/node/{i}",
                        "static_configs": [
                            {"targets": [target], "labels": {"instance": f"node-{i}"}}
                        ],
                    }
                    for i in range(NODES)
                ],
            }
        )
    )
    data = tmp / f"{kind}-data"
    if kind == "prometheus":
        args = ["prometheus", f"--config.file={cfg}", f"--storage.tsdb.path={data}",
                f"--web.listen-address=127.0.0.1:{port}"]  # fmt: skip
        ready = "/-/ready"
    else:
        args = ["victoria-metrics", f"-promscrape.config={cfg}", f"-storageDataPath={data}",
                f"-httpListenAddr=127.0.0.1:{port}", "-search.latencyOffset=0s",
                "-search.maxUniqueTimeseries=10000000", "-search.maxQueryLen=1048576"]  # fmt: skip
        ready = "/health"
    log = (tmp / f"{kind}.log").open("w")
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        if proc.poll() is not None:
            break
        try:
            urllib.request.urlopen(url + ready, timeout=1)
            return proc, url
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"{kind} did not start: {(tmp / f'{kind}.log').read_text()[-2000:]}")


# -- one replica, in its own process -------------------------------------------------------


#: each path's estimator settings beyond the lookback, job cap and shard
PATHS: dict[str, dict] = {
    "incremental": {"incremental": True, "pause_gc": True},
    "whole_reads": {"incremental": False, "pause_gc": False},
    "baseline": {},  # the baseline tree's own defaults; it knows no shards
}


class Replica:
    def __init__(self, url: str, shard: int, shards: int, path: str) -> None:
        self.client = PromClient(PromConfig(url, timeout_s=300, max_answer_bytes=4 << 30))
        settings = dict(PATHS[path])
        if path != "baseline":
            settings.update(shard_index=shard, shard_count=shards)
        self.est = Estimator(
            self.client, EstimatorConfig(lookback_s=3600, max_jobs=1_000_000, **settings)
        )
        self.cycles: list[dict] = []
        self.delays: list[float] = []
        self._known: dict[str, int] = {}
        self.phases: dict[str, float] = {}  # seconds spent in each part of the cycle
        est = self.est
        est._fetch = self._timed("fetch", est._fetch)
        est.book.merge = self._timed("merge", est.book.merge)
        est.step.project_all = self._timed("project", est.step.project_all)

    def _timed(self, name: str, fn):
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.phases[name] = self.phases.get(name, 0.0) + time.perf_counter() - t0

        return timed

    def cycle(self) -> None:
        q0 = self.client.queries
        s0 = getattr(self.client, "series", None)  # the baseline's client counts no series
        self.phases = {}
        snap = self.est.cycle()
        done = time.time()
        self.cycles.append(
            {
                "s": snap.last_cycle_duration_s,
                "phases_s": self.phases,
                "queries": self.client.queries - q0,
                "series": None if s0 is None else self.client.series - s0,
                "projected": len(snap.jobs),
                "stale": snap.stale,
            }
        )
        first = len(self.cycles) == 1
        for job_id, job in self.est.step._jobs.items():  # the checkpoints STEP projects from
            if job_id not in snap.jobs:
                continue
            last = max(job.points, default=None)
            if last is None:
                continue
            if not first and last != self._known.get(job_id) and job_id in self._known:
                self.delays.append(done - job.points[last].time_s)
            self._known[job_id] = last


def _pct(xs: list[float], q: float) -> float | None:
    return sorted(xs)[min(len(xs) - 1, int(q * len(xs)))] if xs else None


def _summary(r: Replica) -> dict:
    later = r.cycles[1:]
    times = [c["s"] for c in later]
    return {
        "first_cycle_s": r.cycles[0]["s"],
        "first_cycle_series": r.cycles[0]["series"],
        "cycle_median_s": statistics.median(times) if times else None,
        "cycle_max_s": max(times) if times else None,
        "queries_per_cycle": statistics.median(c["queries"] for c in later) if later else None,
        "series_per_cycle": statistics.median(c["series"] for c in later)
        if later and later[0]["series"] is not None
        else None,
        "phases_median_s": {
            k: statistics.median(c["phases_s"].get(k, 0.0) for c in later)
            for k in ("fetch", "merge", "project")
        }
        if later
        else None,
        "projected_jobs": r.cycles[-1]["projected"],
        "stale_cycles": sum(c["stale"] for c in r.cycles),
        "delay_median_s": statistics.median(r.delays) if r.delays else None,
        "delay_p95_s": _pct(r.delays, 0.95),
        "epoch_ends_seen": len(r.delays),
    }


def worker(args: argparse.Namespace) -> None:
    """One replica, cycling on each ``cycle`` line of stdin; ``done`` prints its summary."""
    r = Replica(args.url, args.shard, args.shards, args.path)
    profile = os.environ.get("JOULECAST_BENCH_PROFILE")  # a file: cProfile of later cycles
    prof = cProfile.Profile() if profile else None
    for line in sys.stdin:
        if line.strip() != "cycle":
            break
        if prof is not None and len(r.cycles) == 1:
            prof.enable()
        r.cycle()
        print("ok", flush=True)
    if prof is not None:
        prof.disable()
        prof.dump_stats(f"{profile}.{args.path}")
    out = _summary(r)
    out["rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out), flush=True)


# -- the orchestration -------------------------------------------------------------------


def run_replicas(
    url: str, shards: int, args: argparse.Namespace, paths: list[str], tree: Path | None
) -> dict:
    """Shard 0 of ``shards`` on each path, each in its own process; every interval one
    cycle of each in turn, so the paths see the same store, fleet and machine."""
    env = {**os.environ, "JOULECAST_BENCH_TREE": str(tree)} if tree else None
    procs = {
        path: subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--worker",
                "--url",
                url,
                "--shard",
                "0",
                "--shard-count",
                str(shards),
                "--path",
                path,
            ],  # fmt: skip
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env if path == "baseline" else None,
        )  # fmt: skip
        for path in paths
    }
    try:
        t_next = time.time()
        for _ in range(args.cycles):
            for path, proc in procs.items():
                assert proc.stdin and proc.stdout
                proc.stdin.write("cycle\n")
                proc.stdin.flush()
                if proc.stdout.readline().strip() != "ok":
                    raise SystemExit(f"replica {path} failed")
            t_next += args.interval
            time.sleep(max(0.0, t_next - time.time()))
        out = {}
        for path, proc in procs.items():
            summary, _ = proc.communicate("done\n", timeout=120)
            out[path] = json.loads(summary.strip().splitlines()[-1])
        return out
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()


def baseline_tree(rev: str, tmp: Path) -> Path:
    """The package tree of ``rev`` (``joulecast`` with its ``estimator`` and ``exporter``
    inside, as the installed package maps them), extracted from git into ``tmp``."""
    out = tmp / "baseline"
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "joulecast", "estimator", "exporter"],
        capture_output=True,
        check=False,
    )
    if archive.returncode:
        raise SystemExit(f"git archive {rev}: {archive.stderr.decode()[:500]}")
    out.mkdir()
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive.stdout, check=True)
    for room in ("estimator", "exporter"):
        (out / room).rename(out / "joulecast" / room)
    return out


def run_size(
    kind: str, n: int, args: argparse.Namespace, tmp: Path, tree: Path | None
) -> list[dict]:
    fleet = SyntheticFleet(n, time.time())
    srv, targets = serve(fleet)
    proc, url = start_store(kind, targets[0], args.scrape_interval, tmp / f"{kind}-{n}")
    rows = []
    try:
        time.sleep(args.fill)
        for shards in args.shards:
            compare = shards == 1 and n <= args.compare_max
            row = {"tsdb": kind, "jobs": n, "shards": shards}
            older = (["baseline"] if tree else []) + ["whole_reads"]
            if not compare:
                row.update(run_replicas(url, shards, args, ["incremental"], tree)["incremental"])
            for i, path in enumerate(older if compare else []):
                # one older path at a time beside today's: a turn of three would run past
                # the interval and leave today's path longer gaps to read than it has
                res = run_replicas(url, shards, args, [path, "incremental"], tree)
                if i == 0:
                    row.update(res["incremental"])
                row[path] = {
                    **res[path],
                    "beside_cycle_median_s": res["incremental"]["cycle_median_s"],
                }
                ratio = res[path]["cycle_median_s"] / res["incremental"]["cycle_median_s"]
                row["speedup" if path == "baseline" else f"speedup_{path}"] = ratio
            rows.append(row)
            print(_line(row), flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        srv.shutdown()
    return rows


HEADER = (
    f"{'tsdb':>15} {'jobs':>6} {'shards':>6} {'first s':>8} {'median s':>8} {'max s':>6} "
    f"{'queries':>7} {'series':>7} {'RSS MiB':>7} {'delay s':>7} {'speed-up':>8} {'vs whole':>8}"
)


def _line(r: dict) -> str:
    def f(v, fmt=".2f"):
        return "-" if v is None else format(v, fmt)

    return (
        f"{r['tsdb']:>15} {r['jobs']:>6} {r['shards']:>6} {f(r['first_cycle_s']):>8} "
        f"{f(r['cycle_median_s']):>8} {f(r['cycle_max_s']):>6} {f(r['queries_per_cycle'], '.0f'):>7} "
        f"{f(r['series_per_cycle'], '.0f'):>7} {f(r['rss_mib'], '.0f'):>7} "
        f"{f(r['delay_median_s'], '.1f'):>7} {f(r.get('speedup'), '.1f'):>8} "
        f"{f(r.get('speedup_whole_reads'), '.1f'):>8}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--jobs", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--shards", type=int, nargs="+", default=[1, 4, 10])
    ap.add_argument("--tsdb", nargs="+", default=["victoriametrics", "prometheus"])
    ap.add_argument("--fill", type=float, default=90.0, help="seconds of scraping before measuring")
    ap.add_argument("--scrape-interval", type=int, default=15)
    ap.add_argument("--interval", type=float, default=15.0, help="seconds between cycle starts")
    ap.add_argument("--cycles", type=int, default=6)
    ap.add_argument("--compare-max", type=int, default=10_000,
                    help="run the whole-read path beside, with one shard, up to this many jobs")  # fmt: skip
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "estimator_scale.json")
    ap.add_argument(
        "--baseline-rev",
        default="8b9ea44",
        help="git revision whose estimator is the baseline path ('' for none)",
    )
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    ap.add_argument("--shard", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--shard-count", dest="shards_of", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--path", default="incremental", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        args.shards = args.shards_of
        return worker(args)
    for kind in args.tsdb:
        if shutil.which({"prometheus": "prometheus"}.get(kind, "victoria-metrics")) is None:
            raise SystemExit(f"needs Debian's {kind} package")
    print(HEADER, flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tree = baseline_tree(args.baseline_rev, Path(tmp)) if args.baseline_rev else None
        for kind in args.tsdb:
            for n in args.jobs:
                (Path(tmp) / f"{kind}-{n}").mkdir()
                rows += run_size(kind, n, args, Path(tmp), tree)
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "command": " ".join(["python", "bench/estimator_scale.py", *sys.argv[1:]]),
        "fill_s": args.fill,
        "scrape_interval_s": args.scrape_interval,
        "cycle_interval_s": args.interval,
        "cycles": args.cycles,
        "baseline_rev": args.baseline_rev or None,
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
