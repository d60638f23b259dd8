"""Job registry: epoch markers, attribution of GPU energy to jobs, persistence."""
