"""Ray's side of placing a job: the cluster's nodes and their free resources, and one placement group
per job (one bundle per worker), named ``kiln-pg-<job id>`` and detached so that a restarted dispatcher
finds it again and the JobRunner (a detached actor of its own) can look it up by name.

Only the dispatcher calls this module (it imports Ray). Placement groups live in the Ray namespace of
the job that created the dispatcher, which is the settings' namespace (``connect_ray``).
"""
from __future__ import annotations

from dataclasses import dataclass

PG_PREFIX = "kiln-pg-"
PLACE_WAIT_S = 5.0
"""How long the dispatcher waits for Ray to place a group that fits the free resources it saw."""


def pg_name(job_id: str) -> str:
    return PG_PREFIX + job_id


@dataclass(frozen=True)
class ClusterView:
    """Alive nodes (totals: node_id, node_ip, CPU, GPU, memory_gb) and their free resources, same order."""

    nodes: list[dict]
    free: list[dict[str, float]]


def cluster_view() -> ClusterView:
    """The alive nodes with their total and free CPUs, GPUs and memory (what placement groups can use)."""
    import ray  # noqa: PLC0415
    from ray._private import state  # noqa: PLC0415 - the per-node view Ray's autoscaler reads

    available = state.available_resources_per_node()
    nodes, free = [], []
    for n in ray.nodes():
        if not n.get("Alive"):
            continue
        total, avail = n.get("Resources", {}), available.get(n["NodeID"], {})
        nodes.append({"node_id": n["NodeID"], "node_ip": n.get("NodeManagerAddress"),
                      "CPU": total.get("CPU", 0.0), "GPU": total.get("GPU", 0.0),
                      "memory_gb": round(total.get("memory", 0.0) / 2**30, 1)})
        free.append({"CPU": avail.get("CPU", 0.0), "GPU": avail.get("GPU", 0.0)})
    return ClusterView(nodes, free)


def reserve(job_id: str, bundles: list[dict[str, float]], strategy: str):
    """Create the job's placement group (PACK or SPREAD) and wait up to PLACE_WAIT_S for Ray to place it.

    Returns the group, or None when Ray did not place it in time (the group is removed again; the job
    stays queued). A group of the same name left by an earlier attempt is removed first."""
    import ray  # noqa: PLC0415

    remove(job_id)
    pg = ray.util.placement_group(bundles, strategy=strategy.upper(), name=pg_name(job_id), lifetime="detached")
    if pg.wait(timeout_seconds=PLACE_WAIT_S):
        return pg
    ray.util.remove_placement_group(pg)
    return None


def find(job_id: str):
    """The job's placement group, or None."""
    import ray  # noqa: PLC0415

    try:
        return ray.util.get_placement_group(pg_name(job_id))
    except ValueError:
        return None


def remove_orphans(live_job_ids: set[str]) -> list[str]:
    """Remove this namespace's job groups whose job is not live (terminal or unknown in SQL): a dispatcher
    killed after recording a job's end but before removing its group leaves one behind, holding CPUs
    that no other job could then get. Returns the job ids whose groups were removed."""
    import ray  # noqa: PLC0415

    removed = []
    for entry in ray.util.placement_group_table().values():
        name = entry.get("name") or ""
        if not name.startswith(PG_PREFIX) or entry.get("state") == "REMOVED":
            continue
        job_id = name[len(PG_PREFIX):]
        if job_id not in live_job_ids and remove(job_id):  # remove() finds it by name in this namespace only
            removed.append(job_id)
    return removed


def remove(job_id: str) -> bool:
    """Remove the job's placement group (its resources are free again). False if there was none."""
    import ray  # noqa: PLC0415

    pg = find(job_id)
    if pg is None:
        return False
    try:
        ray.util.remove_placement_group(pg)
    except Exception:  # noqa: BLE001 - already removed
        return False
    return True


def placement_of(pg) -> list[dict]:
    """Where each bundle of ``pg`` was placed: [{"worker": i, "node_id": ...}, ...]."""
    import ray  # noqa: PLC0415

    table = ray.util.placement_group_table(pg)
    by_bundle = table.get("bundles_to_node_id", {}) or {}
    return [{"worker": int(i), "node_id": node} for i, node in sorted(by_bundle.items())]
