"""One error hierarchy for kiln. User errors carry a code and map to an exit code in the CLI."""
from __future__ import annotations


class KilnError(Exception):
    """Base of every error kiln raises on purpose. ``code`` is stable; tests assert on it."""

    code = "INTERNAL_ERROR"
    exit_code = 1

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UserError(KilnError):
    """The user asked for something that cannot be done as asked."""

    code = "BAD_REQUEST"
    exit_code = 2


class InvalidParameter(UserError):
    """A spec, flag or file given by the user is invalid (exit code 2)."""

    code = "INVALID_PARAMETER_VALUE"
    exit_code = 2


class CorpusError(InvalidParameter):
    """The corpus cannot be read as text (binary data, a file gone after submit, a token pattern that
    takes too long): refused at submit, or fails the job with this one line (never retried)."""

    code = "INVALID_PARAMETER_VALUE"
    exit_code = 2


class NotFound(UserError):
    """A job, model, version or word does not exist (exit code 1)."""

    code = "RESOURCE_DOES_NOT_EXIST"
    exit_code = 1


class AlreadyExists(UserError):
    """Creating something that already exists."""

    code = "RESOURCE_ALREADY_EXISTS"
    exit_code = 1


class InvalidTransition(UserError):
    """A job state change that the state machine forbids (for example out of a terminal state)."""

    code = "INVALID_STATE_TRANSITION"
    exit_code = 1


class Unavailable(KilnError):
    """A backing service (Redis, Ray, the database) cannot be reached."""

    code = "SERVICE_UNAVAILABLE"
    exit_code = 3


class TrainingError(KilnError):
    """Training could not go on (for example: no word reaches min_count)."""

    code = "TRAINING_FAILED"
    exit_code = 1
