"""What `kiln doctor` reports: can each backing service be reached, and what versions run.

Every check has a timeout and ends in one line; passwords in URLs are shown as ``***``.
"""
from __future__ import annotations

import platform
from importlib import metadata

from services import stack
from shared import keys
from shared.config import Settings, mask_secrets, mask_url
from shared.errors import KilnError


def _redis(settings: Settings) -> dict:
    import redis  # noqa: PLC0415

    if not settings.redis_url:
        return {"ok": False, "detail": f"embedded redis-server: {stack.describe_down(settings)}"}
    shown = mask_url(settings.redis_url)
    try:
        client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=5)
        info = client.info("server")
        return {"ok": True, "detail": f"{shown} (redis {info.get('redis_version')})"}
    except ValueError as e:
        return {"ok": False, "detail": f"{shown}: not a Redis URL ({e})"}
    except redis.RedisError as e:
        return {"ok": False, "detail": f"{shown}: {mask_secrets(str(e), settings.redis_url)}"}


def _database(settings: Settings) -> dict:
    from services.registry.engine import current_revision  # noqa: PLC0415

    shown = mask_url(settings.db_url)
    try:
        rev = current_revision(settings.db_url)
        return {"ok": True, "detail": f"{shown} (schema {rev or 'not created yet'})"}
    except Exception as e:  # noqa: BLE001 - reported, not raised
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        return {"ok": False, "detail": f"{shown}: {mask_secrets(first, settings.db_url)}"}


def _ray(settings: Settings) -> tuple[dict, list[dict]]:
    if not settings.ray_address:
        return {"ok": False, "detail": f"embedded Ray: {stack.describe_down(settings)}"}, []
    try:
        from services.ray_client import cluster_nodes, connect_ray  # noqa: PLC0415

        connect_ray(settings)
        import ray  # noqa: PLC0415

        nodes = cluster_nodes()
        cpus, gpus = sum(n["cpus"] for n in nodes), sum(n["gpus"] for n in nodes)
        return {"ok": True, "detail": f"{settings.ray_address} (ray {ray.__version__}, {len(nodes)} node(s), "
                                      f"{cpus:g} CPUs, {gpus:g} GPUs)"}, nodes
    except KilnError as e:
        return {"ok": False, "detail": e.message}, []
    except Exception as e:  # noqa: BLE001
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        return {"ok": False, "detail": f"{settings.ray_address}: {first}"}, []


def _torch() -> dict:
    try:
        import torch  # noqa: PLC0415

        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(gpus))
        return {"ok": True, "detail": f"torch {torch.__version__}; GPUs seen here: {gpus}{f' ({names})' if names else ''}"}
    except Exception as e:  # noqa: BLE001
        return {"ok": False, "detail": f"torch: {e}"}


def artifact_warning(artifacts: str, node_count: int) -> str | None:
    """A warning when a local-path artifact store is used by a cluster of several nodes."""
    from shared.artifacts import is_remote  # noqa: PLC0415

    if node_count > 1 and not is_remote(artifacts):
        return (f"KILN_ARTIFACTS is a local path ({artifacts}) and the cluster has {node_count} nodes: every node "
                "must mount it at the same place (NFS), or use a URL every node reaches (s3://...)")
    return None


def cluster_node_count(redis_url: str | None) -> int:
    """How many nodes the dispatcher last saw in the cluster (0 if unknown); no Ray call."""
    import json  # noqa: PLC0415

    import redis  # noqa: PLC0415

    from shared import keys  # noqa: PLC0415

    if not redis_url:
        return 0
    try:
        raw = redis.Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=5).get(keys.CLUSTER_NODES)
        return len(json.loads(raw)) if raw else 0
    except (redis.RedisError, ValueError):
        return 0


def _orphaned_jobs(settings: Settings, resolved: Settings) -> str | None:
    """A warning when the registry has STARTING/RUNNING jobs but the local stack that ran them is down."""
    if not settings.embedded_ray or resolved.ray_address:
        return None
    try:
        active = stack.active_jobs(resolved)
    except Exception:  # noqa: BLE001 - the database check reports what is wrong with it
        return None
    if not active:
        return None
    ids = ", ".join(r.id for r in active[:5]) + (" ..." if len(active) > 5 else "")
    return (f"{len(active)} job(s) recorded as running ({ids}) but the local stack is down: nothing runs them "
            "until `kiln up`, which retries them")


def caps_in_force(settings: Settings) -> dict | None:
    """The caps on running jobs the dispatcher applied at its last round ({"max_running_jobs",
    "max_running_per_user"}, null for no cap), or None when no dispatcher reports them."""
    import json  # noqa: PLC0415

    import redis  # noqa: PLC0415

    if not settings.redis_url:
        return None
    try:
        raw = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=5).get(
            keys.CAPS_IN_FORCE)
        caps = json.loads(raw) if raw else None
    except (redis.RedisError, ValueError):
        return None
    return None if not isinstance(caps, dict) else {k: int(caps.get(k) or 0) or None
                                                    for k in ("max_running_jobs", "max_running_per_user")}


def _caps_warning(settings: Settings, applied: dict | None) -> str | None:
    """A warning when the dispatcher applies other caps than these settings say."""
    wanted = {"max_running_jobs": settings.max_running_jobs or None,
              "max_running_per_user": settings.max_running_per_user or None}
    if applied is None or applied == wanted:
        return None

    def shown(d: dict) -> str:
        return ", ".join(f"KILN_{k.upper()}={'no cap' if v is None else v}" for k, v in d.items())

    return (f"the dispatcher applies {shown(applied)}, not {shown(wanted)} as set here: `kiln up` applies "
            "these settings to the running dispatcher")


def check_all(settings: Settings) -> dict:
    """Every check and the settings in force: {"kiln_version", "python", "checks", "nodes", "warnings",
    "settings", "in_use"}; values typed for JSON (numbers, booleans, null). ``in_use.caps``: the caps on
    running jobs the dispatcher applies (null: no dispatcher reports them)."""
    resolved = stack.resolve(settings)
    try:
        version = metadata.version("kiln")
    except metadata.PackageNotFoundError:
        version = "unknown"
    ray_check, nodes = _ray(resolved)
    applied = caps_in_force(resolved)
    warnings = [w for w in (artifact_warning(settings.artifacts, len(nodes)), _orphaned_jobs(settings, resolved),
                            _caps_warning(settings, applied)) if w]
    return {
        "kiln_version": version,
        "python": platform.python_version(),
        "checks": {"redis": _redis(resolved), "database": _database(resolved), "ray": ray_check,
                   "torch": _torch()},
        "nodes": nodes,
        "warnings": warnings,
        # As set (null: not set, the embedded part is used; a cap of null: no cap); passwords masked.
        "settings": {"KILN_HOME": str(settings.kiln_home), "KILN_REDIS_URL": mask_url(settings.redis_url),
                     "KILN_DB_URL": mask_url(settings.db_url), "KILN_ARTIFACTS": mask_url(settings.artifacts),
                     "RAY_ADDRESS": settings.ray_address,
                     "KILN_MAX_RUNNING_JOBS": settings.max_running_jobs or None,
                     "KILN_MAX_RUNNING_PER_USER": settings.max_running_per_user or None,
                     "KILN_USER": settings.user},
        # What this process would use now (the embedded stack's addresses filled in; null: not running).
        "in_use": {"redis_url": mask_url(resolved.redis_url), "ray_address": resolved.ray_address,
                   "embedded_redis": settings.embedded_redis, "embedded_ray": settings.embedded_ray,
                   "caps": applied},
    }
