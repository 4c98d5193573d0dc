"""Registry search: typed params, version uids, descriptions, parent versions, and search indexes.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27

- ``model_versions.uid``: a random id per version that is never reused (caches are keyed by it; a
  deleted ``name:version`` is handed out again). Filled for existing rows.
- ``model_versions.description`` and ``trained_from`` (lineage: the version a model was trained from).
- ``model_params.num``: the value again when it is a number, so filters compare numbers in SQL.
  Params written by kiln 0.1's word2vec pipeline were stringified (``"100"``, ``"True"``, ``""`` for
  None); they are turned back into typed JSON here (numbers, booleans, null, JSON lists/objects).
- Indexes for ``kiln models list`` filters and orders.

Columns are only added (SQLite ALTER TABLE ADD COLUMN), never by rebuilding a table: with foreign keys
on, SQLite's batch rebuild would drop the parent table and cascade-delete its children.
"""
from __future__ import annotations

import json
import math
import uuid

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_versions = sa.table("model_versions", sa.column("id", sa.Integer), sa.column("uid", sa.String))
_params = sa.table("model_params", sa.column("version_id", sa.Integer), sa.column("key", sa.String),
                   sa.column("value", sa.Text), sa.column("num", sa.Double))


def _typed(value):
    """A legacy stringified param back to its JSON type; anything else unchanged."""
    if not isinstance(value, str):
        return value
    if value in ("", "None"):
        return None
    if value in ("True", "False"):
        return value == "True"
    try:
        return int(value)
    except ValueError:
        pass
    try:
        number = float(value)
        return number if math.isfinite(number) else value
    except ValueError:
        pass
    if value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def upgrade() -> None:
    op.add_column("model_versions", sa.Column("uid", sa.String(32), nullable=True))
    op.add_column("model_versions", sa.Column("description", sa.Text(), nullable=True))
    op.add_column("model_versions", sa.Column("trained_from", sa.String(200), nullable=True))
    op.add_column("model_params", sa.Column("num", sa.Double(), nullable=True))

    conn = op.get_bind()
    for (version_id,) in conn.execute(sa.select(_versions.c.id)).all():
        conn.execute(_versions.update().where(_versions.c.id == version_id).values(uid=uuid.uuid4().hex))
    for version_id, key, text in conn.execute(sa.select(_params.c.version_id, _params.c.key, _params.c.value)).all():
        value = _typed(json.loads(text))
        conn.execute(_params.update().where(_params.c.version_id == version_id, _params.c.key == key)
                     .values(value=json.dumps(value, sort_keys=True), num=_number(value)))

    op.create_index("ix_model_versions_uid", "model_versions", ["uid"], unique=True)
    op.create_index("ix_model_versions_created_at", "model_versions", ["created_at"])
    op.create_index("ix_model_params_key_num", "model_params", ["key", "num"])
    op.create_index("ix_model_metrics_key_step_value", "model_metrics", ["key", "step", "value"])
    op.create_index("ix_model_version_tags_key_value", "model_version_tags", ["key", "value"])


def downgrade() -> None:
    op.drop_index("ix_model_version_tags_key_value", table_name="model_version_tags")
    op.drop_index("ix_model_metrics_key_step_value", table_name="model_metrics")
    op.drop_index("ix_model_params_key_num", table_name="model_params")
    op.drop_index("ix_model_versions_created_at", table_name="model_versions")
    op.drop_index("ix_model_versions_uid", table_name="model_versions")
    # Typed params stay typed: 0001's code reads any JSON value. ALTER TABLE DROP COLUMN: SQLite >= 3.35.
    op.drop_column("model_params", "num")
    for column in ("trained_from", "description", "uid"):
        op.drop_column("model_versions", column)
