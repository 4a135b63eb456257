"""Dynamic batching: concurrent requests share one model call.

A network call on a batch of N inputs costs far less than N calls of one (docs/performance.md),
but every gRPC request carries one photo. Request threads put their items on a bounded queue and
wait; one worker thread takes up to ``max_batch_size`` items, waiting at most ``max_queue_delay``
after the oldest one arrived for the batch to fill, runs the model once and hands every request
its own results. A full queue is refused at once (answering late helps nobody) and items whose
caller's deadline has passed are dropped instead of computed.
"""

from __future__ import annotations

import collections
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, wait
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

log = logging.getLogger(__name__)


class Overloaded(RuntimeError):  # noqa: N818 - the name says what happened
    """The queue is full: the caller should back off or try another replica."""


class DeadlineExpired(TimeoutError):  # noqa: N818 - the name says what happened
    """The caller's deadline passed before its items went through the model."""


@dataclass(frozen=True)
class BatchSettings:
    """How big a batch may grow, how long its first item may wait for company, how much may queue."""

    max_batch_size: int = 16
    # Seconds the oldest item may wait for company. 0 is greedy batching: a batch is whatever queued
    # while the model was busy; on CPUs that gave the same throughput as waiting, without the added
    # latency at low load (docs in services/*/README.md). Accelerators may want a few ms.
    max_queue_delay: float = 0.0
    max_queue: int = 128

    def __post_init__(self) -> None:
        if self.max_batch_size < 1 or self.max_queue < 1 or self.max_queue_delay < 0:
            raise ValueError(f"invalid batch settings {self}")


class BatchObserver(Protocol):
    """Where the batcher reports what it does (Prometheus in the services)."""

    def batch_size(self, size: int) -> None: ...

    def queue_depth(self, depth: int) -> None: ...

    def expired(self, count: int) -> None: ...


class _Unobserved:
    def batch_size(self, size: int) -> None:
        pass

    def queue_depth(self, depth: int) -> None:
        pass

    def expired(self, count: int) -> None:
        pass


@dataclass
class _Pending(Generic[Item, Result]):
    item: Item
    deadline: float  # time.monotonic() seconds; inf without a deadline
    enqueued: float = field(default_factory=time.monotonic)
    future: Future[Result] = field(default_factory=Future)


class DynamicBatcher(Generic[Item, Result]):
    """Runs ``run(items) -> results`` (one result per item, same order) on batches of queued items."""

    def __init__(self, run: Callable[[list[Item]], Iterable[Result]], settings: BatchSettings,
                 observer: BatchObserver | None = None, name: str = "batcher") -> None:
        self.settings = settings
        self._run = run
        self._observer: BatchObserver = observer or _Unobserved()
        self._queue: collections.deque[_Pending[Item, Result]] = collections.deque()
        self._changed = threading.Condition()
        self._closed = False
        self._worker = threading.Thread(target=self._serve, name=name, daemon=True)
        self._worker.start()

    def submit(self, items: Sequence[Item], timeout: float | None = None) -> list[Result]:
        """Results for ``items``, in order, within ``timeout`` seconds.

        Raises Overloaded when they do not fit in the queue, DeadlineExpired when the time runs out,
        or whatever the model raised.
        """
        deadline = math.inf if timeout is None else time.monotonic() + timeout
        pending: list[_Pending[Item, Result]] = [_Pending(item, deadline) for item in items]
        with self._changed:
            if self._closed:
                raise Overloaded("the server is shutting down")
            if len(self._queue) + len(pending) > self.settings.max_queue:
                raise Overloaded(f"the queue is full ({len(self._queue)} of {self.settings.max_queue} items "
                                 f"waiting, {len(pending)} more asked); try again later")
            self._queue.extend(pending)
            self._observer.queue_depth(len(self._queue))
            self._changed.notify()
        _, late = wait([p.future for p in pending], timeout=timeout)
        if late:
            for p in pending:
                p.future.cancel()  # the worker skips cancelled items; running ones finish unread
            raise DeadlineExpired("the deadline passed while the request waited for the model")
        return [p.future.result() for p in pending]

    def close(self, timeout: float | None = None) -> None:
        """Run what is still queued, then stop the worker; call after the server stopped taking calls."""
        with self._changed:
            self._closed = True
            self._changed.notify()
        self._worker.join(timeout)

    def _serve(self) -> None:
        while (batch := self._next_batch()) is not None:
            live = self._start(batch)
            if live:
                self._execute(live)
            # Let go of the items before waiting for the next batch: they are decoded photos, counted
            # against the decode budget (faceauth.images) until freed, and a worker left idle would
            # otherwise keep its last batch's photos alive until the next batch comes.
            del batch, live

    def _next_batch(self) -> list[_Pending[Item, Result]] | None:
        """Wait for items, then for the batch to fill or the oldest item's delay to run out."""
        with self._changed:
            while not self._queue:
                if self._closed:
                    return None
                self._changed.wait()
            dispatch_at = self._queue[0].enqueued + self.settings.max_queue_delay
            while len(self._queue) < self.settings.max_batch_size and not self._closed:
                remaining = dispatch_at - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(remaining)
            size = min(len(self._queue), self.settings.max_batch_size)
            batch = [self._queue.popleft() for _ in range(size)]
            self._observer.queue_depth(len(self._queue))
        return batch

    def _start(self, batch: list[_Pending[Item, Result]]) -> list[_Pending[Item, Result]]:
        """Drop items whose caller gave up or whose deadline passed; mark the others running."""
        now = time.monotonic()
        live = []
        for pending in batch:
            if not pending.future.set_running_or_notify_cancel():
                continue
            if pending.deadline <= now:
                pending.future.set_exception(DeadlineExpired("the deadline passed before the model ran"))
                continue
            live.append(pending)
        if len(live) < len(batch):
            self._observer.expired(len(batch) - len(live))
        return live

    def _execute(self, live: list[_Pending[Item, Result]]) -> None:
        self._observer.batch_size(len(live))
        try:
            results = list(self._run([pending.item for pending in live]))
            if len(results) != len(live):
                raise RuntimeError(f"the model returned {len(results)} results for {len(live)} items")
        except Exception as exc:
            log.exception("model call failed for a batch of %d", len(live))
            for pending in live:
                pending.future.set_exception(exc)
            return
        for pending, result in zip(live, results, strict=True):
            pending.future.set_result(result)
