"""joulecast estimator: STEP projections of running jobs, published for Prometheus."""
