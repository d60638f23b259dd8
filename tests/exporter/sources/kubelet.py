"""A stand-in kubelet: the real pod-resources gRPC API (``v1.PodResourcesLister``, the
code generated from the kubelet's own api.proto) served by grpcio on a unix socket, with
the pods a test gives it. It can be stopped (a kubelet that is down) and started again on
the same socket (a kubelet that restarts)."""

from __future__ import annotations

from concurrent import futures
from dataclasses import dataclass, field

import grpc

from joulecast.exporter.sources.podresources import api_pb2, api_pb2_grpc


@dataclass
class Pod:
    namespace: str
    name: str
    #: container name -> [(resource name, [device ids])]
    containers: dict[str, list[tuple[str, list[str]]]] = field(default_factory=dict)

    def message(self) -> api_pb2.PodResources:
        return api_pb2.PodResources(
            name=self.name,
            namespace=self.namespace,
            containers=[
                api_pb2.ContainerResources(
                    name=c,
                    devices=[
                        api_pb2.ContainerDevices(resource_name=r, device_ids=ids)
                        for r, ids in devices
                    ],
                )
                for c, devices in self.containers.items()
            ],
        )


class _Lister(api_pb2_grpc.PodResourcesListerServicer):
    def __init__(self, kubelet: StandInKubelet) -> None:
        self.kubelet = kubelet

    def List(self, request, context):  # noqa: N802 (the API's name)
        self.kubelet.calls += 1
        return api_pb2.ListPodResourcesResponse(
            pod_resources=[p.message() for p in list(self.kubelet.pods)]
        )


class StandInKubelet:
    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        self.pods: list[Pod] = []
        self.calls = 0
        self._server: grpc.Server | None = None

    def start(self) -> StandInKubelet:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        api_pb2_grpc.add_PodResourcesListerServicer_to_server(_Lister(self), server)
        server.add_insecure_port(f"unix://{self.socket_path}")
        server.start()
        self._server = server
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=None).wait(5)
            self._server = None
