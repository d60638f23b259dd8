"""joulecast / Node: per-GPU power, energy, utilization, memory, temperature and host figures."""

from __future__ import annotations

from boards.common import Board, Query, query_var

NODE = 'instance=~"$node"'
GPU = f'{NODE},gpu=~"$gpu"'
BY_GPU = "{{instance}} GPU {{gpu}}"


def board() -> Board:
    b = Board(
        "joulecast-node",
        "joulecast / Node",
        "Per-GPU power, energy, utilization, memory, temperature and host metrics of one node.",
        [
            query_var("node", "Node", "label_values(joulecast_gpu_info, instance)"),
            query_var("gpu", "GPU", 'label_values(joulecast_gpu_info{instance=~"$node"}, gpu)'),
        ],
    )
    now(b)
    gpus(b)
    host(b)
    return b


def now(b: Board) -> None:
    b.row("Now")
    b.stat("GPU power now", [Query(f"sum(joulecast_gpu_power_watts{{{GPU}}})")], unit="watt")
    b.stat(
        "GPU energy, last 24 h",
        [Query(f"sum(increase(joulecast_gpu_energy_joules_total{{{GPU}}}[24h])) / 3.6e6")],
        unit="kwatth",
        decimals=2,
    )
    b.stat(
        "Simulated GPUs",
        [Query(f'count(joulecast_gpu_info{{{GPU},simulated="true"}}) or vector(0)')],
        description="GPUs served by the simulated backend (no real measurement).",
    )
    b.stat("Live jobs", [Query(f"sum(joulecast_exporter_live_jobs{{{NODE}}})")])


def gpus(b: Board) -> None:
    b.row("GPUs")
    b.timeseries(
        "Power",
        [
            Query(f"joulecast_gpu_power_watts{{{GPU}}}", BY_GPU),
            Query(f"joulecast_gpu_default_power_limit_watts{{{GPU}}}", f"TDP {BY_GPU}"),
        ],
        unit="watt",
    )
    b.timeseries(
        "Energy counter vs integrated power",
        [
            Query(
                f"rate(joulecast_gpu_energy_joules_total{{{GPU}}}[$__rate_interval])",
                f"counter {BY_GPU}",
            ),
            Query(
                f"rate(joulecast_gpu_power_integrated_energy_joules_total{{{GPU}}}[$__rate_interval])",
                f"integrated {BY_GPU}",
            ),
        ],
        unit="watt",
        description="Mean power from the two energy counters; they should agree.",
    )
    b.timeseries(
        "Utilization",
        [Query(f"joulecast_gpu_utilization_ratio{{{GPU}}}", BY_GPU)],
        unit="percentunit",
    )
    b.timeseries(
        "Memory used",
        [
            Query(
                f"joulecast_gpu_memory_used_bytes{{{GPU}}} / joulecast_gpu_memory_total_bytes{{{GPU}}}",
                BY_GPU,
            )
        ],
        unit="percentunit",
    )
    b.timeseries(
        "Temperature",
        [Query(f"joulecast_gpu_temperature_celsius{{{GPU}}}", BY_GPU)],
        unit="celsius",
    )
    b.timeseries(
        "SM clock", [Query(f"joulecast_gpu_sm_clock_hertz{{{GPU}}}", BY_GPU)], unit="hertz"
    )
    b.timeseries(
        "NVML errors",
        [
            Query(
                "sum by (instance, gpu, kind) "
                f"(rate(joulecast_gpu_errors_total{{{GPU}}}[$__rate_interval])) or vector(0)",
                f"{BY_GPU} {{{{kind}}}}",
            )
        ],
        unit="ops",
    )
    b.table("GPUs", [Query(f"joulecast_gpu_info{{{GPU}}}")])


def host(b: Board) -> None:
    b.row("Host")
    b.timeseries(
        "Host CPU",
        [Query(f"joulecast_host_cpu_utilization_ratio{{{NODE}}}", "{{instance}}")],
        unit="percentunit",
        w=8,
    )
    b.timeseries(
        "Host RAM used",
        [Query(f"joulecast_host_memory_used_bytes{{{NODE}}}", "{{instance}}")],
        unit="bytes",
        w=8,
    )
    b.timeseries(
        "CPU / DRAM power (RAPL)",
        [
            Query(
                "sum by (instance, domain) "
                f"(rate(joulecast_host_cpu_energy_joules_total{{{NODE}}}[$__rate_interval])) or vector(0)",
                "{{instance}} {{domain}}",
            )
        ],
        unit="watt",
        w=8,
        description="Absent (0) where powercap is not readable.",
    )
