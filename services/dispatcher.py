"""The dispatcher: pops queued jobs that fit the free capacity and runs each in a JobRunner actor.

It runs as a named, detached Ray actor (see dispatcher_client) with its loop in a thread. Everything
it needs to carry on lives in SQL and Redis, so when Ray restarts it, it re-attaches to the runners
still alive (they are named after their job) and re-queues the jobs whose runner is gone.

Scheduling (services/scheduling.py): queue order, backfill around jobs that do not fit, and a bound
on how often a waiting job is passed over, so none starves.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field

from services.backends import Backends
from services.jobs import unsatisfiable
from services.scheduling import Candidate, Capacity, pick
from shared import keys
from shared.config import Settings
from shared.errors import InvalidTransition, KilnError, NotFound
from shared.specs import JobSpec
from shared.states import JobState

log = logging.getLogger("kiln.dispatcher")

POLL_S = 0.2
"""Seconds between scheduling rounds."""
HEARTBEAT_TTL_S = 15
"""The dispatcher heartbeat key expires after this many seconds without a refresh."""
CLUSTER_REFRESH_S = 2.0
"""Seconds between refreshes of the cluster's node list and capacity."""
RESTORE_S = 5.0
"""Seconds between checks that Redis still holds every live job (it may be wiped or restarted)."""
MAX_BYPASS = 5
"""How many times a waiting job may be passed over by smaller jobs (backfill) before it blocks them."""
RUNNER_PREFIX = "runner-"


@dataclass
class Running:
    job_id: str
    user: str
    cpus: float
    gpus: float
    runner: object
    wait_ref: object = None
    started: float = field(default_factory=time.time)


class Dispatcher:
    """Plain class; ``ray.remote(Dispatcher)`` makes it the actor."""

    def __init__(self, settings: dict, poll_s: float = POLL_S):
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
        self.settings = Settings.from_dict(settings)
        self.b = Backends(self.settings)
        self.poll_s = poll_s
        self.running: dict[str, Running] = {}
        self.bypassed: dict[str, int] = {}
        self._specs: dict[str, tuple[str, JobSpec]] = {}
        self.capacity = {"CPU": 0.0, "GPU": 0.0}
        self.nodes: list[dict] = []
        self._cluster_at = 0.0
        self._restored_at = 0.0
        self._stop = threading.Event()
        self._ticks = 0
        self._thread = threading.Thread(target=self._loop, name="kiln-dispatcher", daemon=True)
        self._thread.start()

    # -- actor API --------------------------------------------------------------------------------
    def ping(self) -> bool:
        return True

    def info(self) -> dict:
        return {"running": sorted(self.running), "capacity": self.capacity, "ticks": self._ticks,
                "queued": len(self.b.queue)}

    def stop(self) -> None:
        self._stop.set()

    # -- the loop ---------------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._recover()
                break
            except Exception:  # Redis or SQL not reachable yet: try again
                log.exception("recovery failed; retrying")
                self._stop.wait(1.0)
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:
                log.exception("dispatcher round failed")
            self._stop.wait(self.poll_s)

    def tick(self) -> None:
        self._ticks += 1
        self.b.redis.set(keys.DISPATCHER_HEARTBEAT, f"{time.time():.3f}", ex=HEARTBEAT_TTL_S)
        if time.time() - self._cluster_at > CLUSTER_REFRESH_S:
            self._refresh_cluster()
        if time.time() - self._restored_at > RESTORE_S:
            live = {rec.id for rec in self._restore_redis()}
            for job_id in set(self.running) - live:  # terminal in SQL (a cancel whose Redis request was lost)
                self.b.redis.sadd(keys.CANCEL_REQUESTS, job_id)
        self._handle_cancels()
        self._reap()
        self._schedule()

    def _refresh_cluster(self) -> None:
        import ray  # noqa: PLC0415

        nodes = [{"CPU": n["Resources"].get("CPU", 0.0), "GPU": n["Resources"].get("GPU", 0.0),
                  "node_id": n["NodeID"]} for n in ray.nodes() if n.get("Alive")]
        self.capacity = {"CPU": sum(n["CPU"] for n in nodes), "GPU": sum(n["GPU"] for n in nodes)}
        self.nodes = nodes
        self.b.redis.set(keys.CLUSTER_NODES, json.dumps(nodes), ex=HEARTBEAT_TTL_S * 4)
        self._cluster_at = time.time()

    # -- recovery after a restart (or a Redis wipe) -----------------------------------------------
    def _recover(self) -> None:
        """On (re)start: rebuild Redis from SQL and re-attach to the runners still alive."""
        import ray  # noqa: PLC0415

        for rec in self._restore_redis():
            if JobState(rec.state) == JobState.QUEUED:
                continue
            # STARTING or RUNNING: is its runner still alive?
            try:
                runner = ray.get_actor(RUNNER_PREFIX + rec.id, namespace=self.settings.namespace)
                spec = JobSpec.model_validate_json(rec.spec_json)
                self.running[rec.id] = Running(rec.id, rec.user, spec.resources.total_cpus,
                                               spec.resources.total_gpus, runner)
                self.b.status.log(rec.id, "dispatcher restarted; re-attached to the running job")
            except ValueError:
                self._retry_or_fail(rec.id, "the job's runner was lost (dispatcher or node restart)")

    def _restore_redis(self) -> list:
        """Recreate the live hash of every non-terminal job that lost it, and put QUEUED jobs that are
        missing from the queue back on it (Redis wiped or restarted). Returns the non-terminal records."""
        status, queue = self.b.status, self.b.queue
        records = self.b.db.jobs.non_terminal()
        for rec in records:
            state = JobState(rec.state)
            if not status.exists(rec.id):
                status.create(rec.id, {"name": rec.name, "kind": rec.kind, "user": rec.user, "state": state.value,
                                       "attempt": rec.attempt, "priority": rec.priority,
                                       "submitted_at": rec.submitted_at.timestamp()})
            if state == JobState.QUEUED and rec.id not in queue:
                queue.push(rec.id, priority=rec.priority, submitted_at=rec.submitted_at.timestamp())
        self._restored_at = time.time()
        return records

    # -- cancellation -----------------------------------------------------------------------------
    def _handle_cancels(self) -> None:
        import ray  # noqa: PLC0415

        for raw in self.b.redis.smembers(keys.CANCEL_REQUESTS):
            job_id = raw.decode()
            run = self.running.pop(job_id, None)
            if run is not None:
                try:
                    ray.kill(run.runner, no_restart=True)
                except Exception:
                    pass
                self.b.status.log(job_id, "workers stopped and released")
            self.b.redis.srem(keys.CANCEL_REQUESTS, job_id)

    # -- finished runners -------------------------------------------------------------------------
    def _reap(self) -> None:
        import ray  # noqa: PLC0415

        for job_id, run in list(self.running.items()):
            if run.wait_ref is None:
                run.wait_ref = run.runner.wait.remote()
            ready, _ = ray.wait([run.wait_ref], timeout=0)
            if not ready:
                self._mirror_running(job_id)
                continue
            del self.running[job_id]
            try:
                outcome = ray.get(run.wait_ref)
            except Exception as e:  # the runner actor died: worker, node or process failure
                outcome = {"ok": False, "retryable": True, "error": f"runner lost: {type(e).__name__}"}
            try:
                ray.kill(run.runner, no_restart=True)
            except Exception:
                pass
            if outcome.get("ok"):
                self._succeed(job_id, outcome["result"])
            elif outcome.get("retryable"):
                self._retry_or_fail(job_id, outcome["error"])
            else:
                self._fail(job_id, outcome["error"])

    def _mirror_running(self, job_id: str) -> None:
        """Copy the runner's RUNNING (set in Redis) into SQL, which stamps started_at."""
        live = self.b.status.get(job_id) or {}
        if live.get("state") == JobState.RUNNING.value:
            rec = self.b.db.jobs.get(job_id)
            if rec.state == JobState.STARTING:
                try:
                    self.b.db.jobs.transition(job_id, JobState.RUNNING)
                except InvalidTransition:
                    pass

    def _succeed(self, job_id: str, result: dict) -> None:
        db = self.b.db
        try:
            with db.session() as s:
                rec = db.jobs.get(job_id, session=s)
                if JobState(rec.state) == JobState.STARTING:
                    db.jobs.transition(job_id, JobState.RUNNING, session=s)
                mv = db.models.register_version(
                    name=rec.name, kind=rec.kind, params=result["params"], metrics=result["metrics"],
                    artifacts=result["artifacts"], lineage=result["lineage"], job_id=job_id, session=s)
                model = {"name": mv.name, "version": mv.version}
                db.jobs.transition(job_id, JobState.SUCCEEDED, metrics=result["metrics"],
                                   result={"model": model, "artifacts": result["artifacts"]}, session=s)
        except InvalidTransition as e:  # cancelled while finishing: nothing is registered
            self.b.status.log(job_id, f"finished but not registered: {e}", level="WARNING")
            return
        except KilnError as e:  # the result could not be registered (e.g. a bad metric): fail the job
            self._fail(job_id, f"could not register the model: {e}")
            return
        ref = f"{model['name']}:{model['version']}"
        self.b.status.set_state(job_id, JobState.SUCCEEDED, progress=1.0, model=ref, metrics=result["metrics"],
                                eta_s=0, message=f"registered {ref}")
        self.b.status.log(job_id, f"registered model {model['name']} version {model['version']}")
        log.info("job %s succeeded: %s:%s", job_id, model["name"], model["version"])

    def _fail(self, job_id: str, error: str) -> None:
        try:
            self.b.db.jobs.transition(job_id, JobState.FAILED, error=error)
        except InvalidTransition:
            return
        try:
            self.b.status.set_state(job_id, JobState.FAILED, error=error, message="failed")
        except InvalidTransition:
            pass
        self.b.status.log(job_id, f"failed: {error}", level="ERROR")

    def _retry_or_fail(self, job_id: str, error: str) -> None:
        db = self.b.db
        rec = db.jobs.get(job_id)
        if JobState(rec.state).is_terminal():
            return
        if rec.attempt > rec.max_retries:
            self._fail(job_id, f"{error} (no retries left after {rec.attempt} attempts)")
            return
        rec = db.jobs.requeue(job_id, error=error)
        status = self.b.status
        status.set_state(job_id, JobState.QUEUED, attempt=rec.attempt, error=error, progress=0.0)
        status.log(job_id, f"attempt {rec.attempt - 1} failed ({error}); re-queued as attempt {rec.attempt}",
                   level="WARNING")
        self.b.queue.push(job_id, priority=rec.priority, submitted_at=rec.submitted_at.timestamp())

    # -- placing queued jobs ----------------------------------------------------------------------
    def _free(self) -> tuple[float, float]:
        used_cpu = sum(r.cpus for r in self.running.values())
        used_gpu = sum(r.gpus for r in self.running.values())
        return self.capacity["CPU"] - used_cpu, self.capacity["GPU"] - used_gpu

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
        self._specs = {k: v for k, v in self._specs.items() if k in set(ids)}
        candidates = []
        for job_id in ids:
            found = self._queued(job_id)
            if found is None:
                queue.remove(job_id)
                continue
            user, spec = found
            problem = unsatisfiable(spec, self.nodes)
            if problem:
                queue.remove(job_id)
                self._fail(job_id, problem)
                continue
            candidates.append(Candidate(job_id, user, spec.resources.total_cpus, spec.resources.total_gpus))
        if not candidates:
            return
        free_cpu, free_gpu = self._free()
        by_user: dict[str, int] = {}
        for r in self.running.values():
            by_user[r.user] = by_user.get(r.user, 0) + 1
        chosen = pick(candidates, Capacity(free_cpu, free_gpu, len(self.running), by_user),
                      bypassed=self.bypassed, max_bypass=MAX_BYPASS, max_running=s.max_running_jobs,
                      max_per_user=s.max_running_per_user)
        for job_id in chosen:
            user, spec = self._specs.pop(job_id)
            self._start(job_id, spec)

    def _start(self, job_id: str, spec: JobSpec) -> None:
        import ray  # noqa: PLC0415

        from workers.runner import JobRunner  # noqa: PLC0415

        if not self.b.queue.claim(job_id):
            return  # cancelled or taken meanwhile
        try:
            rec = self.b.db.jobs.transition(job_id, JobState.STARTING)
        except InvalidTransition:
            return
        self.b.status.set_state(job_id, JobState.STARTING, attempt=rec.attempt, error="")
        self.b.status.log(job_id, f"attempt {rec.attempt}: starting {spec.resources.workers} worker(s)")
        try:
            runner = ray.remote(JobRunner).options(
                name=RUNNER_PREFIX + job_id, namespace=self.settings.namespace, lifetime="detached",
                num_cpus=0, max_concurrency=4, max_restarts=0,
            ).remote(job_id, rec.spec_json, self.settings.to_dict(), rec.attempt)
            runner.start.remote()
        except Exception as e:
            self._retry_or_fail(job_id, f"could not start the runner: {e}")
            return
        self.running[job_id] = Running(job_id, rec.user, spec.resources.total_cpus, spec.resources.total_gpus, runner)
