"""GPU device adapters. They import nothing else of the project.

Each backend turns its source (NVML, a simulation, recorded traces) into
:class:`~joulecast.exporter.devices.base.GpuInfo` and :class:`~joulecast.exporter.devices.base.GpuReading`
dataclasses, in base units (W, J, bytes, ratios).
"""
