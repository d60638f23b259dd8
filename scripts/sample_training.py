"""A stand-in training job: N epochs of sleep, posting epoch markers, in a loop.

Used by the compose demo profile so the dashboards fill without a GPU. Each run registers
a new job on GPU 0 of the exporter at $JOULECAST_URL.
"""

from __future__ import annotations

import argparse
import time

import joulecast


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--epoch-seconds", type=float, default=20.0)
    ap.add_argument("--runs", type=int, default=0, help="0: forever")
    ap.add_argument("--pause", type=float, default=60.0)
    args = ap.parse_args()
    run = 0
    while args.runs == 0 or run < args.runs:
        run += 1
        job_id = f"demo-{int(time.time())}"
        with joulecast.job(
            job_id,
            epochs=args.epochs,
            gpus=[0],
            features={"model_name": "resnet50", "model_gflops": 4.1, "batch_size": 64},
        ) as job:
            for epoch in range(1, args.epochs + 1):
                time.sleep(args.epoch_seconds * (2 if epoch == 1 else 1))
                job.epoch_end({"loss": 2.0 / epoch})
        time.sleep(args.pause)


if __name__ == "__main__":
    main()
