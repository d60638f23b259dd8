"""``joulecast-estimator``: flags, wiring, the cycle thread. The only module that exits."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry

from estimator.baselines import BaselineConfig
from estimator.calibration import HistoryStore, Retrainer, startup_models
from estimator.collector import EstimatorCollector
from estimator.http import estimator_server
from estimator.model_store import SEED_DIR, ModelError
from estimator.promclient import PromClient, PromConfig
from estimator.queue import QueueStore
from estimator.queue_api import QueueApi
from estimator.service import Estimator, EstimatorConfig
from joulecast import __version__
from joulecast.flags import FlagError, add_flag, listen_address, non_negative_int, positive_float
from joulecast.httpserver import ServiceServer
from joulecast.step import StepConfig

log = logging.getLogger("joulecast.estimator")


def _epoch_or_auto(v: str) -> int | None:
    if v == "auto":
        return None
    n = non_negative_int(v)
    return n


def _epochs_list(v: str) -> tuple[int, ...]:
    try:
        out = tuple(sorted({int(x) for x in v.split(",") if x.strip()}))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{v!r}: comma-separated epochs expected") from err
    if not out or min(out) < 1:
        raise argparse.ArgumentTypeError(f"{v!r}: epochs must be >= 1")
    return out


def _headers(v: str) -> dict[str, str]:
    out = {}
    for part in filter(None, (p.strip() for p in v.split(","))):
        k, sep, val = part.partition("=")
        if not sep or not k.strip():
            raise argparse.ArgumentTypeError(f"{part!r}: NAME=VALUE expected")
        out[k.strip()] = val.strip()
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="joulecast-estimator",
        description="STEP energy projections of running training jobs, from Prometheus.",
    )
    f = add_flag
    f(
        p,
        "--prometheus-url",
        default="http://127.0.0.1:9090",
        help="Base URL of the Prometheus-compatible query API",
    )
    f(p, "--prometheus.timeout", default=10.0, type=positive_float, help="Query timeout (s)")
    f(
        p,
        "--prometheus.retries",
        default=2,
        type=non_negative_int,
        help="Retries of a failed query (exponential backoff)",
    )
    f(p, "--prometheus.username", default="", help="Basic auth user")
    f(p, "--prometheus.password", default="", help="Basic auth password")
    f(p, "--prometheus.bearer-token", default="", help="Bearer token")
    f(
        p,
        "--prometheus.headers",
        default={},
        type=_headers,
        help="Extra headers NAME=VALUE,... (e.g. X-Scope-OrgID=team-a)",
    )
    f(
        p,
        "--web.listen-address",
        default="127.0.0.1:9867",
        type=listen_address,
        help="Address to serve /metrics on",
    )
    f(p, "--web.telemetry-path", default="/metrics", help="Path of the metrics endpoint")
    f(p, "--cycle.interval", default=15.0, type=positive_float, help="Seconds between cycles")
    f(
        p,
        "--query.lookback",
        default=86400.0,
        type=positive_float,
        help="History read at start-up (s)",
    )
    f(
        p,
        "--step.stabilizing-epoch",
        default="auto",
        type=_epoch_or_auto,
        help="Stabilizing epoch, or auto (detected)",
    )
    f(
        p,
        "--step.window",
        default="auto",
        type=_epoch_or_auto,
        help="Window of stable epochs, or auto (all stable epochs so far)",
    )
    f(
        p,
        "--step.paper",
        default=False,
        boolean=True,
        help="Use the seed study's STEP configuration (epoch 10, window 5, formulas as written)",
    )
    f(
        p,
        "--step.min-window",
        default=3,
        type=non_negative_int,
        help="Stable epochs needed before projecting",
    )
    f(
        p,
        "--step.interval-level",
        default=0.9,
        type=positive_float,
        help="Level of the projection interval",
    )
    f(
        p,
        "--pue",
        default=1.0,
        type=positive_float,
        help="PUE applied to STEP projections (1.0: GPU board energy)",
    )
    f(
        p,
        "--baseline.ga-pue",
        default=1.56,
        type=positive_float,
        help="PUE of the Green Algorithms baseline",
    )
    f(
        p,
        "--baseline.ga-memory-watts-per-gb",
        default=0.3725,
        type=positive_float,
        help="Green Algorithms memory power (W/GB)",
    )
    f(
        p,
        "--baseline.ga-default-memory-gb",
        default=0.0,
        type=float,
        help="Host memory for Green Algorithms when a job declares no host_ram_gb",
    )
    f(
        p,
        "--track.epochs",
        default=(10, 15, 20),
        type=_epochs_list,
        help="Epochs at which finished jobs' projections are scored",
    )
    f(
        p,
        "--jobs.finished-ttl",
        default=3600.0,
        type=positive_float,
        help="Seconds a finished job's scores stay published",
    )
    f(
        p,
        "--pre.model-dir",
        default="",
        help="PRE model directory (empty: the seed model shipped with joulecast); models retrained from --pre.history-file, kept in pre-models/ beside it, take precedence",
    )
    f(
        p,
        "--pre.enabled",
        default=True,
        boolean=True,
        help="Publish PRE forecasts for running and queued jobs",
    )
    f(
        p,
        "--pre.history-file",
        default="",
        help="CSV where finished jobs become PRE training rows (empty: no self-calibration)",
    )
    f(
        p,
        "--pre.reference-data",
        default="",
        help="Reference training data retrained together with the history (e.g. reference_runs.csv)",
    )
    f(
        p,
        "--pre.retrain-interval",
        default=21600.0,
        type=positive_float,
        help="Seconds between PRE retraining rounds",
    )
    f(
        p,
        "--queue.dir",
        default="",
        help="Directory of queued job specs (JSON); enables /api/v1/queue",
    )
    f(p, "--web.api-token", default="", help="Bearer token required by the queue API (empty: none)")
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
    f(
        p,
        "--log.level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="Log level",
    )
    p.add_argument("--version", action="version", version=f"joulecast-estimator {__version__}")
    return p


def step_config(args: argparse.Namespace) -> StepConfig:
    if args.step_paper:
        return StepConfig.paper()
    return StepConfig(
        stabilizing_epoch=args.step_stabilizing_epoch,
        window=args.step_window,
        min_window=max(1, args.step_min_window),
        level=min(args.step_interval_level, 0.999),
    )


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
        return f"http://{host}:{port}"

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
    client = PromClient(
        PromConfig(
            url=args.prometheus_url,
            timeout_s=args.prometheus_timeout,
            retries=args.prometheus_retries,
            username=args.prometheus_username or None,
            password=args.prometheus_password or None,
            bearer_token=args.prometheus_bearer_token or None,
            headers=dict(args.prometheus_headers),
        )
    )
    config = EstimatorConfig(
        step=step_config(args),
        baselines=BaselineConfig(
            ga_pue=args.baseline_ga_pue,
            ga_memory_watts_per_gb=args.baseline_ga_memory_watts_per_gb,
            ga_default_memory_gb=args.baseline_ga_default_memory_gb,
        ),
        pue=args.pue,
        lookback_s=args.query_lookback,
        track_epochs=args.track_epochs,
        finished_ttl_s=args.jobs_finished_ttl,
        carbon_intensity=args.carbon_intensity or None,
        carbon_query=args.carbon_intensity_query or None,
    )
    pre_models = {}
    retrained = Path(args.pre_history_file).parent / "pre-models" if args.pre_history_file else None
    if args.pre_enabled:
        try:
            configured = Path(args.pre_model_dir) if args.pre_model_dir else SEED_DIR
            pre_models, model_dir = startup_models(configured, retrained)
            log.info("PRE models from %s", model_dir)
        except ModelError as err:
            log.error("PRE disabled: %s", err)
    queue = QueueStore(Path(args.queue_dir)) if args.queue_dir else None
    retrainer = None
    if retrained is not None and pre_models:
        history = HistoryStore(Path(args.pre_history_file))
        reference = Path(args.pre_reference_data) if args.pre_reference_data else None
        retrainer = Retrainer(history, reference, retrained)
    estimator = Estimator(client, config, pre_models=pre_models, queue=queue, retrainer=retrainer)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(EstimatorCollector(estimator.snapshot, __version__))

    def health() -> tuple[bool, dict]:
        s = estimator.snapshot()
        ok = s.cycles == 0 or not s.stale
        return ok, {
            "status": "ok" if ok else "stale",
            "last_success": s.last_success_s,
            "cycles": s.cycles,
        }

    queue_api = (
        QueueApi(queue, estimator.snapshot, args.web_api_token or None)
        if queue is not None
        else None
    )
    server = estimator_server(
        args.web_listen_address, registry, health, args.web_telemetry_path, queue_api
    )
    return Service(
        estimator, server, args.cycle_interval, threading.Event(), args.pre_retrain_interval
    )


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except FlagError as err:
        print(f"joulecast-estimator: {err}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
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
    stop.wait()
    service.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
