"""The kubelet's pod-resources gRPC API (``v1.PodResourcesLister``), as generated code.

``api.proto`` is kubernetes/kubelet's ``pkg/apis/podresources/v1/api.proto`` at commit
63b3249724f7d89a8aa48f9acb3811f193c9aa68, unmodified (Apache-2.0, ``LICENSE``).
``api_pb2.py`` and ``api_pb2_grpc.py`` were generated from it with grpcio-tools 1.85.1::

    python -m grpc_tools.protoc -I. --python_out=. --grpc_python_out=. api.proto

and one import in ``api_pb2_grpc.py`` made relative so that the package installs under
``joulecast``. They need grpcio >= 1.85.1 and protobuf >= 7.35.1 (``joulecast[kubernetes]``).
"""
