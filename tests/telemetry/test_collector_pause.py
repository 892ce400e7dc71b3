"""The ingest's pause of the cyclic garbage collector, shared by the batches a process answers
at once (telemetry/api/calls.py, CollectorPause)."""

from __future__ import annotations

import gc
import threading
import weakref
from collections.abc import Iterator

import pytest

from telemetry.api.calls import CollectorPause


@pytest.fixture
def collector_on() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.enable()
    yield
    if was_enabled:
        gc.enable()
    else:
        gc.disable()


def test_pause__two_batches_overlap__collector_off_until_the_last_one_ends(collector_on: None) -> None:
    pause = CollectorPause()
    inside, first_done, states = threading.Event(), threading.Event(), []

    def first() -> None:
        with pause():
            inside.set()
        first_done.set()

    with pause():
        thread = threading.Thread(target=first)
        thread.start()
        assert inside.wait(5)
        assert first_done.wait(5)
        states.append(gc.isenabled())  # the first batch has ended, this one has not
    thread.join()

    assert states == [False]
    assert gc.isenabled()


def test_pause__collector_off_before__left_off(collector_on: None) -> None:
    pause = CollectorPause()
    gc.disable()

    with pause():
        pass

    assert not gc.isenabled()


def test_pause__batch_fails__collector_back_on(collector_on: None) -> None:
    pause = CollectorPause()

    def failing_batch() -> None:
        with pause():
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        failing_batch()

    assert gc.isenabled()


class _Cycle:
    def __init__(self) -> None:
        self.me = self


@pytest.mark.parametrize(
    ("collect_every", "collected"), [(0.0, True), (3600.0, False)], ids=["interval passed", "within it"]
)
def test_pause__batches_overlap_without_a_break__a_batch_ending_after_the_interval_collects(
    collector_on: None, collect_every: float, collected: bool
) -> None:
    pause = CollectorPause(collect_every=collect_every)
    garbage = _Cycle()
    gone = weakref.ref(garbage)

    with pause():
        with pause():
            del garbage
        # The inner batch ended while this one runs: the collector stays off either way.
        assert not gc.isenabled()
        assert (gone() is None) == collected
