"""joulecast: energy projections for ML training jobs.

The training-side package. ``import joulecast`` needs only the standard library::

    with joulecast.job("run-42", epochs=100) as job:
        ...
        job.epoch_end()

Framework callbacks live in :mod:`joulecast.integrations` and import their framework lazily.
"""

from joulecast.client import Job, job
from joulecast.schema import SchemaError

__all__ = ["Job", "SchemaError", "job", "__version__"]
__version__ = "0.1.0"
