"""The Kubernetes source: the pods of this node that hold GPUs, from the kubelet's
pod-resources API.

Each poll calls ``v1.PodResourcesLister/List`` on the kubelet's unix socket
(``/var/lib/kubelet/pod-resources/kubelet.sock``; mount its directory, not the socket, so
that a restarted kubelet's new socket is seen). Every container with devices of an NVIDIA
resource (``nvidia.com/gpu``, ``nvidia.com/mig-*``, or any listed with
``--kubelet.resource-prefix``) is one job, ``namespace:pod:container``, labelled with its
namespace, pod and container. Its device ids name its GPUs the way the NVIDIA device plugin
hands them out: a board's UUID (``GPU-...``), a MIG instance's (``MIG-...``), or a
time-sliced replica of a board (``GPU-...::N``, the board itself). The registry splits each
board's energy among the jobs on it by its one rule (equal, MIG instances by their share),
so the energy of the pods on a board sums to the board's, never more.

The API says nothing of how a pod ended: a container gone from two polls in a row ends as
``ended``. A kubelet that does not answer is a failed poll (counted, logged by the poller);
the jobs it reported are kept meanwhile, and scrapes never wait on it.
"""

from __future__ import annotations

from collections.abc import Sequence

from joulecast.exporter.sources.base import FoundJob, SourceError
from joulecast.schema import JobSpec, SchedulerLabels, SchemaError, validate_job_id

SOCKET = "/var/lib/kubelet/pod-resources/kubelet.sock"
RESOURCES = ("nvidia.com/gpu", "nvidia.com/mig-")
ENDED = "ended"  # gone from the kubelet's list: the API does not say how it ended


def device_uuid(device_id: str) -> str | None:
    """The board or MIG UUID a device plugin id names (``GPU-x::2`` is a replica of
    ``GPU-x``); None for an id that names neither."""
    uuid = device_id.split("::", 1)[0].strip()
    return uuid if uuid.startswith(("GPU-", "MIG-")) else None


def job_id_of(namespace: str, pod: str, container: str) -> str:
    return validate_job_id(f"{namespace}:{pod}:{container}")


class KubeletSource:
    name = "kubernetes"
    vanished_outcome = ENDED

    def __init__(
        self,
        socket_path: str = SOCKET,
        resources: Sequence[str] = RESOURCES,
        timeout_s: float = 5.0,
    ) -> None:
        self.socket_path = socket_path
        self.resources = tuple(resources)
        self.timeout_s = timeout_s
        self._channel = None
        self._stub = None

    def _lister(self):  # type: ignore[no-untyped-def]
        if self._stub is None:
            import grpc

            from joulecast.exporter.sources.podresources import api_pb2_grpc

            self._channel = grpc.insecure_channel(f"unix://{self.socket_path}")
            self._stub = api_pb2_grpc.PodResourcesListerStub(self._channel)
        return self._stub

    def _list(self):  # type: ignore[no-untyped-def]
        import grpc

        from joulecast.exporter.sources.podresources import api_pb2

        try:
            return self._lister().List(api_pb2.ListPodResourcesRequest(), timeout=self.timeout_s)
        except grpc.RpcError as err:
            self.close()  # a fresh channel next time: the kubelet may have restarted
            code = err.code().name if hasattr(err, "code") else "error"
            raise SourceError(f"kubelet pod-resources at {self.socket_path}: {code}") from None

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
        self._channel = self._stub = None

    def poll(self) -> list[FoundJob]:
        out = []
        for pod in self._list().pod_resources:
            for container in pod.containers:
                found = self.found(pod.namespace, pod.name, container)
                if found is not None:
                    out.append(found)
        return out

    def found(self, namespace: str, pod: str, container) -> FoundJob | None:  # type: ignore[no-untyped-def]
        uuids = sorted(
            {
                u
                for d in container.devices
                if d.resource_name.startswith(self.resources)
                for u in map(device_uuid, d.device_ids)
                if u is not None
            }
        )
        if not uuids:
            return None
        try:
            job_id = job_id_of(namespace, pod, container.name)
            labels = SchedulerLabels(
                scheduler=self.name, namespace=namespace, pod=pod, container=container.name
            )
        except SchemaError:
            return None  # names no Kubernetes object can have
        spec = JobSpec(job_id=job_id, epochs_planned=0, gpu_uuids=tuple(uuids), scheduler=labels)
        return FoundJob(spec=spec, started_at=None)
