"""What `kiln doctor` reports: can each backing service be reached, and what versions run."""
from __future__ import annotations

import platform
from importlib import metadata

from services import stack
from shared.config import Settings


def _redis(settings: Settings) -> dict:
    import redis  # noqa: PLC0415

    if not settings.redis_url:
        return {"ok": False, "detail": "embedded redis-server not running (run `kiln up`)"}
    try:
        info = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2).info("server")
        return {"ok": True, "detail": f"{settings.redis_url} (redis {info.get('redis_version')})"}
    except redis.RedisError as e:
        return {"ok": False, "detail": f"{settings.redis_url}: {e}"}


def _database(settings: Settings) -> dict:
    from services.registry.engine import current_revision  # noqa: PLC0415

    try:
        rev = current_revision(settings.db_url)
        return {"ok": True, "detail": f"{settings.db_url} (schema {rev or 'not created yet'})"}
    except Exception as e:  # noqa: BLE001 - reported, not raised
        return {"ok": False, "detail": f"{settings.db_url}: {str(e).splitlines()[0]}"}


def _ray(settings: Settings) -> dict:
    if not settings.ray_address:
        return {"ok": False, "detail": "embedded Ray not running (run `kiln up`)"}
    try:
        from services.dispatcher_client import connect_ray  # noqa: PLC0415

        connect_ray(settings)
        import ray  # noqa: PLC0415

        nodes = [n for n in ray.nodes() if n.get("Alive")]
        res = ray.cluster_resources()
        return {"ok": True, "detail": f"{settings.ray_address} (ray {ray.__version__}, {len(nodes)} node(s), "
                                      f"{res.get('CPU', 0):g} CPUs, {res.get('GPU', 0):g} GPUs)"}
    except Exception as e:  # noqa: BLE001
        return {"ok": False, "detail": f"{settings.ray_address}: {str(e).splitlines()[0]}"}


def _torch() -> dict:
    try:
        import torch  # noqa: PLC0415

        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(gpus))
        return {"ok": True, "detail": f"torch {torch.__version__}; GPUs seen here: {gpus}{f' ({names})' if names else ''}"}
    except Exception as e:  # noqa: BLE001
        return {"ok": False, "detail": f"torch: {e}"}


def check_all(settings: Settings) -> dict:
    resolved = stack.resolve(settings)
    try:
        version = metadata.version("kiln")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return {
        "kiln_version": version,
        "python": platform.python_version(),
        "checks": {"redis": _redis(resolved), "database": _database(resolved), "ray": _ray(resolved),
                   "torch": _torch()},
        "settings": {"KILN_HOME": str(settings.kiln_home),
                     "KILN_REDIS_URL": settings.redis_url or f"(embedded) {resolved.redis_url or 'not running'}",
                     "KILN_DB_URL": settings.db_url, "KILN_ARTIFACTS": settings.artifacts,
                     "RAY_ADDRESS": settings.ray_address or f"(embedded) {resolved.ray_address or 'not running'}",
                     "KILN_MAX_RUNNING_JOBS": settings.max_running_jobs or "no cap",
                     "KILN_MAX_RUNNING_PER_USER": settings.max_running_per_user or "no cap",
                     "KILN_USER": settings.user},
    }
