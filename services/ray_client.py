"""Connecting this process to a Ray cluster, with a timeout and a one-line error instead of a hang.

``connect_ray(settings)`` joins the cluster at ``settings.ray_address`` (the embedded one's token is
used only for the embedded cluster: ``settings.ray_auth_token_path``, set by services.stack.resolve).
Before Ray is asked, the address is probed over TCP, because ``ray.init`` retries an unreachable
address for minutes.
"""
from __future__ import annotations

import os
import socket
import sys

from shared.config import Settings
from shared.errors import Unavailable

PROBE_TIMEOUT_S = 5.0
"""How long to wait for the Ray address to accept a TCP connection."""


def use_ray_token(path: str) -> None:
    """Make this process (and its children) authenticate to Ray with the token in ``path``."""
    os.environ["RAY_AUTH_MODE"] = "token"
    os.environ["RAY_AUTH_TOKEN_PATH"] = str(path)
    os.environ.pop("RAY_AUTH_TOKEN", None)


def host_port(address: str) -> tuple[str, int] | None:
    """(host, port) of a ``host:port`` or ``ray://host:port`` address; None for ``auto`` and the like."""
    rest = address.split("://", 1)[1] if "://" in address else address
    rest = rest.split("/", 1)[0]
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host.strip("[]") or "127.0.0.1", int(port)


def probe(address: str, *, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """Unavailable unless something accepts a TCP connection at ``address`` within ``timeout_s``."""
    hp = host_port(address)
    if hp is None:
        return
    try:
        with socket.create_connection(hp, timeout=timeout_s):
            pass
    except OSError as e:
        reason = "timed out" if isinstance(e, TimeoutError) else (e.strerror or type(e).__name__)
        raise Unavailable(f"cannot reach Ray at {address}: {reason} "
                          f"(set RAY_ADDRESS to a running cluster, or unset it to use the local stack)") from None


def connect_ray(settings: Settings) -> None:
    """Connect this process to the cluster at ``settings.ray_address`` (once). Unavailable if it cannot."""
    if not settings.ray_address:
        raise Unavailable("no Ray cluster: run `kiln up`, or set RAY_ADDRESS")
    if "ray" not in sys.modules and settings.ray_auth_token_path:  # Ray reads its auth settings on import
        use_ray_token(settings.ray_auth_token_path)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray  # noqa: PLC0415 - kept out of the read-only commands' import path

    if ray.is_initialized():
        return
    probe(settings.ray_address)
    try:
        ray.init(address=settings.ray_address, namespace=settings.namespace, logging_level="ERROR",
                 log_to_driver=False, configure_logging=True)
    except Exception as e:  # noqa: BLE001 - Ray raises ConnectionError, RuntimeError, its own types...
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise Unavailable(f"cannot reach Ray at {settings.ray_address}: {first}") from None


def cluster_nodes() -> list[dict]:
    """The connected cluster's live nodes: node_id, address, CPUs, GPUs, memory (bytes)."""
    import ray  # noqa: PLC0415

    nodes = []
    for n in ray.nodes():
        if not n.get("Alive"):
            continue
        res = n.get("Resources", {})
        nodes.append({"node_id": n["NodeID"], "address": n.get("NodeManagerAddress"),
                      "cpus": res.get("CPU", 0.0), "gpus": res.get("GPU", 0.0),
                      "memory_bytes": int(res.get("memory", 0)), "head": "node:__internal_head__" in res})
    return nodes
