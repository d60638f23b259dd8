"""``joulecast-estimator``: flags, wiring, the cycle thread. The only module that exits."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from joulecast import __version__
from joulecast.estimator.budgets.collector import BudgetCollector
from joulecast.estimator.budgets.file import BudgetFile
from joulecast.estimator.collector import room_collectors
from joulecast.estimator.http import estimator_server
from joulecast.estimator.pre import flags as pre_flags
from joulecast.estimator.prometheus import flags as prometheus_flags
from joulecast.estimator.prometheus.client import PromClient
from joulecast.estimator.queue import flags as queue_flags
from joulecast.estimator.queue.api import QueueApi
from joulecast.estimator.service import Estimator, EstimatorConfig
from joulecast.estimator.step import flags as step_flags
from joulecast.serving.daemon import (
    ServerCollector,
    add_common_flags,
    metrics_registry,
    on_sighup,
    reload_web_config,
)
from joulecast.serving.files import FileRejections, RejectionsCollector
from joulecast.serving.flags import (
    FlagError,
    add_flag,
    listen_address,
    non_negative_int,
    positive_float,
    positive_int,
)
from joulecast.serving.logs import setup_logging
from joulecast.serving.server import ServiceServer
from joulecast.serving.webconfig import api_token
from joulecast.step import StepConfig

log = logging.getLogger("joulecast.estimator")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="joulecast-estimator",
        description="STEP energy projections of running training jobs, from Prometheus.",
    )
    f = add_flag
    f(
        p,
        "--web.listen-address",
        default="127.0.0.1:9867",
        type=listen_address,
        help="Address to serve /metrics on",
    )
    f(p, "--web.telemetry-path", default="/metrics", help="Path of the metrics endpoint")
    add_common_flags(p, "queue")
    f(p, "--cycle.interval", default=15.0, type=positive_float, help="Seconds between cycles")
    f(
        p,
        "--cycle.gc-pause",
        default=True,
        boolean=True,
        help="No automatic garbage collection within a cycle, one of the young generations "
        "at its end (a third of a cycle at 10,000 jobs otherwise)",
    )
    f(
        p,
        "--jobs.max-tracked",
        default=10_000,
        type=positive_int,
        help="Jobs tracked and published at most; past it jobs not yet known are left out "
        "(running ones first) and counted in joulecast_estimator_jobs_dropped",
    )
    f(
        p,
        "--shard.count",
        default=1,
        type=positive_int,
        help="Estimator shards the jobs are dealt to (by job_bucket; docs/scaling.md)",
    )
    f(
        p,
        "--shard.index",
        default=0,
        type=non_negative_int,
        help="This replica's shard, 0 to --shard.count - 1 (two replicas of one shard "
        "publish the same series)",
    )
    f(
        p,
        "--budgets.file",
        default="",
        help="YAML of default energy budgets (kWh) per scheduler account and for the fleet, "
        "for jobs that declare none; read again when it changes (docs/alerts.md)",
    )
    f(
        p,
        "--carbon.intensity",
        default=0.0,
        type=float,
        help="Grid carbon intensity, gCO2e/kWh (0: no emissions)",
    )
    f(
        p,
        "--carbon.intensity-query",
        default="",
        help="PromQL giving the grid intensity in gCO2e/kWh (overrides the constant)",
    )
    for room in (prometheus_flags, step_flags, pre_flags, queue_flags):
        room.add_flags(p)
    p.add_argument("--version", action="version", version=f"joulecast-estimator {__version__}")
    return p


def step_config(args: argparse.Namespace) -> StepConfig:
    return step_flags.step_config(args)


@dataclass
class Service:
    estimator: Estimator
    server: ServiceServer
    interval_s: float
    stop_event: threading.Event
    retrain_interval_s: float = 21600.0

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"{self.server.scheme}://{host}:{port}"

    def start(self) -> None:
        self.server.serve_in_thread()
        threading.Thread(
            target=self.estimator.run,
            args=(self.interval_s, self.stop_event),
            name="joulecast-cycle",
            daemon=True,
        ).start()
        if self.estimator.retrainer is not None:
            threading.Thread(
                target=self.estimator.retrain_loop,
                args=(self.retrain_interval_s, self.stop_event),
                name="joulecast-retrain",
                daemon=True,
            ).start()

    def stop(self) -> None:
        self.stop_event.set()
        self.server.shutdown()
        self.server.server_close()


def build(args: argparse.Namespace) -> Service:
    client = PromClient(prometheus_flags.prom_config(args))
    settings = step_flags.step_settings(args)
    config = EstimatorConfig(
        step=settings.step,
        baselines=settings.baselines,
        pue=settings.pue,
        lookback_s=args.query_lookback,
        overlap_s=args.query_overlap,
        incremental=args.query_incremental,
        resync_s=args.query_resync_interval,
        pause_gc=args.cycle_gc_pause,
        track_epochs=settings.track_epochs,
        finished_ttl_s=settings.finished_ttl_s,
        carbon_intensity=args.carbon_intensity or None,
        carbon_query=args.carbon_intensity_query or None,
        calibration_min_jobs=settings.calibration_min_jobs,
        calibration_file=Path(args.step_calibration_file) if args.step_calibration_file else None,
        max_jobs=args.jobs_max_tracked,
        shard_index=args.shard_index,
        shard_count=args.shard_count,
    )
    if args.shard_index >= args.shard_count:
        raise ValueError(
            f"--shard.index {args.shard_index} is not below --shard.count {args.shard_count}"
        )
    rejections = FileRejections()
    pre_models, retrainer, ratings = pre_flags.pre_setup(args, rejections)
    queue = queue_flags.queue_store(args, rejections)
    estimator = Estimator(
        client,
        config,
        pre_models=pre_models,
        queue=queue,
        pending=queue_flags.slurm_queue(args),
        runs=queue_flags.run_history(args, rejections),
        retrainer=retrainer,
        ratings=ratings,
        rejections=rejections,
    )
    registry = metrics_registry("estimator")
    registry.register(
        RejectionsCollector(rejections, ("queue", "calibration", "history", "model", "runs"))
    )
    for collector in room_collectors(estimator.snapshot, __version__):
        registry.register(collector)
    if args.budgets_file:
        registry.register(BudgetCollector(BudgetFile(Path(args.budgets_file))))

    def health() -> tuple[bool, dict]:
        s = estimator.snapshot()
        ok = s.cycles == 0 or not s.stale
        return ok, {
            "status": "ok" if ok else "stale",
            "last_success": s.last_success_s,
            "cycles": s.cycles,
        }

    queue_api = (
        QueueApi(queue, lambda: estimator.snapshot().queue, api_token(args))
        if queue is not None
        else None
    )
    server = estimator_server(args, registry, health, queue_api)
    registry.register(ServerCollector(server))
    return Service(
        estimator, server, args.cycle_interval, threading.Event(), args.pre_retrain_interval
    )


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except FlagError as err:
        print(f"joulecast-estimator: {err}", file=sys.stderr)
        return 2
    setup_logging(args)
    try:
        service = build(args)
    except (OSError, ValueError) as err:
        print(f"joulecast-estimator: {err}", file=sys.stderr)
        return 1
    service.start()
    log.info(
        "projecting from %s every %gs; metrics on %s%s",
        args.prometheus_url,
        args.cycle_interval,
        service.url,
        args.web_telemetry_path,
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    on_sighup(lambda: reload_web_config(args, service.server, log))
    stop.wait()
    service.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
