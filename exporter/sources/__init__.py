"""Job sources: where the exporter learns of jobs besides the client's markers.

Each source is one module behind :class:`~joulecast.exporter.sources.base.JobSource`
(the Slurm controller; Kubernetes' pod resources would be another). A poller thread reads
every source and :mod:`~joulecast.exporter.sources.sync` applies what it found to the
job registry: the same registry the marker API writes, so a job a scheduler found and
the markers of its client are one job.
"""
