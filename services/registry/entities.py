"""Plain records the registry hands to callers. SQL rows never leave this package; these do.

Each record has ``to_dict()`` with JSON-friendly values (ISO 8601 UTC timestamps, states as strings)
for ``--json`` output and the HTTP API.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from shared.states import JobState


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


@dataclass(frozen=True)
class JobRecord:
    """The durable record of a job. ``attempt`` is 1-based: a job runs at most ``1 + max_retries`` times."""

    id: str
    name: str
    kind: str
    user: str
    spec_json: str
    priority: int
    state: JobState
    attempt: int
    max_retries: int
    submitted_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    metrics: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    checkpoint_uri: str | None = None

    @property
    def spec(self) -> dict[str, Any]:
        """The job spec as submitted (parsed from ``spec_json``)."""
        return json.loads(self.spec_json)

    @property
    def retries_left(self) -> int:
        return max(0, self.max_retries - (self.attempt - 1))

    @property
    def is_terminal(self) -> bool:
        return self.state.is_terminal()

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "spec_json"}
        d["spec"] = self.spec
        d["state"] = self.state.value
        for key in ("submitted_at", "started_at", "finished_at"):
            d[key] = _iso(d[key])
        return d


@dataclass(frozen=True)
class Lineage:
    """Where a model version came from: the job, the data it saw, and the code that trained it."""

    job_id: str | None = None
    dataset_fingerprint: str | None = None
    kiln_version: str | None = None
    git_commit: str | None = None
    trained_from: str | None = None  # "name:version" of the version this one was trained from

    def to_dict(self) -> dict[str, str | None]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class ModelVersion:
    """One registered version of a model, with everything recorded about it."""

    name: str
    version: int
    kind: str
    status: str
    created_at: datetime
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    lineage: Lineage = field(default_factory=Lineage)
    uid: str = ""  # unique for ever, unlike name:version (a deleted number is given out again)
    description: str | None = None

    @property
    def ref(self) -> str:
        """``name:version``, the form ``parse_ref`` reads back."""
        return f"{self.name}:{self.version}"

    @property
    def job_id(self) -> str | None:
        return self.lineage.job_id

    def summary(self) -> dict[str, Any]:
        """The fields ``kiln models list --json`` prints, with typed values."""
        return {
            "name": self.name,
            "version": self.version,
            "kind": self.kind,
            "created_at": _iso(self.created_at),
            "params": dict(self.params),
            "metrics": dict(self.metrics),
            "tags": dict(self.tags),
            "aliases": list(self.aliases),
            "job_id": self.job_id,
        }

    def to_dict(self) -> dict[str, Any]:
        """Everything recorded: the summary plus status, uid, description, artifacts and lineage."""
        return {
            **self.summary(),
            "uid": self.uid,
            "status": self.status,
            "description": self.description,
            "artifacts": dict(self.artifacts),
            "lineage": self.lineage.to_dict(),
        }


@dataclass(frozen=True)
class RegisteredModel:
    """A named model: its versions are numbered 1, 2, 3... and may carry aliases (``name@alias``)."""

    name: str
    kind: str
    created_at: datetime
    description: str | None = None
    latest_version: int | None = None
    tags: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "created_at": _iso(self.created_at),
            "description": self.description,
            "latest_version": self.latest_version,
            "tags": dict(self.tags),
            "aliases": dict(self.aliases),
        }
