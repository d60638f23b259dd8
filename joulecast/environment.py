"""What a training process can learn about its job from its environment: its GPUs
(CUDA, the NVIDIA container toolkit, Slurm) and its rank in a distributed run."""

from __future__ import annotations

import os
from collections.abc import Mapping

from joulecast.schema import (
    SchedulerLabels,
    SchemaError,
    parse_gpu_selector,
    parse_scheduler_labels,
    validate_job_id,
)


def _selector(env: Mapping[str, str], var: str) -> tuple[list[int], list[str]] | None:
    value = env.get(var, "").strip()
    if not value or value.lower() in ("nodevfiles", "-1", "all", "none", "void"):
        return None
    try:
        indices, uuids = parse_gpu_selector(value)
    except SchemaError:
        return None
    return list(indices), list(uuids)


def gpus_from_environment(env: Mapping[str, str] | None = None) -> tuple[list[int], list[str]]:
    """GPUs of this process's allocation, as the node's exporter can name them.

    ``CUDA_VISIBLE_DEVICES`` UUIDs first; then a container's ``NVIDIA_VISIBLE_DEVICES``
    (set by the NVIDIA container toolkit and the Kubernetes device plugin: host UUIDs or
    indices, where ``CUDA_VISIBLE_DEVICES`` indices would count from the container's first
    GPU); then ``CUDA_VISIBLE_DEVICES`` indices; then Slurm's ``SLURM_STEP_GPUS`` /
    ``SLURM_JOB_GPUS``. Nothing usable: ``([], [])``.
    """
    env = os.environ if env is None else env
    cuda = _selector(env, "CUDA_VISIBLE_DEVICES")
    if cuda is not None and cuda[1]:
        return cuda
    for found in (
        _selector(env, "NVIDIA_VISIBLE_DEVICES"),
        cuda,
        _selector(env, "SLURM_STEP_GPUS"),
        _selector(env, "SLURM_JOB_GPUS"),
    ):
        if found is not None:
            return found
    return [], []


def rank_from_environment(env: Mapping[str, str] | None = None) -> int:
    """This process's global rank in a distributed run: ``RANK`` (torchrun, Lightning),
    else ``LOCAL_RANK`` (one node), else Slurm's ``SLURM_PROCID``; 0 when none is set."""
    env = os.environ if env is None else env
    for var in ("RANK", "LOCAL_RANK", "SLURM_PROCID"):
        value = env.get(var, "").strip()
        if value.isdigit():
            return int(value)
    return 0


LOCAL_RANK_VARS = ("LOCAL_RANK", "SLURM_LOCALID", "OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID")


def local_rank_from_environment(env: Mapping[str, str] | None = None) -> int:
    """This process's rank on its node: ``LOCAL_RANK`` (torchrun, Lightning), Slurm's
    ``SLURM_LOCALID``, Open MPI's or MPICH's; else the global rank (one node)."""
    env = os.environ if env is None else env
    for var in LOCAL_RANK_VARS:
        value = env.get(var, "").strip()
        if value.isdigit():
            return int(value)
    return rank_from_environment(env)


def job_id_from_environment(env: Mapping[str, str] | None = None) -> str | None:
    """The job id a run takes when its script names none: ``JOULECAST_JOB_ID``, else the
    Slurm job as Slurm prints it (``1234``, or ``1234_7`` for an array task), so that the
    client's markers enrich the job the exporter's Slurm source found. Every ``srun`` step
    of an allocation is the same job; a script that wants one job per step names it, e.g.
    ``f"{os.environ['SLURM_JOB_ID']}.{os.environ['SLURM_STEP_ID']}"``. In a Kubernetes
    pod: ``namespace:pod:container`` from the downward API's ``POD_NAMESPACE`` and
    ``POD_NAME`` and the container's ``CONTAINER_NAME``, the job the Kubernetes source
    found (docs/kubernetes.md)."""
    env = os.environ if env is None else env
    array_job, task = env.get("SLURM_ARRAY_JOB_ID", ""), env.get("SLURM_ARRAY_TASK_ID", "")
    pod = kubernetes_labels(env)
    for candidate in (
        env.get("JOULECAST_JOB_ID", ""),
        f"{array_job}_{task}" if array_job.isdigit() and task.isdigit() else "",
        env.get("SLURM_JOB_ID", ""),
        f"{pod.namespace}:{pod.pod}:{pod.container}" if pod and pod.container else "",
    ):
        try:
            return validate_job_id(candidate.strip())
        except SchemaError:
            continue
    return None


def nodes_from_environment(env: Mapping[str, str] | None = None) -> int:
    """Nodes of a distributed run: ``WORLD_SIZE / LOCAL_WORLD_SIZE`` (torchrun), else
    Slurm's ``SLURM_JOB_NUM_NODES``; 1 when neither says."""
    env = os.environ if env is None else env

    def number(var: str) -> int | None:
        try:
            value = int(env.get(var, ""))
        except ValueError:
            return None
        return value if value > 0 else None

    world, local = number("WORLD_SIZE"), number("LOCAL_WORLD_SIZE")
    if world and local and world % local == 0:
        return world // local
    return number("SLURM_JOB_NUM_NODES") or number("SLURM_NNODES") or 1


def kubernetes_labels(env: Mapping[str, str] | None = None) -> SchedulerLabels | None:
    """The pod's container this process runs in, from the downward API (``POD_NAMESPACE``,
    ``POD_NAME``) and ``CONTAINER_NAME`` (which the pod spec sets: the downward API has no
    field for it); None outside a pod. Sent with the registration, they tell the exporter's
    Kubernetes source that a job the script named itself is this container's."""
    env = os.environ if env is None else env
    namespace, pod = env.get("POD_NAMESPACE", "").strip(), env.get("POD_NAME", "").strip()
    if not namespace or not pod:
        return None
    payload = {"scheduler": "kubernetes", "namespace": namespace, "pod": pod}
    container = env.get("CONTAINER_NAME", "").strip()
    if container:
        payload["container"] = container
    try:
        return parse_scheduler_labels(payload)
    except SchemaError:
        return None
