"""When and how a framework callback stops a run for its energy budget.

The decision is this node's first process's (the one that posts markers and reads the
exporter's answers). Under data parallelism every rank must stop at the same step, or the
others wait forever in their next collective: the callbacks check only at points every rank
reaches together (an epoch end; with a step plan, the end of each hundredth of it) and agree
there, the framework's way where it has one (Lightning's ``reduce_boolean_decision``), else
with one ``torch.distributed`` all-reduce.
"""

from __future__ import annotations

import sys
from typing import Any

from joulecast.client import Job
from joulecast.step import segment_steps


def step_check_due(job: Job, global_step: int) -> bool:
    """Whether ``global_step`` ends a segment of the step plan of a job projected by steps."""
    budget, plan = job.budget, job.steps_planned
    if budget is None or budget.budget.action != "stop" or budget.unit != "step" or not plan:
        return False
    return global_step > 0 and (global_step % segment_steps(plan) == 0 or global_step == plan)


def any_rank(flag: bool) -> bool:
    """``flag`` or'ed over the ranks of an initialised ``torch.distributed`` group (every
    rank must call it at the same point); ``flag`` itself in a single process."""
    dist = sys.modules.get("torch.distributed")
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return flag
    import torch

    device: Any = "cpu"
    if dist.get_backend() == "nccl":
        device = torch.device("cuda", torch.cuda.current_device())
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)
