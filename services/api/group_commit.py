"""Group commit for the server's submissions: concurrent ``POST /api/jobs`` share one SQL transaction and
one Redis transaction.

A request thread hands its checked spec to ``GroupCommit`` and goes on. Whichever thread finds no batch
being written becomes the writer: it takes every spec waiting at that moment (up to ``MAX_BATCH``, its
own among them), stores them with ``JobService.submit_many`` (the same writes as ``kiln submit``) and
tells each request its own job view or error; then it looks again, and writes again if specs came
meanwhile. A thread that finds a batch being written leaves its spec for that writer's next look (no
thread of its own is woken for it: one thread switch less per request than a dedicated writer thread).
A request is answered only once its row is committed and its job queued in Redis. On one core, a
batch's single commit and single round trip cost far less than one of each per job, and while a batch
is written the next one gathers, so the batch size follows the load by itself (one job alone is
written at once).
"""
from __future__ import annotations

import queue
import threading
from concurrent.futures import Future

MAX_BATCH = 64
"""Most submissions stored by one transaction."""


class GroupCommit:
    def __init__(self, service_factory, *, max_batch: int = MAX_BATCH):
        """``service_factory()``: a JobService (its user is not used: each spec names its own)."""
        self._service_factory = service_factory
        self._service = None
        self._max_batch = max_batch
        self._waiting: queue.SimpleQueue = queue.SimpleQueue()
        self._writing = threading.Lock()
        self.batches = 0
        """Batches written so far (each one SQL transaction and one Redis transaction)."""
        self.taken = 0
        """Submissions taken into a batch so far."""

    def submit(self, spec) -> dict:
        """Store and queue the validated ``spec`` with whatever else is waiting; its job view once it is
        stored (or the error that refused it). Blocks the calling thread until then."""
        done: Future = Future()
        self.enqueue(spec, done.set_result, done.set_exception)
        return done.result()

    def enqueue(self, spec, on_stored, on_refused) -> None:
        """Store and queue the validated ``spec`` with whatever else is waiting: ``on_stored(view)`` is
        called once it is stored, or ``on_refused(error)``, from the thread that wrote its batch (this
        one, or another writing at the moment; this call returns when this thread has no batch left
        to write, which may be before this spec is stored)."""
        self._waiting.put((spec, on_stored, on_refused))
        # A writer, once it releases the lock, looks at the queue again: a spec put while it held the
        # lock is written by it (or by a thread that takes the lock after it); never left behind.
        while not self._waiting.empty() and self._writing.acquire(blocking=False):
            try:
                self._write(self._take())
            finally:
                self._writing.release()

    def _take(self) -> list:
        batch = []
        while len(batch) < self._max_batch:
            try:
                batch.append(self._waiting.get_nowait())
            except queue.Empty:
                break
        return batch

    def _write(self, batch: list) -> None:
        if not batch:
            return
        self.batches += 1
        self.taken += len(batch)
        try:
            if self._service is None:
                self._service = self._service_factory()
            outcomes = self._service.submit_many([spec for spec, _, _ in batch])
        except BaseException as e:  # noqa: BLE001 - the whole batch failed; each request answers it
            outcomes = [e] * len(batch)
        for (_, on_stored, on_refused), outcome in zip(batch, outcomes):
            try:
                (on_refused if isinstance(outcome, BaseException) else on_stored)(outcome)
            except Exception:  # noqa: BLE001 - a caller gone (its loop closed): the others still hear
                pass
