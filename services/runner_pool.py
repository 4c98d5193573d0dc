"""Warm runners: spare JobRunner actors the dispatcher starts before there is a job for them.

A new runner actor costs a new Ray worker process, about 1 s, mostly ``import ray``, and a job counts as
RUNNING only once its runner's ``start()`` returned. So the dispatcher keeps ``SPARES`` runners already
started (detached, ``num_cpus=0``, no job, named ``runner-spare-<token>``), hands a dispatched job to one
of them with a single call (``assign``), and starts the next spare at once. When no spare is ready (the
first job after a start, a burst), or a spare cannot be used, the job gets a fresh runner named
``runner-<job id>`` as before.

Each spare runs one job at most and is killed when that job ends: a runner never runs two jobs, and a
job's runner is found again by the job (``JobRunner.held()``), not by the order things happened in.

Recovery after a dispatcher restart (``find_spares``, ``runner_of``): every runner actor of the namespace
is listed; each spare says which job it holds. A job's runner is the spare that holds it, else the fresh
runner its live hash names (the ``runner`` field, written before the hand-over), else ``runner-<job id>``.
Idle spares are adopted (up to ``SPARES``; never one a job's hash names: that hand-over may still land)
or killed, and ``sweep`` kills every runner actor that belongs to no live job and to no pool, so no
detached actor outlives its job or the dispatcher's knowledge of it.

Only the dispatcher uses this module (it imports Ray).
"""
from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass

log = logging.getLogger("kiln.dispatcher")

RUNNER_PREFIX = "runner-"
"""A fresh runner is ``runner-<job id>``; every runner actor's name starts with this."""
SPARE_PREFIX = RUNNER_PREFIX + "spare-"


def _spares_from_env(default: int = 2) -> int:
    raw = os.environ.get("KILN_SPARE_RUNNERS", "")
    try:
        return max(0, min(8, int(raw))) if raw.strip() else default
    except ValueError:
        log.warning("ignoring KILN_SPARE_RUNNERS=%r (not a whole number); keeping %d spare runner(s)", raw, default)
        return default


SPARES = _spares_from_env()
"""How many spare runners the dispatcher keeps started (one idle Ray worker process each): 2, or
KILN_SPARE_RUNNERS (0 to 8; 0 turns warm runners off) in the dispatcher's environment. With one, jobs
dispatched back to back (the queue-to-running bench: one every ~0.35 s) alternate between a spare and a
fresh runner, as a new spare takes ~1.2 s to start; with two, about 2 jobs in 3 find one ready."""
MAX_FAILURES = 3
"""After this many spares in a row could not take their job, jobs get fresh runners only."""
HELD_TIMEOUT_S = 30.0
"""How long recovery waits for a spare to say which job it holds (one still starting answers when up)."""

_actor_class = None


def runner_class():
    """``ray.remote(JobRunner)``, made once (each ``ray.remote`` would export the class again)."""
    global _actor_class
    if _actor_class is None:
        import ray  # noqa: PLC0415

        from workers.runner import JobRunner  # noqa: PLC0415

        _actor_class = ray.remote(JobRunner)
    return _actor_class


def runner_options(name: str, namespace: str) -> dict:
    return {"name": name, "namespace": namespace, "lifetime": "detached", "num_cpus": 0, "max_concurrency": 4,
            "max_restarts": 0}


def is_spare(name: str) -> bool:
    return name.startswith(SPARE_PREFIX)


@dataclass
class Spare:
    name: str
    handle: object
    ready_ref: object
    """``held()``: done once the actor's process is up (it answers None: no job)."""


class RunnerPool:
    """The dispatcher's spare runners (used from its loop's thread only)."""

    def __init__(self, namespace: str, size: int = SPARES):
        self.namespace, self.size = namespace, size
        self.spares: list[Spare] = []
        self.failures = 0

    @property
    def usable(self) -> bool:
        return self.size > 0 and self.failures < MAX_FAILURES

    def names(self) -> set[str]:
        return {s.name for s in self.spares}

    def ready(self) -> list[str]:
        import ray  # noqa: PLC0415

        return [s.name for s in self.spares if ray.wait([s.ready_ref], timeout=0)[0]]

    def fill(self) -> None:
        """Start spares until the pool holds ``size`` (started or starting)."""
        while self.usable and len(self.spares) < self.size:
            name = SPARE_PREFIX + secrets.token_hex(6)
            try:
                handle = runner_class().options(**runner_options(name, self.namespace)).remote()
                self.spares.append(Spare(name, handle, handle.held.remote()))
            except Exception:  # noqa: BLE001 - Ray is away: jobs get fresh runners meanwhile
                log.exception("could not start a spare runner")
                self.failures += 1
                return

    def adopt(self, name: str, handle, ready_ref) -> bool:
        """Keep an idle spare found at recovery; False (the caller kills it) when the pool is full."""
        if not self.usable or len(self.spares) >= self.size:
            return False
        self.spares.append(Spare(name, handle, ready_ref))
        return True

    def take(self) -> Spare | None:
        """A started spare holding no job, out of the pool (the oldest first); None if none is ready: a
        fresh runner then starts beside the spares still starting (handing the job to one of those
        instead was measured: every job then waits for part of a start, p50 ~0.4 s against ~0.06 s with
        two spares). A spare whose start failed is killed and dropped."""
        import ray  # noqa: PLC0415

        for spare in list(self.spares):
            if not ray.wait([spare.ready_ref], timeout=0)[0]:
                continue
            self.spares.remove(spare)
            try:
                if ray.get(spare.ready_ref, timeout=0) is None:
                    return spare
            except Exception:  # noqa: BLE001 - the actor did not start
                log.warning("spare runner %s did not start", spare.name)
                self.failures += 1
            kill(spare.handle)
        return None

    def spare_failed(self, name: str) -> None:
        """A spare could not take its job (dead, errored): after MAX_FAILURES in a row, no more spares."""
        self.failures += 1
        log.warning("spare runner %s could not take its job (%d in a row)", name, self.failures)
        if not self.usable:
            self.close()

    def spare_worked(self) -> None:
        self.failures = 0

    def close(self) -> None:
        """Kill every spare (a planned stop, or spares turned off)."""
        for spare in self.spares:
            kill(spare.handle)
        self.spares = []


def kill(handle) -> None:
    import ray  # noqa: PLC0415

    try:
        ray.kill(handle, no_restart=True)
    except Exception:  # noqa: BLE001 - already dead
        pass


def runner_names(namespace: str) -> list[str]:
    """Names of the runner actors (fresh and spare) alive in ``namespace``."""
    import ray  # noqa: PLC0415

    return [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
            if a.get("namespace") == namespace and a.get("name", "").startswith(RUNNER_PREFIX)]


def get(name: str, namespace: str):
    """The actor named ``name``, or None."""
    import ray  # noqa: PLC0415

    try:
        return ray.get_actor(name, namespace=namespace)
    except ValueError:
        return None


@dataclass
class Found:
    """What recovery found: each job's runner, and the spares that hold no job."""

    by_job: dict[str, tuple[str, object]]
    """job id -> (actor name, handle) for every spare that holds a job."""
    idle: list[tuple[str, object, object]]
    """(name, handle, ready_ref) of spares that hold no job."""


def find_spares(namespace: str) -> Found:
    """Ask every spare runner of ``namespace`` which job it holds. One that does not answer within
    HELD_TIMEOUT_S (or errors) is killed."""
    import ray  # noqa: PLC0415

    asked = []
    for name in runner_names(namespace):
        if not is_spare(name):
            continue
        handle = get(name, namespace)
        if handle is not None:
            asked.append((name, handle, handle.held.remote()))
    found = Found({}, [])
    if asked:
        ray.wait([ref for _, _, ref in asked], num_returns=len(asked), timeout=HELD_TIMEOUT_S)
    for name, handle, ref in asked:
        try:
            job_id = ray.get(ref, timeout=0)
        except Exception:  # noqa: BLE001 - dead, errored or not answering: of no use to anyone
            kill(handle)
            continue
        if job_id is None:
            found.idle.append((name, handle, ref))
        elif job_id in found.by_job:  # two spares claim one job (never expected): keep the first
            kill(handle)
        else:
            found.by_job[job_id] = (name, handle)
    return found


def runner_of(job_id: str, recorded: str | None, found: Found, namespace: str) -> tuple[str, object] | None:
    """The job's runner at recovery: the spare that holds it, else the actor its live hash records (a
    fresh runner), else ``runner-<job id>``; None if it has none."""
    if job_id in found.by_job:
        return found.by_job.pop(job_id)
    for name in (recorded, RUNNER_PREFIX + job_id):
        if name and not is_spare(name):  # a spare that does not hold the job is not its runner
            handle = get(name, namespace)
            if handle is not None:
                return name, handle
    return None


def sweep(namespace: str, keep: set[str]) -> list[str]:
    """Kill every runner actor of ``namespace`` not named in ``keep`` (the live jobs' runners and the
    pool's spares): one left by a dispatcher killed between a job's end and its runner's kill, a spare
    started by a dispatcher that died before it could record it. Returns the names killed."""
    killed = []
    for name in runner_names(namespace):
        if name in keep:
            continue
        handle = get(name, namespace)
        if handle is not None:
            kill(handle)
            killed.append(name)
    return killed


def recorded_runner(status, job_id: str) -> str | None:
    """The runner name the job's live hash records (``runner``), or None."""
    return (status.get(job_id) or {}).get("runner") or None
