"""The STEP room: live projections of running jobs (:mod:`.stage`), the TDP baselines they
are published beside, the track record of finished jobs, their metric families and flags.
No I/O: it works on the snapshot the Prometheus room fetched."""
