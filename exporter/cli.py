"""``joulecast-exporter``: flags, wiring, start-up and shutdown. The only module that exits."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry

from joulecast import __version__
from joulecast.exporter.api import MarkerApi
from joulecast.exporter.collectors.base import ScrapeCollector, SourceCollector
from joulecast.exporter.collectors.exporter_self import ApiStats, ExporterCollector
from joulecast.exporter.collectors.gpu import GpuCollector
from joulecast.exporter.collectors.host import HostCollector
from joulecast.exporter.collectors.jobs import JobsCollector
from joulecast.exporter.collectors.rapl import RaplCollector
from joulecast.exporter.collectors.sources import SourcesCollector
from joulecast.exporter.devices.base import DeviceError, GpuBackend, NoGpus
from joulecast.exporter.devices.nvml import NvmlBackend, nvml_available
from joulecast.exporter.devices.simulated import PROFILES, SimulatedBackend, load_traces
from joulecast.exporter.host.psutil_reader import PsutilReader
from joulecast.exporter.host.rapl import RaplReader
from joulecast.exporter.http import exporter_health, exporter_server, sampler_health
from joulecast.exporter.jobs.registry import GpuDirectory, JobRegistry
from joulecast.exporter.jobs.store import JobStore, StateStoreError
from joulecast.exporter.sampler import Sampler
from joulecast.exporter.sources import flags as source_flags
from joulecast.exporter.sources.poller import SourcePoller
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
)
from joulecast.serving.logs import setup_logging
from joulecast.serving.server import ServiceServer
from joulecast.serving.webconfig import api_token

log = logging.getLogger("joulecast.exporter")


def default_state_dir() -> str:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    return os.path.join(base, "joulecast-exporter")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="joulecast-exporter",
        description="Per-node GPU and host energy exporter with job epoch markers.",
    )
    f = add_flag
    f(
        p,
        "--web.listen-address",
        default="127.0.0.1:9866",
        type=listen_address,
        help="Address to serve /metrics and the marker API on",
    )
    f(p, "--web.telemetry-path", default="/metrics", help="Path of the metrics endpoint")
    add_common_flags(p, "marker")
    f(
        p,
        "--backend",
        default="auto",
        choices=["auto", "nvml", "simulated", "none"],
        help="GPU backend; auto picks nvml when a GPU is present, else simulated",
    )
    _add_simulated_flags(p)
    _add_sampling_and_job_flags(p)
    source_flags.add_flags(p)
    p.add_argument("--version", action="version", version=f"joulecast-exporter {__version__}")
    return p


def _add_simulated_flags(p: argparse.ArgumentParser) -> None:
    f = add_flag
    f(
        p,
        "--simulated.gpus",
        default=1,
        type=non_negative_int,
        help="Number of simulated GPUs",
        aliases=("--simulated-gpus",),
    )
    f(
        p,
        "--simulated.profile",
        default="a100",
        choices=sorted(PROFILES),
        help="Model of the simulated GPUs",
    )
    f(
        p,
        "--simulated.traces-dir",
        default="",
        help="Replay 1 Hz power traces (t_s,power_w,utilization CSVs) from this folder while a job runs",
    )
    f(
        p,
        "--simulated.time-scale",
        default=1.0,
        type=positive_float,
        help="Replay speed-up of recorded traces",
    )
    f(
        p,
        "--simulated.energy-counter",
        default=True,
        boolean=True,
        help="Simulated GPUs expose a hardware energy counter (like NVML on Volta+)",
    )
    f(
        p,
        "--simulated.warmup-seconds",
        default=3.0,
        type=positive_float,
        help="Warm-up phase of the simulated load model",
    )
    f(
        p,
        "--simulated.cycle-seconds",
        default=2.0,
        type=positive_float,
        help="Period of the simulated evaluation dip (set it to the epoch length to model per-epoch evaluation)",
    )
    f(p, "--simulated.seed", default=0, type=non_negative_int, help="Random seed of the simulation")


def _add_sampling_and_job_flags(p: argparse.ArgumentParser) -> None:
    f = add_flag
    f(
        p,
        "--sampling.gpu-hz",
        default=10.0,
        type=positive_float,
        help="Internal GPU sampling rate, independent of the scrape interval",
    )
    f(p, "--sampling.host-hz", default=1.0, type=positive_float, help="Host/RAPL sampling rate")
    f(
        p,
        "--gpu.idle-power-watts",
        default=0.0,
        type=float,
        help="Idle power per GPU for the idle/active split (0: lowest power seen)",
    )
    f(
        p,
        "--state.dir",
        default=default_state_dir(),
        help="Directory of the durable job state",
        aliases=("--state-dir",),
    )
    f(
        p,
        "--jobs.max-live",
        default=1000,
        type=non_negative_int,
        help="Maximum number of live jobs (429 past it)",
    )
    f(
        p,
        "--jobs.max-finished",
        default=1000,
        type=non_negative_int,
        help="Finished jobs kept published; past it the oldest are dropped first",
    )
    f(
        p,
        "--jobs.finished-ttl",
        default=3600.0,
        type=positive_float,
        help="Seconds a finished job stays visible",
    )
    f(
        p,
        "--jobs.lost-after",
        default=30.0,
        type=positive_float,
        help="Seconds a job's processes (or its client's heartbeat) may be gone before the "
        "job ends as lost; it is not charged from the moment they are found gone",
    )
    f(p, "--path.sysfs", default="/sys", help="sysfs mount point (RAPL powercap lives under it)")
    f(p, "--collector.host", default=True, boolean=True, help="Enable the host (psutil) collector")
    f(p, "--collector.rapl", default=True, boolean=True, help="Enable the RAPL collector")


@dataclass
class Exporter:
    backend: GpuBackend
    registry: JobRegistry
    sampler: Sampler
    server: ServiceServer
    metrics: CollectorRegistry
    sources: SourcePoller

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"{self.server.scheme}://{host}:{port}"

    def start(self) -> None:
        self.sampler.start()
        self.sources.start()
        self.server.serve_in_thread()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.sources.stop()
        self.sampler.stop()
        self.backend.close()


def make_backend(args: argparse.Namespace) -> GpuBackend:
    choice = args.backend
    if choice == "auto":
        choice = "nvml" if nvml_available() else "simulated"
    if choice == "nvml":
        return NvmlBackend()
    if choice == "none":
        return NoGpus()
    traces = None
    if args.simulated_traces_dir:
        traces = load_traces(Path(args.simulated_traces_dir))
    return SimulatedBackend(
        args.simulated_gpus,
        profile=args.simulated_profile,
        traces=traces,
        energy_counter=args.simulated_energy_counter,
        seed=args.simulated_seed,
        warmup_s=args.simulated_warmup_seconds,
        cycle_s=args.simulated_cycle_seconds,
        time_scale=args.simulated_time_scale,
    )


def build(args: argparse.Namespace, backend: GpuBackend | None = None) -> Exporter:
    backend = backend or make_backend(args)
    rejections = FileRejections()
    store = JobStore(Path(args.state_dir), rejections)
    token = api_token(args)
    registry = JobRegistry(
        GpuDirectory(tuple(backend.devices()), backend.lists_processes),
        store,
        max_live_jobs=args.jobs_max_live,
        max_finished_jobs=args.jobs_max_finished,
        finished_ttl_s=args.jobs_finished_ttl,
        lost_after_s=args.jobs_lost_after,
    )
    if isinstance(backend, SimulatedBackend):
        backend.set_busy(registry.busy)
    sampler = Sampler(
        backend,
        registry,
        gpu_hz=args.sampling_gpu_hz,
        host_hz=args.sampling_host_hz,
        host=PsutilReader() if args.collector_host else None,
        rapl=RaplReader(Path(args.path_sysfs)) if args.collector_rapl else None,
        idle_power_watts=args.gpu_idle_power_watts or None,
    )
    stats = ApiStats()
    poller = source_flags.build_poller(args, registry)
    sources: list[SourceCollector] = [GpuCollector(), JobsCollector(registry)]
    if poller.syncs:
        sources.append(SourcesCollector(poller))
    if args.collector_host:
        sources.append(HostCollector())
    if args.collector_rapl:
        sources.append(RaplCollector())
    sources.append(ExporterCollector(registry, stats, __version__, args.sampling_gpu_hz))
    metrics = metrics_registry("exporter")
    metrics.register(ScrapeCollector(sampler.snapshot, sources))
    sampling = sampler_health(
        lambda: sampler.snapshot().timestamp, max_age_s=max(5.0, 20.0 / args.sampling_gpu_hz)
    )
    server = exporter_server(
        args,
        metrics,
        MarkerApi(registry, token, wake=poller.wake),
        stats,
        exporter_health(sampling, registry.store_health),
    )
    metrics.register(ServerCollector(server))
    metrics.register(RejectionsCollector(rejections, ("state", "state_row")))
    return Exporter(backend, registry, sampler, server, metrics, poller)


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except FlagError as err:
        print(f"joulecast-exporter: {err}", file=sys.stderr)
        return 2
    setup_logging(args)
    try:
        exporter = build(args)
    except (DeviceError, StateStoreError, ValueError, OSError) as err:
        print(f"joulecast-exporter: {err}", file=sys.stderr)
        return 1
    devices = exporter.backend.devices()
    if isinstance(exporter.backend, SimulatedBackend):
        log.warning(
            'SIMULATED GPU backend: %d simulated GPU(s) (%s); metrics carry simulated="true"',
            len(devices),
            args.simulated_profile,
        )
    else:
        log.info(
            "%s backend: %d GPU(s): %s",
            exporter.backend.name,
            len(devices),
            ", ".join(d.model for d in devices),
        )
    exporter.start()
    log.info("listening on %s (metrics at %s)", exporter.url, args.web_telemetry_path)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    on_sighup(lambda: reload_web_config(args, exporter.server, log))
    stop.wait()
    log.info("shutting down")
    exporter.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
