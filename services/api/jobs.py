"""/api/jobs: submit, list, status, logs (with a live Server-Sent-Events stream), curves, cancel, retry.

Bodies and answers use the field names of the CLI's ``--json``: a job is what ``kiln status --json``
prints. A spec is checked by the same ``validate_offline`` + ``JobService.submit`` as ``kiln submit``;
the job's ``user`` is always the token's user.
"""
from __future__ import annotations

import json
import threading
import time
from typing import Any, Iterator

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from services.api.auth import Principal, principal, require_owner
from services.api.body import answer, json_object, openapi_body
from services.api.data_roots import check_absolute, check_paths, raw_paths, spec_paths
from shared.errors import InvalidParameter, Unavailable
from shared.states import JobState

router = APIRouter(prefix="/api/jobs", tags=["jobs"])

FLAGS_HEADER = "x-kiln-flags"
"""cli/http_client.py sends it with a spec built from command-line flags."""
MAX_STREAMS = 128
"""Live log streams served at once; one more is refused with 503 (each holds a handler thread)."""
_streams = threading.BoundedSemaphore(MAX_STREAMS)
HEARTBEAT_S = 10.0
"""A comment line this often keeps a quiet log stream open through proxies and detects gone clients."""


def _state(request: Request):
    return request.app.state.kiln


@router.post("", status_code=201, summary="Submit a job",
             openapi_extra=openapi_body("the job spec, as in `kiln submit -f spec.yaml`",
                                        {"kind": "word2vec", "name": "news", "params": {"corpus": ["/data/news.txt"]}}))
def submit(request: Request, who: Principal = Depends(principal), spec: dict[str, Any] = Depends(json_object)) -> dict:
    """Validate and queue a job; answers with the new job (as ``kiln status --json``). The job's user is
    the caller's; a spec naming another user is refused. (A server built by ``create_app`` answers this
    route in services/api/submit_route.py, with the same ``prepare_job`` and group commit.)"""
    return answer(submit_job(request.app, who, spec, request.headers.get(FLAGS_HEADER) == "1"), 201)


def submit_job(app, who: Principal, spec: dict[str, Any], flags: bool) -> dict:
    """The submission itself (in a worker thread): ``prepare_job``, then stored and queued with the other
    submissions waiting at that moment (services/api/group_commit.py: ``JobService.submit_many``)."""
    return app.state.group_commit.submit(prepare_job(app, who, spec, flags))


def prepare_job(app, who: Principal, spec: dict[str, Any], flags: bool):
    """The submitted spec checked (in a worker thread: it reads the job's files): the caller's user, the
    data roots, ``validate_offline`` as ``kiln submit`` runs it. ``flags``: the spec was built from `kiln
    submit` flags, so messages name the flags, as the local CLI's do."""
    from services.jobs import validate_offline  # noqa: PLC0415

    if "user" in spec and spec["user"] != who.user:
        raise InvalidParameter(f"user: jobs submitted with this token belong to {who.user}, not {spec['user']!r}")
    data = {k: v for k, v in spec.items() if k != "user"}
    st = app.state.kiln
    check_absolute(raw_paths(data))
    check_paths(raw_paths(data), st.data_roots)  # before validation opens any of them
    validated = validate_offline(data, user=who.user, flags=flags)
    check_paths(spec_paths(validated), st.data_roots)
    return validated


@router.get("", summary="List jobs, newest first")
def list_jobs(request: Request, state: str | None = Query(None, description="QUEUED, RUNNING, SUCCEEDED, ..."),
              user: str | None = Query(None, max_length=128, description="only this user's jobs"),
              limit: int | None = Query(None), who: Principal = Depends(principal)) -> list[dict]:
    # limit and state are checked by JobService.list itself: the same message as `kiln jobs`
    svc = _state(request).job_service(who.user)
    if user is None:
        return answer(svc.list(state=state, limit=limit))
    views = svc.list(state=state, limit=limit if limit is not None and limit < 0 else None)  # raises for limit < 0
    # JobService.list has no user filter: filter its answer, then apply the limit.
    views = [v for v in views if v["user"] == user]
    return answer(views if limit is None else views[:limit])


@router.get("/{job_id}", summary="One job: state, progress, throughput, ETA, metrics, error")
def get_job(request: Request, job_id: str, who: Principal = Depends(principal)) -> dict:
    return answer(_state(request).job_service(who.user).get(job_id))


@router.post("/{job_id}/cancel", summary="Cancel a job (its owner or an admin)")
def cancel(request: Request, job_id: str, who: Principal = Depends(principal)) -> dict:
    svc = _state(request).job_service(who.user)
    require_owner(who, svc.get(job_id), "cancel")
    return answer(svc.cancel(job_id))


@router.post("/{job_id}/retry", status_code=201, summary="Submit a FAILED or CANCELLED job again (its owner or an admin)")
def retry(request: Request, job_id: str, who: Principal = Depends(principal)) -> dict:
    st = _state(request)
    svc = st.job_service(who.user)
    require_owner(who, svc.get(job_id), "retry")
    if st.data_roots:  # a job first submitted elsewhere (the local CLI) is held to this server's roots too
        from shared.specs import JobSpec  # noqa: PLC0415

        check_paths(spec_paths(JobSpec.model_validate_json(st.backends.db.jobs.get(job_id).spec_json)),
                    st.data_roots)
    return answer(svc.retry(job_id), 201)


@router.get("/{job_id}/series", summary="The job's progress points: loss and throughput over time")
def series(request: Request, job_id: str, after: str = Query("0-0", pattern=r"^[0-9]+-[0-9]+$"),
           who: Principal = Depends(principal)) -> dict:
    st = _state(request)
    st.job_service(who.user).get(job_id)  # 404 for an unknown job
    points = st.backends.status.read_series(job_id, after)
    return {"job_id": job_id, "points": [p for _, p in points], "last": points[-1][0] if points else after}


@router.get("/{job_id}/logs", summary="Log lines; with follow=true a text/event-stream until the job ends")
def logs(request: Request, job_id: str, follow: bool = False, who: Principal = Depends(principal)):
    st = _state(request)
    svc = st.job_service(who.user)
    svc.get(job_id)  # 404 before any stream starts
    if not follow:
        return [entry for entry in svc.logs(job_id)]
    if not _streams.acquire(blocking=False):
        raise Unavailable(f"the server already serves {MAX_STREAMS} live log streams; try again later")
    return StreamingResponse(_Stream(_events(st.backends, job_id)), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


class _Stream:
    """An event iterator that gives its MAX_STREAMS slot back exactly once: when it ends, is closed, or is
    dropped unstarted (a client that left before the first byte)."""

    def __init__(self, events: Iterator[str]):
        self.events = events
        self.held = True

    def __iter__(self):
        return self

    def __next__(self) -> str:
        try:
            return next(self.events)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self.held:
            self.held = False
            self.events.close()
            _streams.release()

    def __del__(self):
        self.close()


def _events(backends, job_id: str) -> Iterator[str]:
    """SSE: one ``data:`` event per log entry, ``: keepalive`` comments while quiet, and a final
    ``event: end`` with the job's state once it is terminal and the log is drained."""
    after, last_sent = "0-0", time.monotonic()
    while True:
        entries = backends.status.read_logs(job_id, after, block_ms=1000)
        for eid, entry in entries:
            after = eid
            yield f"id: {eid}\ndata: {json.dumps(entry)}\n\n"
            last_sent = time.monotonic()
        if not entries:
            state = JobState(backends.db.jobs.get(job_id).state)
            if state.is_terminal():
                for eid, entry in backends.status.read_logs(job_id, after):
                    yield f"id: {eid}\ndata: {json.dumps(entry)}\n\n"
                yield f"event: end\ndata: {json.dumps({'state': state.value})}\n\n"
                return
            if time.monotonic() - last_sent > HEARTBEAT_S:
                yield ": keepalive\n\n"
                last_sent = time.monotonic()
