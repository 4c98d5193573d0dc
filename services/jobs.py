"""The job service: submit, list, inspect, cancel and follow jobs (the Python API behind the CLI).

A submitted job is written to SQL (the durable record) and to Redis (its live hash and its place in
the priority queue) as one unit: the SQL transaction commits only after the Redis writes succeeded.
"""
from __future__ import annotations

import json
import os
import secrets
import threading
import time
from collections import OrderedDict
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Iterator

from shared import keys
from shared.errors import InvalidParameter, KilnError
from shared.states import JobState

if TYPE_CHECKING:  # pydantic is imported only by the commands that build specs; redis by those that use it
    from services.backends import Backends
    from shared.specs import JobSpec


def new_job_id() -> str:
    return "job-" + secrets.token_hex(4)


def _iso(ts: float | datetime | None) -> str | None:
    if ts is None:
        return None
    if isinstance(ts, datetime):
        return (ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)).isoformat()
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat()


_SQLITE_WRITES = threading.Lock()
"""SQLite has one writer: this process's submissions take turns here (threads that meet SQLite's own lock
back off in sleeps of up to 100 ms; queueing here has no such gaps)."""


def _sql_writes(db):
    from contextlib import nullcontext  # noqa: PLC0415

    return _SQLITE_WRITES if db.engine.dialect.name == "sqlite" else nullcontext()


NODES_TTL_S = 1.0
"""How long a service reuses the cluster's node list (the resource check; the dispatcher checks again
before it places a job)."""
LIST_BATCH = 1000
"""Jobs whose live status one Redis pipeline of ``JobService.list`` reads."""
LIVE_FIELDS = ("throughput", "throughput_unit", "loss", "eta_s", "epoch", "epochs", "message", "reason")
"""Fields of the live hash that the job view shows as they are (numbers as numbers, text as text)."""


class JobService:
    def __init__(self, backends: Backends):
        self.b = backends
        self._nodes: tuple[float, list[dict] | None] = (float("-inf"), None)

    # -- submit ---------------------------------------------------------------------------------
    def validate(self, data: dict | JobSpec) -> JobSpec:
        """Build and check a spec (files, numbers, vocabulary, resources) without storing anything."""
        from shared.specs import JobSpec  # noqa: PLC0415

        spec = data if isinstance(data, JobSpec) else validate_offline(data, user=self.b.settings.user)
        self._check_resources(spec)
        return spec

    def submit(self, data: dict | JobSpec) -> dict:
        """Validate, then store and enqueue a job. Returns the job view (see ``get``); raises what
        refused it. One job of ``submit_many``: the same checks, writes and answer."""
        out = self.submit_many([data])[0]
        if isinstance(out, BaseException):
            raise out
        return out

    def submit_many(self, items: list[dict | JobSpec]) -> list[dict | Exception]:
        """Validate, store and enqueue several jobs at once (group commit: what a server's concurrent
        submissions share). Returns, in order, each job's view or the error that refused that job alone
        (its spec, its resources, a taken id, a Redis command that failed for it); an error that stops
        every job (Redis or SQL away) is raised, with nothing of any of them left stored.

        The SQL rows first, in one committed transaction; then one Redis transaction (MULTI/EXEC) writes
        each job's live hash, first log line and queue entry, one dispatcher wake-up for them all, and
        then each job's queue position (read once the whole batch is queued); the view's live part is
        the new hash as written. A job whose Redis part failed has its row
        deleted again and what Redis did keep of it removed: each job is stored in both or in neither.
        So the SQL write transaction is never held open across a Redis round trip (on SQLite, one
        writer, it is held for one commit per batch), the dispatcher never sees a queued id before its
        row, and a process that dies between the two leaves QUEUED rows that the dispatcher puts back
        on the queue (``_restore_redis``). No job is answered before both halves are written."""
        from services.queue import wake  # noqa: PLC0415
        from shared.status import decode_hash  # noqa: PLC0415

        results: list = [None] * len(items)
        nodes = self._cluster_nodes()  # one read for the whole batch
        specs: dict[int, JobSpec] = {}
        for i, data in enumerate(items):
            try:
                specs[i] = self._validate(data, nodes)
            except Exception as e:  # noqa: BLE001 - this job's own refusal, answered to it alone
                results[i] = e
        if not specs:
            return results
        client = self.b.redis  # reachable before anything is written (Unavailable otherwise)
        db = self.b.db
        # one submit time per job, a microsecond apart in the batch's order: first come, first queued
        now = time.time()
        times = {i: now + n * 1e-6 for n, i in enumerate(specs)}
        with _sql_writes(db), db.session() as s:
            created = db.jobs.create_many(
                [{"job_id": new_job_id(), "name": spec.name, "kind": spec.kind, "user": spec.user,
                  "spec_json": spec.model_dump_json(), "priority": spec.priority, "max_retries": spec.max_retries,
                  "submitted_at": datetime.fromtimestamp(times[i], timezone.utc)} for i, spec in specs.items()],
                session=s)
        recs: dict[int, object] = {}
        for i, rec in zip(specs, created):
            if isinstance(rec, Exception):  # e.g. a taken id: that job alone is refused
                results[i] = rec
            else:
                recs[i] = rec
        if not recs:
            return results
        try:
            pipe = client.pipeline(transaction=True)
            spans, written = {}, {}
            for i, rec in recs.items():
                spec, first = specs[i], len(pipe.command_stack)
                written[i] = self.b.status.create(
                    rec.id, {"name": spec.name, "kind": spec.kind, "user": spec.user, "attempt": 1,
                             "priority": spec.priority, "submitted_at": times[i], "epochs": spec.params.epochs},
                    pipeline=pipe)
                self.b.status.log(rec.id, f"submitted by {spec.user}: {spec.kind} {spec.name}", pipeline=pipe)
                self.b.queue.push(rec.id, priority=spec.priority, submitted_at=times[i], pipeline=pipe, wake_up=False)
                spans[i] = (first, len(pipe.command_stack))
            wake(pipe)
            ranks = len(pipe.command_stack)
            for rec in recs.values():  # each place once the whole batch is queued
                pipe.zrank(keys.QUEUE, rec.id)
            answers = pipe.execute(raise_on_error=False)
        except BaseException:
            self._take_back([rec.id for rec in recs.values()])
            raise
        failed = {i: next(a for a in answers[lo:hi] if isinstance(a, Exception))
                  for i, (lo, hi) in spans.items() if any(isinstance(a, Exception) for a in answers[lo:hi])}
        rank_of = {i: r if isinstance(r, int) else None for i, r in zip(recs, answers[ranks:])}
        if failed:
            self._take_back([recs[i].id for i in failed])
        gone = sorted(rank_of[i] for i in failed if rank_of[i] is not None)  # taken off the queue again
        for i, rec in recs.items():
            if i in failed:
                results[i] = failed[i]
                continue
            rank = rank_of[i]
            # the live part as ``get`` reads it back: the new hash, exactly as this transaction wrote it
            view = job_view(rec, decode_hash({k.encode(): v.encode() for k, v in written[i].items()}))
            view["queue_position"] = None if rank is None else rank + 1 - sum(1 for g in gone if g < rank)
            results[i] = view
        return results

    def _take_back(self, job_ids: list[str]) -> None:
        """Remove submitted jobs whose Redis half failed: their rows, and whatever Redis kept of them."""
        db = self.b.db
        with _sql_writes(db):
            db.jobs.remove_unstarted_many(job_ids)
        try:  # whatever of the transaction Redis did run (a command that failed does not stop the others)
            undo = self.b.redis.pipeline(transaction=True)
            for job_id in job_ids:
                self.b.queue.remove(job_id, pipeline=undo)
                self.b.status.delete(job_id, pipeline=undo)
            undo.execute()
        except Exception:  # noqa: BLE001 - Redis is away: a queued id without its row is dropped by the dispatcher
            pass

    def _validate(self, data: dict | JobSpec, nodes: list[dict] | None) -> JobSpec:
        from shared.specs import JobSpec  # noqa: PLC0415

        spec = data if isinstance(data, JobSpec) else validate_offline(data, user=self.b.settings.user)
        problem = unsatisfiable(spec, nodes) if nodes else None
        if problem:
            raise InvalidParameter(problem)
        return spec

    def _cluster_nodes(self) -> list[dict] | None:
        """The dispatcher's node list (None before it wrote one, or without Redis), read at most once in
        NODES_TTL_S by this service (a server's group commit keeps one service for all its batches)."""
        at, nodes = self._nodes
        if time.monotonic() - at < NODES_TTL_S:
            return nodes
        client = self.b.redis_or_none()
        raw = client.get(keys.CLUSTER_NODES) if client is not None else None
        nodes = json.loads(raw) if raw else None
        self._nodes = (time.monotonic(), nodes)
        return nodes

    def _check_resources(self, spec: JobSpec) -> None:
        """Refuse a job that no node of the cluster could ever hold (uses the dispatcher's node list)."""
        self._validate(spec, self._cluster_nodes())

    # -- read -----------------------------------------------------------------------------------
    def get(self, job_id: str) -> dict:
        """One job as a plain dict: the SQL record merged with its live Redis status."""
        rec = self.b.db.jobs.get(job_id)
        client = self.b.redis_or_none()
        live = self.b.status.get(job_id) if client is not None else None
        return self._with_position(job_view(rec, live), client)

    def _with_position(self, view: dict, client) -> dict:
        """A queued job's ``queue_position`` (1 = next to start), from the Redis queue."""
        if view["state"] == JobState.QUEUED.value and client is not None:
            pos = self.b.queue.position(view["id"])
            view["queue_position"] = None if pos is None else pos + 1
        return view

    def list(self, state: str | None = None, limit: int | None = None) -> list[dict]:
        """Every job from SQL (newest first), with live progress where Redis has it."""
        if state is not None:
            try:
                state = JobState(state.upper()).value
            except ValueError:
                raise InvalidParameter(f"--state: unknown state {state!r} (one of {', '.join(s.value for s in JobState)})") from None
        records = self.b.db.jobs.list(state=state, limit=limit)
        client = self.b.redis_or_none()
        if client is None:
            return [job_view(rec, None) for rec in records]
        from shared.status import decode_hash  # noqa: PLC0415

        # one round trip for every job's live hash and every queued job's position (not one per job)
        queued = JobState.QUEUED.value
        views = []
        for start in range(0, len(records), LIST_BATCH):
            batch = records[start:start + LIST_BATCH]
            pipe = client.pipeline(transaction=False)
            for rec in batch:
                pipe.hgetall(keys.job(rec.id))
            waiting = [rec.id for rec in batch if rec.state.value == queued]
            for job_id in waiting:
                pipe.zrank(keys.QUEUE, job_id)
            answers = pipe.execute()
            ranks = dict(zip(waiting, answers[len(batch):]))
            for rec, raw in zip(batch, answers):
                view = job_view(rec, decode_hash(raw))
                if view["state"] == queued:
                    rank = ranks[rec.id]
                    view["queue_position"] = None if rank is None else int(rank) + 1
                views.append(view)
        return views

    # -- act ------------------------------------------------------------------------------------
    def cancel(self, job_id: str) -> dict:
        """Cancel a job in any non-terminal state. Returns the job view; a terminal job is left as it is."""
        db = self.b.db
        rec = db.jobs.get(job_id)
        if JobState(rec.state).is_terminal():
            return self.get(job_id)
        with db.session() as s:
            db.jobs.transition(job_id, JobState.CANCELLED, error="cancelled by user", session=s)
            s.flush()
            pipe = self.b.redis.pipeline(transaction=True)
            self.b.queue.remove(job_id, pipeline=pipe)
            pipe.sadd(keys.CANCEL_REQUESTS, job_id)
            pipe.execute()
        self.b.status.set_state(job_id, JobState.CANCELLED, error="cancelled by user")
        self.b.status.log(job_id, "cancelled by user")
        return self.get(job_id)

    def retry(self, job_id: str) -> dict:
        """Submit a finished (FAILED or CANCELLED) job's spec again as a new job; returns the new job's view.

        The spec is validated again (its files may have changed). A job that is still live, or that
        succeeded, is refused: its model is already registered, or it will be.
        """
        view = self.submit(self.retry_spec(job_id))
        self.b.status.log(view["id"], f"retry of {job_id}")
        return view

    def retry_spec(self, job_id: str) -> dict:
        """The spec ``retry`` would submit again (reads SQL only): NotFound for an unknown id,
        InvalidParameter for a job that is not FAILED or CANCELLED."""
        from shared.specs import JobSpec  # noqa: PLC0415

        rec = self.b.db.jobs.get(job_id)
        state = JobState(rec.state)
        if state not in (JobState.FAILED, JobState.CANCELLED):
            raise InvalidParameter(f"{job_id} is {state.value}; only FAILED or CANCELLED jobs can be retried")
        return JobSpec.model_validate_json(rec.spec_json).model_dump(exclude={"user"})

    def logs(self, job_id: str, *, follow: bool = False, poll_ms: int = 500) -> Iterator[dict]:
        """Yield log entries ({"t", "level", "msg"}); with ``follow`` keep going until the job ends."""
        self.b.db.jobs.get(job_id)  # NotFound for an unknown id
        after = "0-0"
        while True:
            entries = self.b.status.read_logs(job_id, after, block_ms=poll_ms if follow else None)
            for eid, entry in entries:
                after = eid
                yield entry
            if not follow:
                return
            if not entries and self._terminal(job_id):
                for eid, entry in self.b.status.read_logs(job_id, after):
                    yield entry
                return

    def _terminal(self, job_id: str) -> bool:
        return JobState(self.b.db.jobs.get(job_id).state).is_terminal()

    def wait(self, job_id: str, *, on_update=None, poll_s: float = 0.25, timeout_s: float | None = None) -> dict:
        """Block until the job is terminal, calling ``on_update(view)`` on each poll; return the final view."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            view = self.get(job_id)
            if on_update is not None:
                on_update(view)
            if JobState(view["state"]).is_terminal():
                return view
            if deadline is not None and time.monotonic() > deadline:
                return view
            time.sleep(poll_s)

    def collect_garbage(self, *, dry_run: bool = False) -> dict:
        """Remove what finished jobs left in the artifact store (see services.job_files.collect_garbage)."""
        from services.job_files import collect_garbage  # noqa: PLC0415

        return collect_garbage(self.b.artifacts, self.b.db, dry_run=dry_run)


def validate_offline(data: dict, *, user: str, flags: bool = False, skipped: list | None = None) -> JobSpec:
    """The checks that need no running service: the spec itself, its files, and (for small corpora)
    whether any word reaches min_count. ``user`` is who submits (a spec cannot name someone else);
    ``flags``: messages name the CLI flags (the spec was built from them); ``skipped`` (a list) collects
    the (path, reason) of the files a corpus directory or glob left out, for the caller to report."""
    from shared.specs import build_spec  # noqa: PLC0415
    from workers.word2vec.precheck import check_eval_files, check_min_count  # noqa: PLC0415

    if "user" in data:
        raise InvalidParameter("user: a spec cannot name its submitter (kiln records who runs the command)")
    spec = build_spec({**data, "user": user}, flags=flags, skipped=skipped)
    if spec.kind == "cnn":  # each kind runs its own prechecks
        from workers.cnn.precheck import resolve_cnn_spec  # noqa: PLC0415

        return resolve_cnn_spec(spec)[0]
    check_eval_files(spec.params)
    _check_min_count_once(spec.params, check_min_count)
    return spec


PRECHECK_CACHE_SIZE = 256
"""Corpora (with the counting options) whose min_count precheck passed, remembered by this process."""
_passed: OrderedDict[tuple, bool] = OrderedDict()
_passed_lock = threading.Lock()


def _check_min_count_once(params, check) -> None:
    """``check(params)`` (count the corpus and build its vocabulary), skipped when this process already
    passed the same files, unchanged (path, device, inode, size and mtime in ns), with the same counting
    options. A server that takes many submissions of one corpus reads it once, not once per submission
    (it was 1.2 ms of CPU for a 300-line corpus, up to a second for 16 MB). Only passes are kept: a
    failing corpus is counted again, and says why again."""
    try:
        files = tuple((p, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns) for p in params.corpus
                      for st in (os.stat(p),))
    except OSError:
        check(params)  # let the check itself say what is wrong with the file
        return
    # exactly the options check_min_count reads
    key = (files, params.lowercase, params.token_pattern, params.max_sentence_length, params.min_count,
           params.max_vocab_size)
    with _passed_lock:
        if key in _passed:
            _passed.move_to_end(key)
            return
    check(params)
    with _passed_lock:
        _passed[key] = True
        while len(_passed) > PRECHECK_CACHE_SIZE:
            _passed.popitem(last=False)


def unsatisfiable(spec: JobSpec, nodes: list[dict]) -> str | None:
    """Why no cluster of ``nodes`` (each {"CPU", "GPU", "memory_gb"} in total) could ever hold ``spec``'s
    workers, naming what was asked and what the cluster has; None if it could (or no nodes are known)."""
    from services.scheduling import Candidate, place  # noqa: PLC0415

    r = spec.resources
    if not nodes:
        return None
    c = Candidate("-", "-", r.workers, r.cpus_per_worker, r.gpus_per_worker, r.placement.upper())
    if place(c, [{"CPU": n.get("CPU", 0.0), "GPU": n.get("GPU", 0.0)} for n in nodes]) is not None:
        return None
    gpu = f" + {r.gpus_per_worker:g} GPU" if r.gpus_per_worker else ""
    has = "; ".join(f"{n.get('CPU', 0):g} CPU, {n.get('GPU', 0):g} GPU, {n.get('memory_gb', 0):g} GB memory"
                    for n in nodes)
    return (f"resources: asked for {r.workers} worker(s) x {r.cpus_per_worker:g} CPU{gpu}, which no node of the "
            f"cluster could ever hold; it has {len(nodes)} node(s): {has}")


def job_view(rec, live: dict | None) -> dict:
    """The job object every command prints (``kiln status --json``; ``kiln jobs --json`` lists them).

    State, times, attempt, error, metrics and model come from SQL (the dispatcher alone writes them);
    progress and the live numbers from Redis. Times are ISO 8601, numbers are numbers, ``model`` is
    {"name", "version"} or null, ``placement`` a list of {"worker", "node_id", ...} or null, ``live``
    the trainer's other numbers (e.g. val_accuracy), ``reason`` why a queued job waits."""
    live = live or {}
    state = rec.state.value if hasattr(rec.state, "value") else rec.state
    progress = 1.0 if state == JobState.SUCCEEDED.value else float(live.get("progress") or 0.0)
    result = rec.result or {}
    view = {
        "id": rec.id,
        "name": rec.name,
        "kind": rec.kind,
        "user": rec.user,
        "state": state,
        "progress": progress,
        "attempt": rec.attempt,
        "priority": rec.priority,
        "submitted_at": _iso(rec.submitted_at),
        "started_at": _iso(rec.started_at),
        "finished_at": _iso(rec.finished_at),
        "heartbeat": _iso(live.get("heartbeat")),
        "error": rec.error,
        "metrics": rec.metrics or {},
        "model": result.get("model"),
        "placement": live.get("placement"),
        "live": live.get("live") or {},
        "queue_position": None,
    }
    for f in LIVE_FIELDS:
        view[f] = live.get(f)
    if state != JobState.QUEUED.value:
        view["reason"] = None
    return view
