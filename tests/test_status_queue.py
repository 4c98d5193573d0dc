"""StatusStore and JobQueue against a real Redis."""
import pytest

from services.queue import JobQueue
from shared import keys
from shared.errors import InvalidTransition
from shared.states import JobState
from shared.status import LOG_MAXLEN, StatusStore


def test_hash_roundtrip_and_types(redis_client):
    st = StatusStore(redis_client)
    st.create("j1", {"name": "m", "attempt": 1, "priority": 3, "submitted_at": 12.5})
    got = st.get("j1")
    assert got["state"] == "QUEUED" and got["attempt"] == 1 and got["priority"] == 3 and got["submitted_at"] == 12.5
    assert redis_client.exists(keys.job("j1"))
    assert st.get("nope") is None


def test_state_machine_enforced_in_redis(redis_client):
    st = StatusStore(redis_client)
    st.create("j1", {})
    st.set_state("j1", JobState.STARTING)
    st.set_state("j1", JobState.RUNNING)
    st.set_state("j1", JobState.SUCCEEDED)
    with pytest.raises(InvalidTransition):
        st.set_state("j1", JobState.RUNNING)
    assert st.get("j1")["state"] == "SUCCEEDED"


def test_late_report_never_touches_a_terminal_job(redis_client):
    st = StatusStore(redis_client)
    st.create("j1", {})
    st.report("j1", progress=0.5, throughput=1000)
    assert st.get("j1")["progress"] == 0.5 and st.get("j1")["heartbeat"] > 0
    st.set_state("j1", JobState.CANCELLED)
    st.report("j1", progress=0.9)
    assert st.get("j1")["progress"] == 0.5
    st.report("gone", progress=0.1)  # no hash: nothing is created
    assert st.get("gone") is None


def test_log_stream_is_bounded_and_ordered(redis_client):
    st = StatusStore(redis_client)
    for i in range(5):
        st.log("j1", f"line {i}")
    entries = st.read_logs("j1")
    assert [e["msg"] for _, e in entries] == [f"line {i}" for i in range(5)]
    after = entries[2][0]
    assert [e["msg"] for _, e in st.read_logs("j1", after)] == ["line 3", "line 4"]
    pipe = redis_client.pipeline()
    for i in range(LOG_MAXLEN + 500):
        st.log("j2", "x", pipeline=pipe)
    pipe.execute()
    assert redis_client.xlen(keys.log("j2")) < LOG_MAXLEN + 500


def test_queue_orders_by_priority_then_time(redis_client):
    q = JobQueue(redis_client)
    q.push("low-early", priority=0, submitted_at=100.0)
    q.push("high-late", priority=5, submitted_at=200.0)
    q.push("low-late", priority=0, submitted_at=150.0)
    q.push("neg", priority=-1, submitted_at=1.0)
    assert q.ids() == ["high-late", "low-early", "low-late", "neg"]
    assert q.position("low-late") == 2 and len(q) == 4
    assert q.claim("low-early") is True
    assert q.claim("low-early") is False  # only one claimer wins
    assert "low-early" not in q


def test_a_note_is_no_heartbeat(redis_client):
    """The dispatcher's notes (why a job waits) update the hash but are no sign of a runner's life."""
    st = StatusStore(redis_client)
    st.create("j1", {})
    st.report("j1", heartbeat=False, reason="waiting for capacity")
    got = st.get("j1")
    assert got["reason"] == "waiting for capacity" and "heartbeat" not in got
    st.report("j1", progress=0.1)
    assert st.get("j1")["heartbeat"] > 0
