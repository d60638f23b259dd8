"""The PRE room: job features and the GPU spec table, the two regression methods, cross-
validation, the model store, self-calibration and forecasts. No network I/O; the model store
and the history file are its only files."""
