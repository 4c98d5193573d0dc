"""Loading many model versions at once, as plain rows (no ORM objects): what search results need.

A search page of 500 versions with 50 tags each is 25,000 tag rows; building ORM objects for them costs
more than the search itself, so ``load_versions`` reads tuples with one query per table and builds the
``ModelVersion`` entities directly, with the same rules as ``SqlModelVersion.to_entity``.
"""
from __future__ import annotations

import json
from collections import defaultdict
from typing import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.registry.entities import Lineage, ModelVersion
from services.registry.schema import (SqlArtifact, SqlMetric, SqlModelAlias, SqlModelTag, SqlModelVersion, SqlParam,
                                      SqlRegisteredModel, SqlVersionTag, metric_value)

_CHUNK = 5000  # ids per IN (...) list: well under SQLite's limit on bound parameters


def _chunks(ids: list[int]) -> Iterable[list[int]]:
    for i in range(0, len(ids), _CHUNK):
        yield ids[i:i + _CHUNK]


def load_versions(s: Session, ids: list[int]) -> dict[int, ModelVersion]:
    """``{row id: ModelVersion}`` for the versions with these row ids (missing ids are left out)."""
    mv, m = SqlModelVersion, SqlRegisteredModel
    conn = s.connection()  # Core rows fetched whole (.all()): ORM rows, or fetching one by one, cost twice as much
    heads, model_ids = {}, set()
    params, metrics, artifacts = defaultdict(dict), defaultdict(dict), defaultdict(dict)
    tags, model_tags, aliases = defaultdict(dict), defaultdict(dict), defaultdict(list)
    for chunk in _chunks(ids):
        for row in conn.execute(select(mv.id, mv.model_id, m.name, m.kind, m.description.label("model_description"),
                                    mv.version, mv.status, mv.created_at, mv.uid, mv.description, mv.job_id,
                                    mv.dataset_fingerprint, mv.kiln_version, mv.git_commit, mv.trained_from)
                             .join(m, m.id == mv.model_id).where(mv.id.in_(chunk))).all():
            heads[row.id] = row
            model_ids.add(row.model_id)
        for vid, key, value in conn.execute(select(SqlParam.version_id, SqlParam.key, SqlParam.value)
                                         .where(SqlParam.version_id.in_(chunk))).all():
            params[vid][key] = json.loads(value)
        finals = defaultdict(dict)
        for vid, key, value, step in conn.execute(select(SqlMetric.version_id, SqlMetric.key, SqlMetric.value,
                                                      SqlMetric.step).where(SqlMetric.version_id.in_(chunk))).all():
            # the value logged without a step wins; else the one at the highest step
            rank = (1, 0) if step is None else (0, step)
            if key not in finals[vid] or rank > finals[vid][key][0]:
                finals[vid][key] = (rank, value)
        for vid, values in finals.items():
            metrics[vid] = {k: metric_value(k, v) for k, (_, v) in values.items()}  # counts as ints
        for vid, name, uri in conn.execute(select(SqlArtifact.version_id, SqlArtifact.name, SqlArtifact.uri)
                                        .where(SqlArtifact.version_id.in_(chunk))).all():
            artifacts[vid][name] = uri
        for vid, key, value in conn.execute(select(SqlVersionTag.version_id, SqlVersionTag.key, SqlVersionTag.value)
                                         .where(SqlVersionTag.version_id.in_(chunk))).all():
            tags[vid][key] = value
        for vid, alias in conn.execute(select(SqlModelAlias.version_id, SqlModelAlias.alias)
                                    .where(SqlModelAlias.version_id.in_(chunk))).all():
            aliases[vid].append(alias)
    for chunk in _chunks(sorted(model_ids)):
        for mid, key, value in conn.execute(select(SqlModelTag.model_id, SqlModelTag.key, SqlModelTag.value)
                                         .where(SqlModelTag.model_id.in_(chunk))).all():
            model_tags[mid][key] = value
    out = {}
    for vid, h in heads.items():
        merged = {**model_tags.get(h.model_id, {}), **tags.get(vid, {})}  # the version's own tags win
        out[vid] = ModelVersion(
            name=h.name, version=h.version, kind=h.kind, status=h.status, created_at=h.created_at,
            uid=h.uid or "", description=h.description or h.model_description,
            params=dict(sorted(params.get(vid, {}).items())), metrics=dict(sorted(metrics.get(vid, {}).items())),
            artifacts=dict(sorted(artifacts.get(vid, {}).items())), tags=dict(sorted(merged.items())),
            aliases=tuple(sorted(aliases.get(vid, ()))),
            lineage=Lineage(job_id=h.job_id, dataset_fingerprint=h.dataset_fingerprint,
                            kiln_version=h.kiln_version, git_commit=h.git_commit, trained_from=h.trained_from))
    return out
