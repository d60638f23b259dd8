"""The job sources' flags and the poller they configure."""

from __future__ import annotations

import argparse
import shlex

from joulecast.exporter.jobs.registry import JobRegistry
from joulecast.exporter.sources.kubernetes import RESOURCES, SOCKET, KubeletSource
from joulecast.exporter.sources.poller import SourcePoller
from joulecast.exporter.sources.slurm import SlurmSource
from joulecast.exporter.sources.sync import SourceSync
from joulecast.serving.flags import add_flag, positive_float


def add_flags(p: argparse.ArgumentParser) -> None:
    f = add_flag
    f(
        p,
        "--source.slurm",
        default=False,
        boolean=True,
        help="Track every Slurm job that holds GPUs on this node (reads squeue --json)",
    )
    f(
        p,
        "--slurm.node-name",
        default="",
        help="This node's name in Slurm (default: the short host name)",
    )
    f(
        p,
        "--slurm.squeue-command",
        default="squeue --json",
        help="Command that prints the controller's jobs as JSON (SLURM_CONF is passed on)",
    )
    f(
        p,
        "--source.kubernetes",
        default=False,
        boolean=True,
        help="Track every pod container that holds GPUs on this node (the kubelet's "
        "pod-resources API; needs joulecast[kubernetes])",
    )
    f(
        p,
        "--kubelet.pod-resources-socket",
        default=SOCKET,
        help="The kubelet's pod-resources socket (mount its directory, not the socket)",
    )
    f(
        p,
        "--kubelet.resource-prefixes",
        default=",".join(RESOURCES),
        help="Comma-separated prefixes of the extended resources that are GPUs",
    )
    f(
        p,
        "--sources.poll-interval",
        default=15.0,
        type=positive_float,
        help="Seconds between polls of the job sources (a prolog or epilog wakes them at once)",
    )


def build_poller(args: argparse.Namespace, registry: JobRegistry) -> SourcePoller:
    syncs = []
    if args.source_slurm:
        source = SlurmSource(
            node=args.slurm_node_name or None, command=shlex.split(args.slurm_squeue_command)
        )
        syncs.append(SourceSync(registry, source))
    if args.source_kubernetes:
        prefixes = [r.strip() for r in args.kubelet_resource_prefixes.split(",") if r.strip()]
        kubelet = KubeletSource(args.kubelet_pod_resources_socket, prefixes)
        syncs.append(SourceSync(registry, kubelet))
    return SourcePoller(syncs, interval_s=args.sources_poll_interval)
