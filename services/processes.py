"""Processes known by more than their PID: start time, command line, process group (Linux /proc).

PIDs wrap, so a PID written to a file some time ago may now name an unrelated process. A process is
"the same" only if its start time (field 22 of /proc/PID/stat, in clock ticks since boot) matches
the one recorded with it. Process groups are safer still: the kernel never hands out a PID that is
still in use as a process group id, so while any member of a recorded group lives, the group id
names the same group.
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys
from pathlib import Path

PR_SET_PDEATHSIG = 1


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, or None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    # the command name (field 2) may hold spaces and parentheses: split after its closing ')'
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[19])


def running(pid: int) -> bool:
    """True if ``pid`` names a process that has not exited (a zombie waiting for its parent counts as exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return False
    return stat[stat.rindex(")") + 2:].split()[0] != "Z"


def cmdline(pid: int) -> str:
    """The process's command line joined by spaces ('' if it is gone or unreadable)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def is_same(pid: int | None, started: int | None, *, cmd_contains: str | None = None) -> bool:
    """True if ``pid`` is running (not a zombie), started at ``started`` ticks, and (if given) its command line
    has ``cmd_contains``."""
    if not pid or started is None or not running(pid):
        return False
    if start_time(pid) != started:
        return False
    return cmd_contains is None or cmd_contains in cmdline(pid)


def group_members(pgid: int) -> list[int]:
    """PIDs of this user's live processes in process group ``pgid`` (zombies excluded)."""
    members = []
    uid = os.getuid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid != uid:
                continue
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def kill_group(pgid: int | None, sig: int = signal.SIGKILL) -> list[int]:
    """Signal every live member of group ``pgid``; return the PIDs signalled (none if the group is gone).

    Only for a group known to be ours right now (its leader is our unreaped child, or one of its
    members is): a group id is free for reuse once all its members are gone.
    """
    if not pgid:
        return []
    return _signal(group_members(pgid), sig)


def kill_leftovers(pgid: int | None, leader_start: int | None, markers: tuple[str, ...],
                   sig: int = signal.SIGKILL) -> list[int]:
    """Signal what is left of a group recorded earlier, whose leader started at ``leader_start`` ticks.

    The group may have been reused since, so a member counts only if it started no earlier than the
    recorded leader and its command line has one of ``markers``; and nothing is touched if a process
    now holds the leader's PID with another start time (the group id then belongs to it).
    """
    if not pgid or leader_start is None:
        return []
    now_leader = start_time(pgid)
    if now_leader is not None and now_leader != leader_start:
        return []
    ours = [pid for pid in group_members(pgid)
            if (start_time(pid) or 0) >= leader_start and any(m in cmdline(pid) for m in markers)]
    return _signal(ours, sig)


def _signal(members: list[int], sig: int) -> list[int]:
    for pid in members:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
    return members


def die_with_parent(sig: int = signal.SIGTERM):
    """A ``preexec_fn`` for Popen: the child gets ``sig`` when the process that started it dies (even by SIGKILL)."""
    prctl = getattr(ctypes.CDLL(None, use_errno=True), "prctl", None) if sys.platform.startswith("linux") else None

    def _preexec() -> None:
        if prctl is not None:  # elsewhere the next `kiln up` cleans up by identity instead
            prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
        os.setpgrp()  # its own group, so its whole tree can be found and signalled as one

    return _preexec
