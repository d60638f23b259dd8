"""One job over many nodes: each node's exporter reports its part, the estimator sums them.

A job's identity is its ``job_id`` across the fleet. Every node that runs part of it has
its own exporter, which measures the job's GPUs on that node and takes that node's epoch
and step markers (posted by the node's first local rank, with the run's global epoch and
step). :class:`JobBook` keeps what each node (``instance``) last reported, across cycles,
and combines it into one :class:`JobState` and one list of checkpoints per job:

* energy, TDP, GPU memory and GPUs are sums over the nodes; the plan is the largest any
  node reported, progress the smallest (what every node has done);
* a checkpoint of the job at epoch (or step) ``k`` exists once *every* node of the job has
  reported ``k``: its energy is the sum of the nodes' energies at ``k``, its time the
  latest of their times (the slowest node ends the epoch). A node whose markers lag holds
  the job's projection at the last epoch all nodes reported; it is never projected from
  part of the job;
* the job runs while any node runs it; it failed if any node failed; otherwise, once every
  node ended, it finished if any node finished, else it was lost. A node whose series
  vanished (its exporter down) keeps its last report; if it was running it counts as
  running for ``node_timeout_s``, then as gone.

Nothing depends on the order in which Prometheus returns series.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from joulecast.estimator.prometheus.queries import (
    EpochPoint,
    JobState,
    NodeHistory,
    NodeUpdates,
    TsdbView,
)


@dataclass
class _Node:
    state: JobState | None = None
    epochs: dict[int, EpochPoint] = field(default_factory=dict)
    steps: dict[int, EpochPoint] = field(default_factory=dict)
    seen_s: float = 0.0


@dataclass(frozen=True)
class CombinedJobs:
    """The cycle's jobs, one entry per job whatever the number of nodes. A job's
    checkpoints are keyed by epoch (or step); a one-node job's are the book's own, to be
    read, not changed."""

    states: dict[str, JobState]
    epochs: dict[str, dict[int, EpochPoint]]
    steps: dict[str, dict[int, EpochPoint]]


def _common(nodes: list[dict[int, EpochPoint]]) -> dict[int, EpochPoint]:
    """The checkpoints every node reported, summed (epoch 0: the earliest start)."""
    if len(nodes) == 1:
        return nodes[0]
    if not nodes or any(not n for n in nodes):
        return {}
    keys = set(nodes[0]).intersection(*nodes[1:])
    out = {}
    for k in sorted(keys):
        pts = [n[k] for n in nodes]
        when = min(p.time_s for p in pts) if k == 0 else max(p.time_s for p in pts)
        out[k] = EpochPoint(k, when, sum(p.energy_j for p in pts))
    return out


def _outcome(states: list[JobState]) -> tuple[bool, bool, bool]:
    """(running, failed, lost) of the whole job."""
    if any(s.running for s in states):
        return True, False, False
    if any(s.failed for s in states):
        return False, True, False
    finished = any(not s.failed and not s.lost for s in states)
    return False, False, not finished


def combine_states(job_id: str, states: list[JobState]) -> JobState:
    if len(states) == 1:
        one = states[0].copy()  # the book's node states stay its own
        one.nodes = 1
        return one
    running, failed, lost = _outcome(states)
    gpus = sum(s.gpus for s in states)
    util = [(s.gpu_utilization, max(s.gpus, 1)) for s in states if s.gpu_utilization is not None]
    starts = [s.start_s for s in states if s.start_s is not None]
    ends = [s.end_s for s in states if s.end_s is not None]
    steps_planned = [s.steps_planned for s in states if s.steps_planned]
    budgets = [s.budget_j for s in states if s.budget_j is not None]
    features: dict[str, str] = {}
    for s in states:
        for k, v in s.features.items():
            features.setdefault(k, v)
    return JobState(
        job_id=job_id,
        epochs_planned=max(s.epochs_planned for s in states),
        epochs_completed=min(s.epochs_completed for s in states),
        running=running,
        failed=failed,
        lost=lost,
        energy_j=sum(s.energy_j for s in states),
        start_s=min(starts) if starts else None,
        end_s=max(ends) if ends and not running else None,
        tdp_w=sum(s.tdp_w for s in states),
        gpu_memory_bytes=sum(s.gpu_memory_bytes for s in states),
        gpu_utilization=sum(u * w for u, w in util) / sum(w for _, w in util) if util else None,
        gpus=gpus,
        budget_j=max(budgets) if budgets else None,
        features=features,
        steps_planned=max(steps_planned) if steps_planned else None,
        steps_completed=min(s.steps_completed for s in states),
        nodes=len(states),
    )


def _not_running(by_node: dict[str, JobState]) -> bool:
    return not any(st.running for st in by_node.values())


def _not_running_now(by_node: dict[str, dict[str, Any]]) -> bool:
    return not any(fields.get("running") for fields in by_node.values())


class JobBook:
    """The jobs known, at most ``max_jobs``: past it, jobs not yet known are left out (and
    counted in ``dropped``) until finished jobs expire, so memory and ``/metrics`` stay
    bounded whatever Prometheus holds."""

    def __init__(
        self, node_timeout_s: float = 300.0, ttl_s: float = 3600.0, max_jobs: int = 10_000
    ) -> None:
        self.node_timeout_s = node_timeout_s
        self.ttl_s = ttl_s
        self.max_jobs = max_jobs
        self.dropped = 0  # jobs of the last cycle left out past max_jobs
        self._jobs: dict[str, dict[str, _Node]] = {}

    def _admit(self, job_id: str, left_out: set[str]) -> bool:
        if job_id in self._jobs:
            return True
        if len(self._jobs) >= self.max_jobs:
            left_out.add(job_id)
            return False
        self._jobs[job_id] = {}
        return True

    def merge(self, view: TsdbView, now: float) -> CombinedJobs:
        """Add one cycle's reads; return every job combined over its nodes."""
        left_out: set[str] = set()
        # running jobs are admitted first: past the cap, finished ones give way
        for job_id, by_node in sorted(view.states.items(), key=lambda kv: _not_running(kv[1])):
            if not self._admit(job_id, left_out):
                continue
            nodes = self._jobs[job_id]
            for instance, st in by_node.items():
                node = nodes.setdefault(instance, _Node())
                node.state, node.seen_s = st, now
        self._apply(view.updates, now, left_out)
        for kind, history in (("epochs", view.history), ("steps", view.steps)):
            for job_id, by_node in history.items():
                if not self._admit(job_id, left_out):
                    continue
                nodes = self._jobs[job_id]
                for instance, points in by_node.items():
                    node = nodes.setdefault(instance, _Node(seen_s=now))
                    target: dict[int, EpochPoint] = getattr(node, kind)
                    for p in points:
                        target[p.epoch] = p
        self.dropped = len(left_out)
        self._forget(now)
        return self.combined(now)

    def _apply(self, updates: NodeUpdates, now: float, left_out: set[str]) -> None:
        """An incremental read: each node's state with what changed of it. A node is seen
        when its live series are (``running`` is one)."""
        for job_id, by_node in sorted(updates.items(), key=lambda kv: _not_running_now(kv[1])):
            if not self._admit(job_id, left_out):
                continue
            nodes = self._jobs[job_id]
            for instance, fields in by_node.items():
                node = nodes.setdefault(instance, _Node())
                if node.state is None:
                    node.state = JobState(job_id, **fields)
                else:  # the book's own copy (combine_states hands out others)
                    vars(node.state).update(fields)
                if "running" in fields:
                    node.seen_s = now

    def needs_state(self, live: NodeUpdates) -> set[str]:
        """The jobs of an incremental read whose settled series are to be read: those, or
        those nodes, not known yet (or without a whole state), and those whose ``running``
        changed."""
        out = set()
        for job_id, by_node in live.items():
            nodes = self._jobs.get(job_id)
            if nodes is None:
                out.add(job_id)
                continue
            for instance, fields in by_node.items():
                node = nodes.get(instance)
                if (
                    node is None
                    or node.state is None
                    or node.state.start_s is None
                    or node.state.running != fields.get("running", node.state.running)
                ):
                    out.add(job_id)
                    break
        return out

    def needs_history(self, latest: NodeHistory) -> set[str]:
        """The jobs of an incremental read whose raw epoch checkpoints are to be read: those
        with a node whose latest epoch is more than one past the last the book holds (or,
        on a node it holds none of, past the first)."""
        out = set()
        for job_id, by_node in latest.items():
            nodes = self._jobs.get(job_id, {})
            for instance, points in by_node.items():
                node = nodes.get(instance)
                known = max(node.epochs, default=0) if node is not None else 0
                if points and points[-1].epoch > known + 1:
                    out.add(job_id)
                    break
        return out

    def _node_state(self, node: _Node, now: float) -> JobState | None:
        st = node.state
        if st is not None and st.running and now - node.seen_s > self.node_timeout_s:
            return replace(st, running=False, lost=True)  # its exporter went away
        return st

    def combined(self, now: float) -> CombinedJobs:
        states: dict[str, JobState] = {}
        epochs: dict[str, dict[int, EpochPoint]] = {}
        steps: dict[str, dict[int, EpochPoint]] = {}
        for job_id, nodes in self._jobs.items():
            known = [(n, self._node_state(n, now)) for n in nodes.values()]
            with_state = [(n, st) for n, st in known if st is not None]
            if not with_state:
                continue
            states[job_id] = combine_states(job_id, [st for _, st in with_state])
            epochs[job_id] = _common([n.epochs for n, _ in with_state])
            if any(n.steps for n, _ in with_state):
                steps[job_id] = _common([n.steps for n, _ in with_state])
        return CombinedJobs(states, epochs, steps)

    def _forget(self, now: float) -> None:
        for job_id in [
            j
            for j, nodes in self._jobs.items()
            if all(now - n.seen_s > self.ttl_s for n in nodes.values())
        ]:
            del self._jobs[job_id]
