"""joulecast exporter: per-node GPU/host energy metrics and job epoch markers."""
