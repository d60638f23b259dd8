"""One job over many nodes: sums, common checkpoints, outcomes, and no dependence on the
order in which series arrive."""

from __future__ import annotations

import itertools

from joulecast.estimator.jobs import JobBook
from joulecast.estimator.prometheus.client import Sample, Series
from joulecast.estimator.prometheus.queries import (
    TsdbView,
    group_history,
    group_state,
)


def node_series(instance: str, epochs: list[tuple[int, float, float]]) -> list[Series]:
    names = (
        "joulecast_job_epochs_completed",
        "joulecast_job_epoch_end_timestamp_seconds",
        "joulecast_job_epoch_end_energy_joules",
    )
    out = []
    for i, name in enumerate(names):
        pts = [(100.0 + k, float(e[i])) for k, e in enumerate(epochs)]
        out.append(Series({"__name__": name, "job_id": "j", "instance": instance}, tuple(pts)))
    return out


def node_state(instance: str, running: float, energy: float, failed=0.0, lost=0.0):
    labels = {"job_id": "j", "instance": instance}
    return [
        Sample({**labels, "__name__": "joulecast_job_running"}, running, 200.0),
        Sample({**labels, "__name__": "joulecast_job_failed"}, failed, 200.0),
        Sample({**labels, "__name__": "joulecast_job_lost"}, lost, 200.0),
        Sample({**labels, "__name__": "joulecast_job_energy_joules_total"}, energy, 200.0),
        Sample({**labels, "__name__": "joulecast_job_epochs_planned"}, 10, 200.0),
        Sample({**labels, "__name__": "joulecast_job_start_timestamp_seconds"}, 0.0, 200.0),
    ]


def combine(series, samples):
    view = TsdbView(group_history(series), group_state(samples))
    return JobBook().merge(view, now=200.0)


def test_a_job_on_two_nodes_is_summed_whatever_the_order_of_series():
    a = node_series("node-a:9866", [(0, 0.0, 0.0), (1, 10.0, 100.0), (2, 20.0, 200.0)])
    b = node_series("node-b:9866", [(0, 1.0, 0.0), (1, 10.5, 90.0)])  # lags one epoch
    states = node_state("node-a:9866", 0, 250.0) + node_state("node-b:9866", 1, 240.0)
    results = set()
    for order in itertools.permutations(a + b):
        for sorder in (states, states[::-1]):
            jobs = combine(list(order), list(sorder))
            st = jobs.states["j"]
            results.add(
                (
                    st.running,
                    st.energy_j,
                    st.nodes,
                    tuple(p for _, p in sorted(jobs.epochs["j"].items())),
                )
            )
    assert len(results) == 1
    running, energy, nodes, points = results.pop()
    assert running and energy == 490.0 and nodes == 2
    # epoch 2 is node A's only: the job is at the epoch every node has reported
    assert [(p.epoch, p.time_s, p.energy_j) for p in points] == [(0, 0.0, 0.0), (1, 10.5, 190.0)]


def test_outcomes_over_nodes():
    def outcome(*nodes):
        samples = []
        for i, (running, failed, lost) in enumerate(nodes):
            samples += node_state(f"n{i}", running, 1.0, failed, lost)
        st = combine([], samples).states["j"]
        return st.running, st.failed, st.lost

    assert outcome((1, 0, 0), (0, 0, 0)) == (True, False, False)  # one still runs
    assert outcome((0, 0, 0), (0, 0, 0)) == (False, False, False)  # finished everywhere
    assert outcome((0, 1, 0), (0, 0, 0)) == (False, True, False)  # failed if any failed
    assert outcome((0, 0, 1), (0, 0, 1)) == (False, False, True)  # lost everywhere
    assert outcome((0, 0, 0), (0, 0, 1)) == (False, False, False)  # finished, one lost


def test_a_node_whose_series_vanish_keeps_its_part_then_counts_as_gone():
    book = JobBook(node_timeout_s=60)
    both = node_state("a", 1, 100.0) + node_state("b", 1, 50.0)
    book.merge(TsdbView({}, group_state(both)), now=0.0)
    only_a = TsdbView({}, group_state(node_state("a", 1, 120.0)))
    st = book.merge(only_a, now=30.0).states["j"]
    assert st.energy_j == 170.0 and st.running
    only_a_done = TsdbView({}, group_state(node_state("a", 0, 130.0)))
    st = book.merge(only_a_done, now=90.0).states["j"]
    assert not st.running and st.energy_j == 180.0


def test_past_the_cap_new_jobs_are_left_out_running_ones_first_and_counted():
    samples = []
    for i in range(6):  # j0, j2, j4 run; j1, j3, j5 have finished
        for s in node_state("node-a:9866", 1.0 if i % 2 == 0 else 0.0, 10.0):
            samples.append(Sample({**s.labels, "job_id": f"j{i}"}, s.value, s.timestamp))
    book = JobBook(max_jobs=3)
    view = TsdbView({}, group_state(samples))
    assert set(book.merge(view, 200.0).states) == {"j0", "j2", "j4"}
    assert book.dropped == 3
    assert set(book.merge(view, 210.0).states) == {"j0", "j2", "j4"} and book.dropped == 3
