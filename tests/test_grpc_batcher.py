"""The dynamic batcher on its own, with a stand-in model whose timing the tests control."""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest

from faceauth.grpc.batcher import BatchSettings, DeadlineExpired, DynamicBatcher, Overloaded


class Recorder:
    """Counts what a batcher reports, as the Prometheus observer would."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.expired_items = 0

    def batch_size(self, size: int) -> None:
        self.sizes.append(size)

    def queue_depth(self, depth: int) -> None:
        pass

    def expired(self, count: int) -> None:
        self.expired_items += count


class GatedModel:
    """Multiplies by ten; each call blocks until the test opens the gate, so the queue can be filled."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.running = threading.Event()
        self.seen: list[int] = []

    def __call__(self, items: list[int]) -> list[int]:
        self.running.set()
        self.gate.wait(10)
        self.seen.extend(items)
        return [item * 10 for item in items]


@pytest.fixture
def model() -> Iterator[GatedModel]:
    gated = GatedModel()
    yield gated
    gated.gate.set()


def _start_blocked(batcher: DynamicBatcher[int, int], model: GatedModel, pool: ThreadPoolExecutor) -> None:
    """Submit item 1 and wait until the model is busy with it, so later items stay queued."""
    pool.submit(batcher.submit, [1])
    assert model.running.wait(5)


def test_concurrent_submissions_share_batches_and_get_their_own_results() -> None:
    recorder = Recorder()

    def slow_times_ten(items: list[int]) -> list[int]:
        time.sleep(0.02)
        return [item * 10 for item in items]

    batcher = DynamicBatcher(slow_times_ten, BatchSettings(max_batch_size=8, max_queue_delay=0.01, max_queue=64),
                             recorder)
    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(lambda n: batcher.submit([n, n + 1000]), range(32)))
    batcher.close()
    assert results == [[n * 10, (n + 1000) * 10] for n in range(32)]
    assert max(recorder.sizes) > 1 and max(recorder.sizes) <= 8
    assert sum(recorder.sizes) == 64


def test_a_full_queue_is_refused_at_once(model: GatedModel) -> None:
    batcher = DynamicBatcher(model, BatchSettings(max_batch_size=1, max_queue_delay=0, max_queue=2))
    with ThreadPoolExecutor(2) as pool:
        _start_blocked(batcher, model, pool)
        queued = pool.submit(batcher.submit, [2, 3])
        while not queued.running():
            time.sleep(0.001)
        time.sleep(0.05)
        started = time.monotonic()
        with pytest.raises(Overloaded, match="queue is full"):
            batcher.submit([4])
        assert time.monotonic() - started < 0.5
        model.gate.set()
        assert queued.result(5) == [20, 30]
    batcher.close()
    assert model.seen == [1, 2, 3]


def test_items_whose_deadline_passed_are_never_computed(model: GatedModel) -> None:
    recorder = Recorder()
    batcher = DynamicBatcher(model, BatchSettings(max_batch_size=4, max_queue_delay=0, max_queue=8), recorder)
    with ThreadPoolExecutor(1) as pool:
        _start_blocked(batcher, model, pool)
        with pytest.raises(DeadlineExpired):
            batcher.submit([2], timeout=0.05)
        model.gate.set()
    assert batcher.submit([5], timeout=5) == [50]
    batcher.close()
    assert model.seen == [1, 5]
    assert recorder.expired_items == 1


def test_a_model_error_reaches_every_caller_of_its_batch_and_the_batcher_goes_on() -> None:
    def fragile(items: list[int]) -> list[int]:
        if 13 in items:
            raise ArithmeticError("unlucky")
        return items

    batcher = DynamicBatcher(fragile, BatchSettings(max_batch_size=4, max_queue_delay=0, max_queue=8))
    with pytest.raises(ArithmeticError, match="unlucky"):
        batcher.submit([12, 13])
    assert batcher.submit([14]) == [14]
    batcher.close()


def test_close_finishes_what_is_queued(model: GatedModel) -> None:
    batcher = DynamicBatcher(model, BatchSettings(max_batch_size=1, max_queue_delay=0, max_queue=8))
    with ThreadPoolExecutor(3) as pool:
        _start_blocked(batcher, model, pool)
        queued = pool.submit(batcher.submit, [2])
        time.sleep(0.05)
        closing = pool.submit(batcher.close)
        model.gate.set()
        closing.result(5)
        assert queued.result(5) == [20]
    with pytest.raises(Overloaded, match="shutting down"):
        batcher.submit([3])


class Photo:
    """An item that can be watched for being freed, as a decoded photo is by the decode budget."""


def test_an_idle_worker_keeps_no_item_of_its_last_batch_alive() -> None:
    def sizes(items: Sequence[Photo]) -> list[int]:
        return [0 for _ in items]

    batcher = DynamicBatcher(sizes, BatchSettings(max_batch_size=4, max_queue_delay=0, max_queue=8))
    photos = [Photo(), Photo()]
    watched = [weakref.ref(photo) for photo in photos]
    assert batcher.submit(photos) == [0, 0]
    del photos
    give_up = time.monotonic() + 5
    while any(ref() is not None for ref in watched):
        assert time.monotonic() < give_up, "the worker still holds its last batch"
        time.sleep(0.01)
    batcher.close()
