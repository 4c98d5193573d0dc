import pytest

from shared.errors import InvalidTransition
from shared.states import ALLOWED, JobState, check_transition


def test_terminal_states():
    assert {s for s in JobState if s.is_terminal()} == {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED}


@pytest.mark.parametrize("terminal,new", [(t, n) for t in JobState if t.is_terminal() for n in JobState if n != t])
def test_terminal_states_never_change(terminal, new):
    with pytest.raises(InvalidTransition) as e:
        check_transition(terminal, new)
    assert e.value.code == "INVALID_STATE_TRANSITION"


def test_happy_path_and_retry():
    path = [JobState.QUEUED, JobState.STARTING, JobState.RUNNING, JobState.QUEUED, JobState.STARTING,
            JobState.RUNNING, JobState.SUCCEEDED]
    for old, new in zip(path, path[1:]):
        assert check_transition(old, new) == new


def test_cancel_allowed_from_every_live_state():
    for s in JobState:
        if not s.is_terminal():
            assert JobState.CANCELLED in ALLOWED[s]


def test_queued_cannot_jump_to_running():
    with pytest.raises(InvalidTransition):
        check_transition("QUEUED", "RUNNING")
