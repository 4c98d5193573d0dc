"""The placement policy: which queued jobs start now, and why the others wait. Pure (no Ray, Redis or
SQL), so it is tested alone.

A job asks for one bundle per worker ({"CPU": c, "GPU": g}); it fits when every bundle finds a node
with that much *free* (per node, as Ray places a placement group: a cluster with 1 free CPU on each of
two nodes cannot hold a 2-CPU worker). Jobs are considered in queue order (priority, then submit time).
A job that does not fit waits; jobs behind it that fit may start around it (backfill), and each such
start counts as one bypass of every job waiting ahead of it. Once a waiting job has been bypassed
``max_bypass`` times, it reserves the capacity: nothing behind it starts until it has started.
"""
from __future__ import annotations

from dataclasses import dataclass, field

_EPS = 1e-9


@dataclass(frozen=True)
class Candidate:
    job_id: str
    user: str
    workers: int
    cpus_per_worker: float
    gpus_per_worker: float = 0.0
    strategy: str = "PACK"

    @property
    def bundle(self) -> dict[str, float]:
        return {"CPU": self.cpus_per_worker, "GPU": self.gpus_per_worker}


@dataclass
class Capacity:
    """Free resources per node ({"CPU": n, "GPU": n, ...}, one dict per alive node) and the running jobs."""

    free: list[dict[str, float]]
    running: int = 0
    running_by_user: dict[str, int] = field(default_factory=dict)


def slots(node: dict[str, float], bundle: dict[str, float]) -> int:
    """How many copies of ``bundle`` fit in ``node``."""
    counts = [int((node.get(k, 0.0) + _EPS) // v) for k, v in bundle.items() if v > 0]
    return min(counts) if counts else 1 << 30


def place(c: Candidate, free: list[dict[str, float]]) -> list[int] | None:
    """The node index of each worker's bundle, or None if they do not all fit in ``free``.

    PACK fills the node that already holds the most of the job's workers first (fewest nodes); SPREAD
    puts each worker on the node holding the fewest of them. Both are soft, as in Ray: they change where
    workers go, not whether the job fits."""
    left = [dict(n) for n in free]
    per_node = [0] * len(left)
    out: list[int] = []
    for _ in range(c.workers):
        fitting = [i for i, n in enumerate(left) if slots(n, c.bundle) >= 1]
        if not fitting:
            return None
        if c.strategy.upper() == "SPREAD":
            i = min(fitting, key=lambda j: (per_node[j], -left[j].get("CPU", 0.0), j))
        else:
            i = max(fitting, key=lambda j: (per_node[j], slots(left[j], c.bundle), -j))
        for k, v in c.bundle.items():
            left[i][k] = left[i].get(k, 0.0) - v
        per_node[i] += 1
        out.append(i)
    return out


def take(c: Candidate, free: list[dict[str, float]], where: list[int]) -> None:
    """Subtract ``c``'s bundles, placed at ``where``, from ``free`` (in place)."""
    for i in where:
        for k, v in c.bundle.items():
            free[i][k] = free[i].get(k, 0.0) - v


def describe_free(free: list[dict[str, float]]) -> str:
    """``free now: 1 CPU + 1 CPU`` style summary of per-node free resources."""
    def one(n: dict[str, float]) -> str:
        gpu = n.get("GPU", 0.0)
        return f"{n.get('CPU', 0.0):g} CPU" + (f" {gpu:g} GPU" if gpu else "")

    return " + ".join(one(n) for n in free) if free else "no nodes"


def why_waiting(c: Candidate, free: list[dict[str, float]]) -> str:
    """One line: what the job needs and what the nodes have free now."""
    gpu = f" + {c.gpus_per_worker:g} GPU" if c.gpus_per_worker else ""
    total = sum(n.get("CPU", 0.0) for n in free)
    hint = " (enough in total, but not on the nodes it needs)" if total + _EPS >= c.workers * c.cpus_per_worker else ""
    return (f"waiting for capacity: needs {c.workers} worker(s) x {c.cpus_per_worker:g} CPU{gpu} "
            f"({c.strategy.lower()}); free per node: {describe_free(free)}{hint}")


def pick(candidates: list[Candidate], cap: Capacity, *, bypassed: dict[str, int], max_bypass: int,
         max_running: int = 0, max_per_user: int = 0) -> tuple[list[tuple[str, list[int]]], dict[str, str]]:
    """The jobs to start now, in order, each with the node index of every worker; and why each other
    candidate waits (job id -> one line). ``bypassed`` (job id -> times passed over) is updated in place.

    ``max_running`` / ``max_per_user``: caps on running jobs (0 = none). A user at their cap is skipped
    without counting as a bypass of anyone: the capacity is not what holds them back.
    """
    free = [dict(n) for n in cap.free]
    running, by_user = cap.running, dict(cap.running_by_user)
    waiting: list[str] = []
    started: list[tuple[str, list[int]]] = []
    reasons: dict[str, str] = {}
    blocked_by: str | None = None
    for c in candidates:
        if blocked_by is not None:
            reasons[c.job_id] = f"waiting behind {blocked_by}, which has been passed over {max_bypass} times"
            continue
        if max_running and running >= max_running:
            reasons[c.job_id] = f"waiting: {running} jobs running, the cap (KILN_MAX_RUNNING_JOBS) is {max_running}"
            continue
        if max_per_user and by_user.get(c.user, 0) >= max_per_user:
            reasons[c.job_id] = (f"waiting: {c.user} has {by_user[c.user]} jobs running, the cap "
                                 f"(KILN_MAX_RUNNING_PER_USER) is {max_per_user}")
            continue
        where = place(c, free)
        if where is None:
            reasons[c.job_id] = why_waiting(c, free)
            if bypassed.get(c.job_id, 0) >= max_bypass:
                blocked_by = c.job_id  # this job reserves the capacity now
            else:
                waiting.append(c.job_id)
            continue
        started.append((c.job_id, where))
        take(c, free, where)
        running += 1
        by_user[c.user] = by_user.get(c.user, 0) + 1
        for w in waiting:
            bypassed[w] = bypassed.get(w, 0) + 1
    for job_id, _ in started:
        bypassed.pop(job_id, None)
    return started, reasons
