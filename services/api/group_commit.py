"""Group commit for the server's submissions: concurrent ``POST /api/jobs`` share one SQL transaction and
one Redis transaction.

A request thread hands its validated spec to ``GroupCommit.submit`` and waits; one writer thread takes
every spec waiting at that moment (up to ``MAX_BATCH``) and stores them with ``JobService.submit_many``
(the same writes as ``kiln submit``), then wakes each request with its own job view or error. A request
is answered only once its row is committed and its job queued in Redis. On one core, a batch's single
commit and single round trip cost far less than one of each per job, and while a batch is written the
next one gathers, so the batch size follows the load by itself (one job alone is written at once).
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
        self._max_batch = max_batch
        self._waiting: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start = threading.Lock()
        self.batches = 0
        """Batches written so far (each one SQL transaction and one Redis transaction)."""
        self.taken = 0
        """Submissions the writer has taken so far."""

    def submit(self, spec) -> dict:
        """Store and queue the validated ``spec`` with whatever else is waiting; its job view once it is
        stored (or the error that refused it). Blocks the calling thread until then."""
        done: Future = Future()
        self.enqueue(spec, done.set_result, done.set_exception)
        return done.result()

    def enqueue(self, spec, on_stored, on_refused) -> None:
        """Store and queue the validated ``spec`` with whatever else is waiting, without waiting for it:
        the writer thread calls ``on_stored(view)`` once it is stored, or ``on_refused(error)``."""
        self._ensure_writer()
        self._waiting.put((spec, on_stored, on_refused))

    def _ensure_writer(self) -> None:
        if self._thread is None:
            with self._start:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._write_forever, name="kiln-group-commit",
                                                    daemon=True)
                    self._thread.start()

    def _write_forever(self) -> None:
        service = None
        while True:
            batch = [self._waiting.get()]
            while len(batch) < self._max_batch:
                try:
                    batch.append(self._waiting.get_nowait())
                except queue.Empty:
                    break
            self.batches += 1
            self.taken += len(batch)
            try:
                if service is None:
                    service = self._service_factory()
                outcomes = service.submit_many([spec for spec, _, _ in batch])
            except BaseException as e:  # noqa: BLE001 - the whole batch failed; each request answers it
                outcomes = [e] * len(batch)
            for (_, on_stored, on_refused), outcome in zip(batch, outcomes):
                try:
                    (on_refused if isinstance(outcome, BaseException) else on_stored)(outcome)
                except Exception:  # noqa: BLE001 - a caller gone (its loop closed): the others still hear
                    pass
