import gc

import pytest

from joulecast.estimator.gcpause import collector_paused


@pytest.fixture(autouse=True)
def _restore_gc():
    was = gc.isenabled()
    yield
    (gc.enable if was else gc.disable)()


def test_no_automatic_collection_within_and_the_young_generations_collected_after():
    gc.enable()
    collected = []
    gc.callbacks.append(lambda phase, info: phase == "stop" and collected.append(info))
    try:
        with collector_paused():
            assert not gc.isenabled()
            assert collected == []
        assert gc.isenabled()
        assert [c["generation"] for c in collected] == [1]
    finally:
        gc.callbacks.pop()


def test_the_collector_is_restored_when_the_cycle_raises():
    gc.enable()
    with pytest.raises(RuntimeError), collector_paused():
        raise RuntimeError("a failed cycle")
    assert gc.isenabled()


def test_off_or_already_disabled_leaves_the_collector_as_it_was():
    gc.enable()
    with collector_paused(enabled=False):
        assert gc.isenabled()
    gc.disable()
    with collector_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()
