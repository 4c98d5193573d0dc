"""The dispatcher: places queued jobs on the cluster and is the one writer of job state.

It runs as a named, detached Ray actor (see dispatcher_client) with its loop in a thread. For each job
it starts, it reserves a placement group (services/placement.py: one bundle per worker, PACK or
SPREAD, named after the job), hands the job to a spare JobRunner started ahead of time (one call,
``assign``; services/runner_pool.py) or, when none is ready, creates a fresh one named after the job and
calls ``start()``, then waits on ``wait()``. Which actor runs the job is written into its live hash
(``runner``) before the hand-over. Runners only report live numbers; the dispatcher records every
state: STARTING when the group is placed, RUNNING once ``start()`` returned, and the terminal state from
the runner's outcome, in SQL first and then in Redis.

Everything it needs to carry on lives in SQL, Redis and Ray's named objects, so when Ray restarts it
(or it is killed at any moment), it re-attaches to the runners still alive (a spare says which job it
holds; a fresh runner is found by name) and calls ``start()`` again (idempotent: a dispatcher may die
between creating a runner and starting it), registers results that were kept but not yet registered,
re-queues the jobs whose runner is gone (without counting an attempt when the runner never started), and
kills every runner actor that belongs to no live job and to no pool.

States are written by services/job_outcomes.py: a trained result is written beside the job's
artifacts before it is registered, and whatever the database cannot take now (a result, a FAILED, a
re-queue) is kept and written on a later round: a transient database error never throws a model away.

Cancels are taken on SQL's word: a job stops when SQL says it is terminal; the Redis cancel set only
says "look now". Scheduling policy (services/scheduling.py): queue order, per-node fit, backfill
around jobs that do not fit, a bound on how often a waiting job is passed over.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from services import job_files, placement, runner_pool
from services.backends import Backends
from services.job_outcomes import OutcomeRecorder, Unregistered, one_line
from services.jobs import unsatisfiable
from services.queue import wake
from services.scheduling import Candidate, Capacity, pick
from shared import keys
from shared.config import Settings
from shared.errors import InvalidTransition, NotFound
from shared.specs import JobSpec
from shared.states import JobState

log = logging.getLogger("kiln.dispatcher")

POLL_S = 0.2
"""Seconds between scheduling rounds when nothing wakes the dispatcher earlier (services/queue.py: wake)."""
MIN_ROUND_S = 0.02
"""Rounds begin at least this far apart: a burst of submissions (each one a wake-up) costs at most 50
rounds a second."""
HEARTBEAT_TTL_S = 15
"""The dispatcher heartbeat key expires after this many seconds without a refresh."""
CLUSTER_REFRESH_S = 1.0
"""Seconds between refreshes of the cluster's nodes and their free resources."""
SQL_CHECK_S = 2.0
"""Seconds between checks of SQL's word on the running jobs (cancelled elsewhere, Redis wiped)."""
MAX_BYPASS = 5
"""How many times a waiting job may be passed over by smaller jobs (backfill) before it blocks them."""
DB_WAIT_S = 5.0
"""How long one dispatcher round waits for a locked SQLite file (the registry's default is 30 s). Whatever
it could not write is kept and written on a later round, and the heartbeat (15 s) stays fresh meanwhile."""
RUNNER_PREFIX = runner_pool.RUNNER_PREFIX


@dataclass
class Running:
    """A job with a runner: STARTING until ``start()`` returned, then RUNNING until ``wait()`` returns."""

    job_id: str
    user: str
    spec: JobSpec
    runner: object
    start_ref: object = None
    wait_ref: object = None
    running: bool = False
    since: float = field(default_factory=time.time)
    runner_name: str = ""
    spare: bool = False
    """Handed to a spare runner by this dispatcher: until its ``assign`` returned True, the job may not
    have started there (a dead spare costs the job no attempt)."""


class Dispatcher:
    """Plain class; ``ray.remote(Dispatcher)`` makes it the actor."""

    def __init__(self, settings: dict, poll_s: float = POLL_S, spares: int = runner_pool.SPARES):
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
        self.settings = Settings.from_dict(settings)
        self.b = Backends(self.settings)
        self.poll_s = poll_s
        self.running: dict[str, Running] = {}
        self.record = OutcomeRecorder(self.b)
        self.pool = runner_pool.RunnerPool(self.settings.namespace, size=spares)
        self.bypassed: dict[str, int] = {}
        self.reasons: dict[str, str] = {}
        self._specs: dict[str, tuple[str, JobSpec]] = {}
        self.view = placement.ClusterView([], [])
        self._cluster_at = 0.0
        self._sql_at = 0.0
        self._stop = threading.Event()
        self._ticks = 0
        try:  # publish the nodes before the first ping returns: a submit right after `kiln up` is checked
            self._refresh_cluster()
        except Exception:  # noqa: BLE001 - Redis or Ray not ready: the loop publishes them
            log.exception("could not publish the cluster's nodes yet")
        self._thread = threading.Thread(target=self._loop, name="kiln-dispatcher", daemon=True)
        self._thread.start()

    # -- actor API --------------------------------------------------------------------------------
    def ping(self) -> bool:
        return True

    def info(self) -> dict:
        import os  # noqa: PLC0415

        return {"pid": os.getpid(), "running": sorted(self.running), "unregistered": sorted(self.record.unregistered),
                "nodes": self.view.nodes, "free": self.view.free, "ticks": self._ticks, "queued": len(self.b.queue),
                "runners": {j: r.runner_name for j, r in list(self.running.items())},
                "spares": sorted(self.pool.names()),
                "spares_ready": sorted(self.pool.ready())}

    def stop(self) -> None:
        self._stop.set()

    def drain(self) -> list[str]:
        """A planned stop: stop scheduling, stop every runner and put its job back in the queue without
        counting an attempt (it resumes from its last checkpoint). Returns the re-queued job ids. The actor
        schedules nothing afterwards: kill it (or let Ray restart it) to dispatch again."""
        self._stop.set()
        self._thread.join(timeout=60)
        requeued = []
        for job_id, run in list(self.running.items()):
            self._release(job_id, run.runner)
            del self.running[job_id]
            rec = self.b.db.jobs.requeue_without_attempt(job_id)
            if rec is None:
                continue
            self.b.status.set_state(job_id, JobState.QUEUED, attempt=rec.attempt, message="re-queued by a planned stop")
            self.b.status.log(job_id, f"planned stop: re-queued; attempt {rec.attempt} resumes from its last checkpoint",
                              level="WARNING")
            self.b.queue.push(job_id, priority=rec.priority, submitted_at=rec.submitted_at.timestamp())
            requeued.append(job_id)
        self.pool.close()
        return requeued

    # -- the loop ---------------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                _short_db_waits(self.b.db.engine)
                self._recover()
                break
            except Exception:  # Redis, SQL or Ray not reachable yet: try again
                log.exception("recovery failed; retrying")
                self._stop.wait(1.0)
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                self.tick()
            except Exception:
                log.exception("dispatcher round failed")
            self._stop.wait(max(0.0, MIN_ROUND_S - (time.monotonic() - began)))
            self._wait_for_work()

    def _wait_for_work(self) -> None:
        """Sleep until the next round: at most ``poll_s``, less when a job is queued or a runner's
        ``start()`` returns (both push the wake list), so a job with free capacity is not kept waiting
        for the poll."""
        try:
            self.b.queue.wait_for_work(self.poll_s)
        except Exception:  # noqa: BLE001 - Redis is away: the round itself reports it
            self._stop.wait(self.poll_s)

    def tick(self) -> None:
        self._ticks += 1
        self.b.redis.set(keys.DISPATCHER_HEARTBEAT, f"{time.time():.3f}", ex=HEARTBEAT_TTL_S)
        now = time.time()
        if now - self._cluster_at > CLUSTER_REFRESH_S:
            self._refresh_cluster()
        if self.b.redis.scard(keys.CANCEL_REQUESTS) or now - self._sql_at > SQL_CHECK_S:
            self._check_sql()
        self.record.flush()
        self._reap()
        self._schedule()

    def _refresh_cluster(self) -> None:
        import json  # noqa: PLC0415

        self.view = placement.cluster_view()
        self.b.redis.set(keys.CLUSTER_NODES, json.dumps(self.view.nodes), ex=HEARTBEAT_TTL_S * 4)
        self._cluster_at = time.time()

    # -- recovery after a restart (or a Redis wipe) -----------------------------------------------
    def _recover(self) -> None:
        """On (re)start: rebuild Redis from SQL, register kept results, re-attach to the runners still
        alive (calling ``start()`` again: the last dispatcher may have died before it did), found by asking
        the spares which job they hold (services/runner_pool.py), then by the name the job's hash records,
        then by ``runner-<job id>``; adopt idle spares, kill runner actors of no live job."""
        ns = self.settings.namespace
        records = self._restore_redis()
        found = runner_pool.find_spares(ns)
        recorded = set()
        for rec in records:
            state = JobState(rec.state)
            if state == JobState.QUEUED:
                placement.remove(rec.id)  # a group reserved just before the last dispatcher died
                continue
            spec = JobSpec.model_validate_json(rec.spec_json)
            kept = job_files.load_result(self.b.artifacts, rec.id)
            named = runner_pool.recorded_runner(self.b.status, rec.id)  # written before the hand-over
            recorded.add(named)
            name, runner = runner_pool.runner_of(rec.id, named, found, ns) or ("", None)
            if kept is not None:  # trained, but not registered before the last dispatcher died
                self._release(rec.id, runner)
                self.record.unregistered[rec.id] = Unregistered(kept)
                continue
            if runner is None:
                if state == JobState.STARTING:  # the last dispatcher died before the runner was started
                    self.record.requeue_same_attempt(rec.id, "the dispatcher restarted before the job's runner started")
                else:
                    self.record.retry_or_fail(rec.id, "the job's runner was lost (dispatcher or node restart)")
                continue
            run = Running(rec.id, rec.user, spec, runner, start_ref=runner.start.remote(),
                          running=state == JobState.RUNNING,
                          since=rec.started_at.timestamp() if rec.started_at else time.time(), runner_name=name)
            self.running[rec.id] = run
            self.b.status.log(rec.id, f"dispatcher restarted; re-attached to the job's runner ({name})")
        for name, handle, ready_ref in found.idle:  # spares of the last dispatcher that hold no job
            # one recorded as a job's runner was being handed that job: never adopted, as the hand-over
            # could still arrive; the job itself was re-queued above without counting an attempt
            if name in recorded or not self.pool.adopt(name, handle, ready_ref):
                runner_pool.kill(handle)
        self._remove_stray_groups()  # also kills spares that hold a job no longer live
        self.pool.fill()

    def _remove_stray_groups(self) -> None:
        """Kill every runner actor that is neither a live job's nor a spare of this pool, and remove every
        job group of this namespace whose job has no runner here: a dispatcher killed
        between reserving a group and starting the runner (the job is re-queued), or between recording a
        job's end and removing its group, leaves one behind holding CPUs, which could keep the job itself,
        or any other, waiting forever. (Runs in the loop's thread, so no ``_start`` is half done.)"""
        for job_id in placement.remove_orphans(set(self.running)):
            log.info("removed a placement group left behind by job %s", job_id)
        keep = {run.runner_name for run in self.running.values()} | self.pool.names()
        for name in runner_pool.sweep(self.settings.namespace, keep):
            log.info("killed runner actor %s, which ran no live job", name)

    def _restore_redis(self) -> list:
        """Recreate the live hash of every non-terminal job that lost it, and put QUEUED jobs that are
        missing from the queue back on it (Redis wiped or restarted). Returns the non-terminal records."""
        status, queue = self.b.status, self.b.queue
        records = self.b.db.jobs.non_terminal()
        for rec in records:
            state = JobState(rec.state)
            if not status.exists(rec.id):
                fields = {"name": rec.name, "kind": rec.kind, "user": rec.user, "state": state.value,
                          "attempt": rec.attempt, "priority": rec.priority,
                          "submitted_at": rec.submitted_at.timestamp()}
                if rec.id in self.running:  # and which actor runs it, for a later dispatcher's recovery
                    fields["runner"] = self.running[rec.id].runner_name
                status.create(rec.id, fields)
            if state == JobState.QUEUED and rec.id not in queue and rec.id not in self.running:
                queue.push(rec.id, priority=rec.priority, submitted_at=rec.submitted_at.timestamp())
        self._sql_at = time.time()
        return records

    # -- SQL's word: cancels, and jobs ended elsewhere ---------------------------------------------
    def _check_sql(self) -> None:
        """Stop the runner of every job SQL says is terminal (a user cancel); ignore Redis cancel requests
        that SQL does not confirm (anyone who can write to Redis could send one)."""
        live = {rec.id: rec for rec in self._restore_redis()}
        self._remove_stray_groups()
        for job_id in list(self.running):
            if job_id not in live:
                run = self.running.pop(job_id)
                self._release(job_id, run.runner)
                self._end_in_redis(job_id)
                job_files.remove_scratch(self.b.artifacts, job_id)
                self.b.status.log(job_id, "workers stopped and released")
        for job_id in list(self.record.unregistered):
            if job_id not in live:  # cancelled while its result waited for the database
                self.record.forget(job_id)
        for raw in self.b.redis.smembers(keys.CANCEL_REQUESTS):
            job_id = raw.decode()
            if job_id in live:
                self.b.status.log(job_id, f"ignored a cancel request that the database does not confirm (the job "
                                          f"is {live[job_id].state.value} there); use `kiln cancel`", level="WARNING")
            self.b.redis.srem(keys.CANCEL_REQUESTS, job_id)

    def _end_in_redis(self, job_id: str) -> None:
        """Copy a job's terminal state from SQL into its live hash."""
        try:
            rec = self.b.db.jobs.get(job_id)
            self.b.status.set_state(job_id, rec.state, error=rec.error or "")
        except (InvalidTransition, NotFound):
            pass

    def _release(self, job_id: str, runner) -> None:
        """Kill the job's runner (its workers die with it) and remove its placement group."""
        import ray  # noqa: PLC0415

        if runner is not None:
            try:
                ray.kill(runner, no_restart=True)
            except Exception:  # noqa: BLE001 - already dead
                pass
        placement.remove(job_id)

    # -- running jobs -----------------------------------------------------------------------------
    def _reap(self) -> None:
        import ray  # noqa: PLC0415

        for job_id, run in list(self.running.items()):
            if run.spare and not run.running:  # wait() only once the spare took the job: it runs no other
                if not ray.wait([run.start_ref], timeout=0)[0]:
                    self._check_timeout(run)
                    continue
                if not _returned_true(run.start_ref):  # dead or errored before the job began: not its fault
                    self._release(job_id, run.runner)
                    try:
                        self.record.requeue_same_attempt(job_id, "the spare runner could not take the job")
                    except Exception as e:  # noqa: BLE001 - the database cannot take it now: next round
                        log.warning("job %s: could not re-queue it yet: %s", job_id, one_line(e))
                        continue
                    del self.running[job_id]
                    self.pool.spare_failed(run.runner_name)
                    continue
            if run.wait_ref is None:
                run.wait_ref = run.runner.wait.remote()
            if not run.running and run.start_ref is not None and ray.wait([run.start_ref], timeout=0)[0]:
                self._mark_running(run)
            if not ray.wait([run.wait_ref], timeout=0)[0]:
                self._check_timeout(run)
                continue
            del self.running[job_id]
            try:
                outcome = ray.get(run.wait_ref)
            except Exception as e:  # the runner actor died: worker, node or process failure
                outcome = {"ok": False, "retryable": True, "error": f"runner lost: {type(e).__name__}"}
            if outcome.get("ok"):
                self._release(job_id, run.runner)
                self.b.status.log(job_id, "training finished; registering the model")
                self.record.keep(job_id, outcome["result"])  # written beside the artifacts, then registered
            else:
                self._release(job_id, run.runner)
                if outcome.get("retryable"):
                    self.record.retry_or_fail(job_id, outcome["error"])
                else:
                    self.record.fail(job_id, outcome["error"])

    def _mark_running(self, run: Running) -> None:
        """STARTING -> RUNNING, once the runner's ``start()`` returned (SQL stamps started_at)."""
        import ray  # noqa: PLC0415

        try:
            ray.get(run.start_ref, timeout=0)
        except Exception:  # noqa: BLE001 - the runner died before starting: its wait() says so
            run.running = True
            return
        try:
            self.b.db.jobs.transition(run.job_id, JobState.RUNNING)
            self.b.status.set_state(run.job_id, JobState.RUNNING)
        except InvalidTransition:
            pass  # cancelled meanwhile: the SQL check stops it
        except Exception as e:  # noqa: BLE001 - the database is unavailable: try again next round
            log.warning("job %s: could not record RUNNING yet: %s", run.job_id, one_line(e))
            return
        run.running = True
        run.since = time.time()
        if run.spare:
            self.pool.spare_worked()

    def _check_timeout(self, run: Running) -> None:
        limit = run.spec.timeout_s
        if limit is None or time.time() - run.since <= limit:
            return
        del self.running[run.job_id]
        self._release(run.job_id, run.runner)
        self.record.fail(run.job_id, f"timed out after {_duration(limit)} (--timeout)")

    # -- placing queued jobs ----------------------------------------------------------------------
    def _queued(self, job_id: str) -> tuple[str, JobSpec] | None:
        """(user, spec) of a queued job, cached (a spec never changes); None if it is not QUEUED in SQL."""
        if job_id not in self._specs:
            try:
                rec = self.b.db.jobs.get(job_id)
            except NotFound:
                return None
            if JobState(rec.state) != JobState.QUEUED:
                return None
            self._specs[job_id] = (rec.user, JobSpec.model_validate_json(rec.spec_json))
        return self._specs[job_id]

    def _schedule(self) -> None:
        s, queue = self.settings, self.b.queue
        ids = queue.ids(limit=500)
        listed = set(ids)  # once: a set per cached spec made a round with 500 queued jobs quadratic
        self._specs = {k: v for k, v in self._specs.items() if k in listed}
        candidates, reasons = [], {}
        for job_id in ids:
            found = self._queued(job_id)
            if found is None:
                queue.remove(job_id)
                continue
            user, spec = found
            problem = unsatisfiable(spec, self.view.nodes)
            if problem:  # the cluster shrank since submit (a node lost): wait for it, as Ray does, and say so
                reasons[job_id] = "waiting for nodes: " + problem.removeprefix("resources: ")
                continue
            r = spec.resources
            candidates.append(Candidate(job_id, user, r.workers, r.cpus_per_worker, r.gpus_per_worker,
                                        r.placement.upper()))
        by_user: dict[str, int] = {}
        for r in self.running.values():
            by_user[r.user] = by_user.get(r.user, 0) + 1
        chosen, waiting = pick(candidates, Capacity(self.view.free, len(self.running), by_user),
                               bypassed=self.bypassed, max_bypass=MAX_BYPASS, **self._caps())
        reasons.update(waiting)
        for job_id, _where in chosen:
            user, spec = self._specs.pop(job_id)
            if not self._start(job_id, user, spec):
                reasons[job_id] = ("waiting for Ray to place its workers (the free resources seen a moment ago "
                                   "were taken)")
        self._show_reasons(reasons)
        self.pool.fill()  # the next spare starts now, while the job just handed over gets going

    def _caps(self) -> dict[str, int]:
        """The caps on running jobs for this round: those `kiln up` last wrote (settings changed without a
        restart), else this dispatcher's own; published for `kiln doctor`."""
        import json  # noqa: PLC0415

        caps = {"max_running": self.settings.max_running_jobs, "max_per_user": self.settings.max_running_per_user}
        try:
            wanted = json.loads(self.b.redis.get(keys.CAPS) or "{}")
            caps = {"max_running": max(0, int(wanted.get("max_running_jobs", caps["max_running"]))),
                    "max_per_user": max(0, int(wanted.get("max_running_per_user", caps["max_per_user"])))}
        except (ValueError, TypeError, AttributeError):
            log.warning("ignoring malformed %s", keys.CAPS)
        self.b.redis.set(keys.CAPS_IN_FORCE, json.dumps({"max_running_jobs": caps["max_running"],
                                                         "max_running_per_user": caps["max_per_user"]}),
                         ex=HEARTBEAT_TTL_S)
        return caps

    def _show_reasons(self, reasons: dict[str, str]) -> None:
        """Write why each queued job waits into its live hash (only when it changed)."""
        for job_id, why in reasons.items():
            if self.reasons.get(job_id) != why:
                self.b.status.report(job_id, heartbeat=False, reason=why, message=why)
                self.reasons[job_id] = why
        for job_id in set(self.reasons) - set(reasons):
            del self.reasons[job_id]

    def _start(self, job_id: str, user: str, spec: JobSpec) -> bool:
        """Reserve the job's placement group, then (job still queued) claim it, record STARTING and which
        runner will run it, and hand it to a ready spare runner (one call), else create a fresh runner and
        start it. False if Ray did not place the group (the job stays QUEUED)."""
        from workers.contract import ScalingConfig  # noqa: PLC0415

        scaling = ScalingConfig.from_resources(spec.resources, backend="-")
        pg = placement.reserve(job_id, scaling.bundles(), scaling.placement_strategy)
        if pg is None:
            self._cluster_at = 0.0  # the view was stale: refresh it next round
            return False
        if not self.b.queue.claim(job_id):
            placement.remove(job_id)
            return True  # cancelled or taken meanwhile
        try:
            rec = self.b.db.jobs.transition(job_id, JobState.STARTING)
        except InvalidTransition:
            placement.remove(job_id)
            return True
        except Exception:  # the database cannot take it now: the job stays queued for a later round
            placement.remove(job_id)
            self.b.queue.push(job_id, priority=spec.priority, submitted_at=_submitted(self.b.status, job_id))
            raise
        spare = self.pool.take() if self.pool.usable else None
        name = spare.name if spare is not None else RUNNER_PREFIX + job_id
        # recorded before the hand-over: a dispatcher killed from here on is followed by one that finds it
        self.b.status.set_state(job_id, JobState.STARTING, attempt=rec.attempt, error="", reason="",
                                message="starting workers", placement=placement.placement_of(pg), runner=name)
        self.b.status.log(job_id, f"attempt {rec.attempt}: {spec.resources.workers} worker(s) placed "
                                  f"({scaling.placement_strategy}); starting on "
                                  f"{'spare runner ' if spare is not None else 'a new runner '}{name}")
        ns, args = self.settings.namespace, (job_id, rec.spec_json, self.settings.to_dict(), rec.attempt,
                                             placement.pg_name(job_id))
        try:
            _wait_name_free(RUNNER_PREFIX + job_id, ns)  # an earlier attempt's fresh runner, still dying
            if spare is not None:
                runner = spare.handle
                start_ref = runner.assign.remote(*args)
            else:
                runner = runner_pool.runner_class().options(**runner_pool.runner_options(name, ns)).remote(*args)
                start_ref = runner.start.remote()
            start_ref.future().add_done_callback(self._started)
        except Exception as e:  # noqa: BLE001
            if spare is not None:
                runner_pool.kill(spare.handle)
            placement.remove(job_id)
            self.record.retry_or_fail(job_id, f"could not start the runner: {one_line(e)}")
            return True
        self.running[job_id] = Running(job_id, user, spec, runner, start_ref=start_ref, runner_name=name,
                                       spare=spare is not None)
        return True

    def _started(self, _future) -> None:
        """A runner's ``start()`` returned (in a Ray thread): wake the loop, which records RUNNING."""
        try:
            wake(self.b.redis)
        except Exception:  # noqa: BLE001 - the next poll records it
            pass


def _returned_true(ref) -> bool:
    """Whether the finished call ``ref`` returned True (False if it returned anything else or raised)."""
    import ray  # noqa: PLC0415

    try:
        return ray.get(ref, timeout=0) is True
    except Exception:  # noqa: BLE001 - the actor died or the call failed
        return False


def _submitted(status, job_id: str) -> float:
    """The job's submit time from its live hash (its place in the queue), or now."""
    return (status.get(job_id) or {}).get("submitted_at") or time.time()


def _short_db_waits(engine) -> None:
    """Make the dispatcher's SQLite connections wait DB_WAIT_S, not 30 s, for another process's lock."""
    if engine.dialect.name != "sqlite" or engine.__dict__.get("_kiln_short_waits"):
        return
    from sqlalchemy import event  # noqa: PLC0415

    @event.listens_for(engine, "connect")
    def _busy_timeout(dbapi_conn, _record):  # runs after the registry's own connect hook
        dbapi_conn.execute(f"PRAGMA busy_timeout={int(DB_WAIT_S * 1000)}")

    engine.__dict__["_kiln_short_waits"] = True
    engine.dispose()  # connections opened before (schema check) take the new wait when reopened


def _wait_name_free(name: str, namespace: str, timeout_s: float = 10.0) -> None:
    """Wait until no actor holds ``name`` (an earlier attempt's runner, killed, releases it when dead)."""
    import ray  # noqa: PLC0415

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            old = ray.get_actor(name, namespace=namespace)
        except ValueError:
            return
        ray.kill(old, no_restart=True)
        time.sleep(0.1)


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"
