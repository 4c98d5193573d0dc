"""StatusStore: a job's live status (a Redis hash) and its log lines (a bounded Redis stream).

Redis holds what is live; SQL holds what must survive. Everything here may be lost (Redis wiped) and
rebuilt from SQL by the job service. Values are stored as strings and typed again on the way out.
"""
from __future__ import annotations

import json
import time
from typing import Any

import redis

from shared import keys
from shared.states import JobState, check_transition

LOG_MAXLEN = 10_000
"""Approximate number of log lines kept per job."""
SERIES_MAXLEN = 5_000
"""Approximate number of progress points (the loss and throughput curves) kept per job."""
SERIES_FIELDS = ("progress", "loss", "throughput", "epoch")
"""What a progress point records; a report with loss or throughput adds one."""

_FLOATS = {"progress", "throughput", "loss", "eta_s", "heartbeat", "updated_at", "submitted_at"}
_INTS = {"attempt", "priority", "epoch", "epochs"}
_JSON = {"metrics", "live", "placement"}


def _encode(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    if isinstance(value, JobState):
        return value.value
    if value is None:
        return ""
    return str(value)


def _decode(key: str, value: str) -> Any:
    if value == "":
        return None
    if key in _FLOATS:
        return float(value)
    if key in _INTS:
        return int(float(value))
    if key in _JSON:
        return json.loads(value)
    return value


def decode_hash(raw: dict) -> dict | None:
    """A job's hash as HGETALL answers it (bytes), typed as ``StatusStore.get`` returns it; None if empty
    (for callers that read many hashes in one pipeline)."""
    if not raw:
        return None
    return {k.decode(): _decode(k.decode(), v.decode()) for k, v in raw.items()}


class StatusStore:
    """Live job status in Redis. Multi-key writes take an optional ``pipeline=`` to be atomic."""

    def __init__(self, client: redis.Redis):
        self.redis = client

    # -- the hash -------------------------------------------------------------------------------
    def create(self, job_id: str, fields: dict, *, pipeline=None) -> dict:
        """Write a new job's hash (state QUEUED unless given); returns the hash as written (text values)."""
        data = {"state": JobState.QUEUED.value, "progress": 0.0, "updated_at": time.time(), **fields}
        mapping = {k: _encode(v) for k, v in data.items()}
        (pipeline or self.redis).hset(keys.job(job_id), mapping=mapping)
        return mapping

    def get(self, job_id: str) -> dict | None:
        return decode_hash(self.redis.hgetall(keys.job(job_id)))

    def exists(self, job_id: str) -> bool:
        return bool(self.redis.exists(keys.job(job_id)))

    def set_state(self, job_id: str, state: JobState | str, **fields) -> None:
        """Move a job to ``state`` if the state machine allows it (checked against the stored state).

        A missing hash (Redis wiped) is simply written. Raises InvalidTransition otherwise.
        """
        state = JobState(state)
        key = keys.job(job_id)
        with self.redis.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)
                    current = pipe.hget(key, "state")
                    if current is not None and current.decode() != state.value:
                        check_transition(current.decode(), state)
                    pipe.multi()
                    mapping = {"state": state.value, "updated_at": time.time(), **fields}
                    pipe.hset(key, mapping={k: _encode(v) for k, v in mapping.items()})
                    pipe.execute()
                    return
                except redis.WatchError:
                    continue

    def report(self, job_id: str, *, heartbeat: bool = True, **fields) -> None:
        """Update progress fields (progress, throughput, throughput_unit, loss, eta_s, epoch...) and the
        heartbeat (``heartbeat=False``: the dispatcher's notes, such as why a job waits, are no sign of life).

        Does nothing if the job's hash is gone or the job is already terminal, so a late report
        from a worker can never resurrect a finished job.
        """
        key = keys.job(job_id)
        now = time.time()
        stamps = {"heartbeat": now, "updated_at": now} if heartbeat else {"updated_at": now}
        mapping = {k: _encode(v) for k, v in {**fields, **stamps}.items()}
        # One round trip: update only if the hash exists and is not terminal.
        updated = self.redis.eval(_REPORT_LUA, 1, key, *[x for kv in mapping.items() for x in kv])
        if updated and (fields.get("loss") is not None or fields.get("throughput") is not None):
            point = {k: _encode(fields[k]) for k in SERIES_FIELDS if fields.get(k) is not None}
            self.redis.xadd(keys.series(job_id), {"t": f"{now:.3f}", **point}, maxlen=SERIES_MAXLEN,
                            approximate=True)

    def delete(self, job_id: str, *, pipeline=None) -> None:
        (pipeline or self.redis).delete(keys.job(job_id), keys.log(job_id), keys.series(job_id))

    # -- the log stream -------------------------------------------------------------------------
    def log(self, job_id: str, message: str, *, level: str = "INFO", pipeline=None) -> None:
        """Append one line to the job's log stream (bounded to about LOG_MAXLEN lines)."""
        (pipeline or self.redis).xadd(
            keys.log(job_id), {"t": f"{time.time():.3f}", "level": level, "msg": message},
            maxlen=LOG_MAXLEN, approximate=True)

    def read_logs(self, job_id: str, after: str = "0-0", *, block_ms: int | None = None,
                  count: int | None = None) -> list[tuple[str, dict]]:
        """Log entries after stream id ``after``: a list of (id, {"t", "level", "msg"})."""
        if block_ms is not None:
            res = self.redis.xread({keys.log(job_id): after}, block=block_ms, count=count)
            entries = res[0][1] if res else []
        else:
            entries = self.redis.xrange(keys.log(job_id), min=f"({after}" if after != "0-0" else "-", count=count)
        return [(eid.decode(), {k.decode(): v.decode() for k, v in fields.items()}) for eid, fields in entries]

    # -- the progress series (curves) ------------------------------------------------------------
    def read_series(self, job_id: str, after: str = "0-0", *, count: int | None = None) -> list[tuple[str, dict]]:
        """Progress points after stream id ``after``: (id, {"t", "progress", "loss", "throughput", "epoch"}),
        numbers typed; a field the report did not carry is absent."""
        entries = self.redis.xrange(keys.series(job_id), min=f"({after}" if after != "0-0" else "-", count=count)
        return [(eid.decode(), {k.decode(): float(v) for k, v in fields.items() if v})
                for eid, fields in entries]


_TERMINAL_STATES = " ".join(s.value for s in JobState if s.is_terminal())
_REPORT_LUA = f"""
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return 0 end
for s in string.gmatch('{_TERMINAL_STATES}', '%S+') do
  if state == s then return 0 end
end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
"""
