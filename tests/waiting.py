"""Waiting on states in tests: poll a predicate until it holds, never a fixed sleep."""
from __future__ import annotations

import time


def wait_for(predicate, timeout_s: float = 120, what: str = "condition", poll_s: float = 0.05):
    """``predicate()``'s first truthy value, polled every ``poll_s`` s; AssertionError after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll_s)
    raise AssertionError(f"timed out waiting for {what}")
