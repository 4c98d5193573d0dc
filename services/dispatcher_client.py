"""Finding or starting the dispatcher: a named, detached Ray actor that Ray restarts if it dies."""
from __future__ import annotations

import time

from services.ray_client import connect_ray
from shared import keys
from shared.config import Settings
from shared.errors import Unavailable

DISPATCHER_NAME = "dispatcher"
HEARTBEAT_FRESH_S = 10.0
"""A dispatcher heartbeat younger than this means the dispatcher is alive; no Ray call is needed."""
PING_TIMEOUT_S = 60.0
"""How long a new (or restarted) dispatcher may take to answer its first ping."""

__all__ = ["DISPATCHER_NAME", "connect_ray", "dispatcher_alive", "ensure_dispatcher"]


def dispatcher_alive(redis_client) -> bool:
    beat = redis_client.get(keys.DISPATCHER_HEARTBEAT)
    return beat is not None and time.time() - float(beat) < HEARTBEAT_FRESH_S


def ensure_dispatcher(settings: Settings, *, redis_client=None):
    """Make sure the dispatcher actor runs in the cluster; return its handle (None if only seen via heartbeat).

    Unavailable (one line) if Ray cannot be reached or the dispatcher does not answer in time.
    """
    if redis_client is not None and dispatcher_alive(redis_client):
        return None
    connect_ray(settings)
    import ray  # noqa: PLC0415

    from services.dispatcher import Dispatcher  # noqa: PLC0415

    actor_cls = ray.remote(Dispatcher)
    try:
        handle = actor_cls.options(
            name=DISPATCHER_NAME, namespace=settings.namespace, lifetime="detached", get_if_exists=True,
            max_restarts=-1, max_task_retries=-1, num_cpus=0, max_concurrency=4,
        ).remote(settings.to_dict())
        ray.get(handle.ping.remote(), timeout=PING_TIMEOUT_S)
    except Exception as e:  # noqa: BLE001 - GetTimeoutError, RayActorError, lost connection...
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise Unavailable(f"the dispatcher did not start on Ray at {settings.ray_address}: {first}") from None
    return handle
