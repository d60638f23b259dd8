"""A plain PyTorch DDP run (gloo on CPU) started by torchrun, one torchrun per node.

Every rank enters the job; the first rank of each node posts that node's markers to the
exporter of its node (JOULECAST_URL). Usage::

    torchrun --nnodes 2 --node-rank N --nproc-per-node 2 ... ddp_plain.py JOB_ID EPOCHS EPOCH_S
"""

from __future__ import annotations

import sys
import time

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

import joulecast


def main() -> None:
    job_id, epochs, epoch_s = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    dist.init_process_group("gloo")
    model = DistributedDataParallel(torch.nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    g = torch.Generator().manual_seed(dist.get_rank())
    with joulecast.job(job_id, epochs=epochs, flush_timeout=30) as job:
        steps = max(1, round(epoch_s / 0.1))  # the same on every rank: DDP syncs each step
        for _ in range(epochs):
            for _ in range(steps):
                x = torch.randn(16, 8, generator=g)
                loss = torch.nn.functional.mse_loss(model(x), x.sum(dim=1, keepdim=True))
                opt.zero_grad()
                loss.backward()
                opt.step()
                time.sleep(0.1)
            dist.barrier()  # every rank ends the epoch together, as DDP runs do
            job.epoch_end({"loss": float(loss)})
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
