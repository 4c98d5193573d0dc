"""Finding or starting the dispatcher: a named, detached Ray actor that Ray restarts if it dies."""
from __future__ import annotations

import os
import sys
import time

from shared import keys
from shared.config import Settings
from shared.errors import Unavailable

DISPATCHER_NAME = "dispatcher"
HEARTBEAT_FRESH_S = 10.0
"""A dispatcher heartbeat younger than this means the dispatcher is alive; no Ray call is needed."""


def connect_ray(settings: Settings) -> None:
    """Connect this process to the cluster at ``settings.ray_address`` (once)."""
    if not settings.ray_address:
        raise Unavailable("no Ray cluster: run `kiln up`, or set RAY_ADDRESS")
    if "ray" not in sys.modules:  # Ray reads its auth settings when first imported
        from services.stack import prepare_ray_client  # noqa: PLC0415

        prepare_ray_client(settings)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray  # noqa: PLC0415 - kept out of the read-only commands' import path

    if ray.is_initialized():
        return
    try:
        ray.init(address=settings.ray_address, namespace=settings.namespace, logging_level="ERROR",
                 log_to_driver=False, configure_logging=True)
    except (ConnectionError, RuntimeError) as e:
        raise Unavailable(f"cannot reach Ray at {settings.ray_address}: {str(e).splitlines()[0]}") from None


def dispatcher_alive(redis_client) -> bool:
    beat = redis_client.get(keys.DISPATCHER_HEARTBEAT)
    return beat is not None and time.time() - float(beat) < HEARTBEAT_FRESH_S


def ensure_dispatcher(settings: Settings, *, redis_client=None):
    """Make sure the dispatcher actor runs in the cluster; return its handle (None if only seen via heartbeat)."""
    if redis_client is not None and dispatcher_alive(redis_client):
        return None
    connect_ray(settings)
    import ray  # noqa: PLC0415

    from services.dispatcher import Dispatcher  # noqa: PLC0415

    actor_cls = ray.remote(Dispatcher)
    handle = actor_cls.options(
        name=DISPATCHER_NAME, namespace=settings.namespace, lifetime="detached", get_if_exists=True,
        max_restarts=-1, max_task_retries=-1, num_cpus=0, max_concurrency=4,
    ).remote(settings.to_dict())
    ray.get(handle.ping.remote(), timeout=60)
    return handle


def stop_dispatcher(settings: Settings) -> bool:
    """Kill the dispatcher actor (no restart). False if there was none."""
    connect_ray(settings)
    import ray  # noqa: PLC0415

    try:
        handle = ray.get_actor(DISPATCHER_NAME, namespace=settings.namespace)
    except ValueError:
        return False
    ray.kill(handle, no_restart=True)
    return True
