"""ModelRegistry on SQLite and PostgreSQL: versions, lookups, aliases, tags, metrics, deletes."""
from __future__ import annotations

from datetime import timezone

import pytest
from sqlalchemy import func, select

from services.registry import ModelRef, VersionInUse, parse_ref
from services.registry.schema import (SqlArtifact, SqlMetric, SqlModelAlias, SqlParam, SqlVersionTag)
from shared.errors import InvalidParameter, NotFound
from tests.registry.factories import register


def test_register_creates_the_model_and_numbers_versions(db):
    versions = [register(db, job_id=f"job-{i}") for i in range(3)]
    assert [v.version for v in versions] == [1, 2, 3]
    (model,) = db.models.list_models()
    assert (model.name, model.kind, model.latest_version) == ("w2v", "word2vec", 3)
    v = versions[0]
    assert v.params == {"dim": 100, "window": 5, "sg": True, "model": "skipgram"}
    assert v.metrics == {"analogy_accuracy": 0.5, "loss": 1.25}
    assert v.artifacts == {"vectors": "file:///tmp/vectors.bin", "vocab": "file:///tmp/vocab.json"}
    assert v.lineage.to_dict() == {"job_id": "job-0", "dataset_fingerprint": "sha256:abc",
                                   "kiln_version": "0.1.0", "git_commit": "deadbeef", "trained_from": None}
    assert v.created_at.tzinfo is not None and v.created_at.utcoffset().total_seconds() == 0
    assert v.ref == "w2v:1" and v.status == "READY"


def test_round_trip_through_the_database_keeps_types_and_utc(db):
    register(db, tags={"team": "search"}, lineage={"corpus_fingerprint": "sha256:xyz"}, job_id="j")
    v = db.models.get_version("w2v", 1)
    assert v.params["dim"] == 100 and v.params["sg"] is True
    assert v.tags == {"team": "search"}
    assert v.lineage.dataset_fingerprint == "sha256:xyz" and v.job_id == "j"
    assert v.created_at.tzinfo == timezone.utc
    d = v.to_dict()
    assert d["created_at"].endswith("+00:00") and d["lineage"]["job_id"] == "j"


def test_models_of_different_names_count_separately(db):
    register(db, name="a")
    register(db, name="a")
    assert register(db, name="b").version == 1
    assert [(v.name, v.version) for v in db.models.list_versions()] == [("a", 1), ("a", 2), ("b", 1)]
    assert [v.version for v in db.models.list_versions("a")] == [1, 2]


def test_get_by_version_latest_and_alias(db):
    for _ in range(3):
        register(db)
    assert db.models.get_version("w2v").version == 3
    assert db.models.get_version("w2v", 2).version == 2
    v = db.models.set_alias("w2v", "prod", 2)
    assert v.aliases == ("prod",)
    assert db.models.get_version("w2v", alias="prod").version == 2
    db.models.set_alias("w2v", "prod", 1)  # moving an alias
    assert db.models.get_version(*parse_ref("w2v@prod")).version == 1
    assert db.models.get_version("w2v", 2).aliases == ()
    assert db.models.list_models()[0].aliases == {"prod": 1}
    db.models.delete_alias("w2v", "prod")
    with pytest.raises(NotFound):
        db.models.get_version("w2v", alias="prod")


def test_parse_ref():
    assert parse_ref("w2v") == ModelRef("w2v", None, None)
    assert parse_ref("w2v:3") == ModelRef("w2v", 3, None)
    assert parse_ref("w2v@prod") == ModelRef("w2v", None, "prod")
    assert parse_ref("w2v@latest") == ModelRef("w2v")
    for bad in ("", "w2v:", "w2v:0", "w2v:x", "@prod", "w2v@", "w2v@3", "bad name"):
        with pytest.raises(InvalidParameter):
            parse_ref(bad)


def test_not_found_errors_carry_the_code(db):
    register(db)
    for call in (lambda: db.models.get_version("nope"),
                 lambda: db.models.get_version("w2v", 9),
                 lambda: db.models.get_version("w2v", alias="prod"),
                 lambda: db.models.list_versions("nope"),
                 lambda: db.models.set_alias("w2v", "prod", 9),
                 lambda: db.models.delete_alias("w2v", "prod"),
                 lambda: db.models.set_tag("nope", "k", "v"),
                 lambda: db.models.delete_version("w2v", 9),
                 lambda: db.models.log_metrics("w2v", 9, {"x": 1.0})):
        with pytest.raises(NotFound) as e:
            call()
        assert e.value.code == "RESOURCE_DOES_NOT_EXIST"


def test_tags_on_models_and_versions(db):
    register(db)
    db.models.set_tag("w2v", "owner", "ada")
    db.models.set_tag("w2v", "owner", "grace")  # overwrite
    db.models.set_tag("w2v", "stage", "candidate", version=1)
    assert db.models.get_model("w2v").tags == {"owner": "grace"}
    # a version carries its model's tags, and its own win
    assert db.models.get_version("w2v", 1).tags == {"owner": "grace", "stage": "candidate"}
    db.models.set_tag("w2v", "owner", "linus", version=1)
    assert db.models.get_version("w2v", 1).tags == {"owner": "linus", "stage": "candidate"}
    db.models.delete_tag("w2v", "stage", version=1)
    db.models.delete_tag("w2v", "owner", version=1)
    assert db.models.get_version("w2v", 1).tags == {"owner": "grace"}
    with pytest.raises(NotFound):
        db.models.delete_tag("w2v", "stage", version=1)


def test_log_metrics_replaces_final_values_and_keeps_steps(db):
    register(db)
    db.models.log_metrics("w2v", 1, {"loss": 2.0}, step=1)
    db.models.log_metrics("w2v", 1, {"loss": 1.5, "similarity": 0.6}, step=2)
    v = db.models.log_metrics("w2v", 1, {"analogy_accuracy": 0.55})
    assert v.metrics == {"analogy_accuracy": 0.55, "loss": 1.25, "similarity": 0.6}


def test_delete_version_cascades_to_its_children(db):
    register(db, tags={"a": "b"})
    register(db)
    db.models.set_alias("w2v", "prod", 1)
    with pytest.raises(VersionInUse, match=r"w2v:1 is w2v@prod: move the alias first, or delete with --force") as e:
        db.models.delete_version("w2v", 1)
    assert e.value.code == "RESOURCE_IN_USE" and e.value.exit_code == 2
    assert db.models.get_version("w2v", 1).tags == {"a": "b"}  # refused: nothing removed
    gone = db.models.delete_version("w2v", 1, force=True)
    assert gone.ref == "w2v:1" and gone.aliases == ("prod",)
    assert [v.version for v in db.models.list_versions("w2v")] == [2]
    assert register(db).version == 3  # numbers are not reused while a higher one exists
    remaining = {SqlParam: 2 * 4, SqlMetric: 2 * 2, SqlArtifact: 2 * 2, SqlVersionTag: 0, SqlModelAlias: 0}
    with db.session() as s:  # versions 2 and 3 are left; version 1's rows are gone, not orphaned
        for table, expected in remaining.items():
            assert s.scalar(select(func.count()).select_from(table)) == expected, table.__tablename__

def test_delete_model_removes_all_versions(db):
    register(db)
    register(db, name="other")
    db.models.delete_model("w2v")
    assert [m.name for m in db.models.list_models()] == ["other"]
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(SqlParam)) == 4


def test_bad_input_is_refused_before_writing(db):
    bad = [dict(name="has space"), dict(metrics={"loss": float("nan")}), dict(metrics={"loss": "low"}),
           dict(params={"f": object()}), dict(artifacts={"vectors": 3}), dict(lineage={"who": "me"}),
           dict(job_id="a", lineage={"job_id": "b"}), dict(kind="")]
    for overrides in bad:
        with pytest.raises(InvalidParameter) as e:
            register(db, **overrides)
        assert e.value.code == "INVALID_PARAMETER_VALUE"
    assert db.models.list_models() == []
    register(db)
    with pytest.raises(InvalidParameter, match="holds word2vec models"):
        register(db, kind="cnn")
    with pytest.raises(InvalidParameter, match="reserved"):
        db.models.set_alias("w2v", "latest", 1)
    with pytest.raises(InvalidParameter):
        db.models.get_version("w2v", 1, alias="prod")


def test_entities_are_plain_and_json_friendly(db):
    import json
    v = register(db)
    json.dumps(v.to_dict())
    json.dumps([m.to_dict() for m in db.models.list_models()])
    assert type(v).__module__ == "services.registry.entities"
