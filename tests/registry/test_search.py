"""Searching versions (what `kiln models list` runs): the filter language, then the SQL on SQLite and PostgreSQL."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from services.registry import Filter, OrderField, VersionQuery, parse_filter, parse_order
from services.registry.schema import SqlModelVersion
from shared.errors import InvalidParameter
from tests.registry.factories import register


# -- the filter language (no database) -----------------------------------------------------------------
@pytest.mark.parametrize("text,expected", [
    ("metric.accuracy>=0.9", Filter("metric", "accuracy", ">=", 0.9)),
    ("  metric.loss <  1e-2 ", Filter("metric", "loss", "<", 0.01)),
    ("metric.accuracy == 1", Filter("metric", "accuracy", "=", 1.0)),
    ("param.dim >= 100", Filter("param", "dim", ">=", 100)),
    ("param.model=skipgram", Filter("param", "model", "=", "skipgram")),
    ('param.model = "skip gram"', Filter("param", "model", "=", "skip gram")),
    ("param.sg=true", Filter("param", "sg", "=", True)),
    ("param.max_vocab=null", Filter("param", "max_vocab", "=", None)),
    ("param.tag != '100'", Filter("param", "tag", "!=", "100")),
    ("tag.team=nlp", Filter("tag", "team", "=", "nlp")),
    ("tag.data/source != 'web crawl'", Filter("tag", "data/source", "!=", "web crawl")),
    ("tag.n=100", Filter("tag", "n", "=", "100")),  # tag values are strings
])
def test_filters_parse_into_typed_conditions(text, expected):
    got = parse_filter(text)
    assert got == expected and type(got.value) is type(expected.value)


@pytest.mark.parametrize("text,needle", [
    ("", "bad filter"),
    ("metric.accuracy", "bad filter"),
    ("metrics.accuracy>1", "bad filter"),
    ("accuracy>1", "bad filter"),
    ("metric.>1", "bad filter"),
    ("metric.accuracy>", "no value"),
    ("metric.accuracy>high", "compares with a number"),
    ("metric.accuracy>nan", "compares with a number"),
    ("metric.accuracy>inf", "compares with a number"),
    ("metric.accuracy >> 3", "compares with a number"),
    ("param.model<skipgram", "compares params with a number"),
    ('param.dim<"200"', "compares params with a number"),
    ("param.sg>true", "compares params with a number"),
    ("param.corpus=[1, 2]", "compare params with a number, a string"),
    ("tag.team<nlp", "tags compare with = or != only"),
    ("metric.accuracy>0.5\n", "bad filter"),
])
def test_malformed_filters_are_one_line_errors(text, needle):
    with pytest.raises(InvalidParameter, match=needle) as e:
        parse_filter(text)
    assert "\n" not in str(e.value).replace("\\n", "") and e.value.exit_code == 2


def test_order_fields():
    assert parse_order("created_at") == OrderField("created_at")
    assert parse_order("metric.analogy_accuracy") == OrderField("metric", "analogy_accuracy")
    assert parse_order("tag.team") == OrderField("tag", "team")
    for bad in ("size", "metric.", "metric.a b", "created_at\n", "'; DROP TABLE model_versions; --"):
        with pytest.raises(InvalidParameter, match="--order-by"):
            parse_order(bad)


@pytest.mark.parametrize("kwargs,needle", [
    ({"name_glob": "../etc"}, "--name"), ({"name_glob": "a/b"}, "--name"), ({"name_glob": "w2v\n"}, "--name"),
    ({"limit": 0}, "--limit"), ({"limit": True}, "--limit"), ({"limit": 10**9}, "--limit"),
])
def test_bad_queries_are_refused(kwargs, needle):
    with pytest.raises(InvalidParameter, match=needle):
        VersionQuery(**kwargs)


# -- the SQL, on both backends ------------------------------------------------------------------------
def _q(*filters, **kw) -> VersionQuery:
    order = kw.pop("order", None)
    return VersionQuery(filters=tuple(parse_filter(f) for f in filters),
                        order=parse_order(order) if order else None, **kw)


def _refs(db, query) -> list[str]:
    return [v.ref for v in db.models.search(query)]


@pytest.fixture
def catalog(db):
    """a:1-3 and b:1-2 (word2vec), c:1 (cnn), with typed params, metrics and tags."""
    for i, (dim, acc, team) in enumerate([(50, 0.2, "nlp"), (100, 0.5, "nlp"), (300, 0.4, "search")]):
        register(db, name="a", params={"dim": dim, "sg": i % 2 == 0, "model": "skipgram", "lr": 0.025},
                 metrics={"acc": acc}, tags={"team": team}, job_id=f"job-a{i}")
    register(db, name="b", params={"dim": 200, "sg": False, "model": "cbow"}, metrics={"acc": 0.9},
             tags={"team": "nlp", "stage": "prod"})
    register(db, name="b", params={"dim": "200", "sg": True, "model": "cbow"}, metrics={"acc": 0.1, "loss": 2.0})
    register(db, name="c", kind="cnn", params={"arch": "lenet5"}, metrics={"accuracy": 0.98})
    db.models.set_alias("a", "production", 2)
    return db


def test_default_is_the_latest_of_each_model_by_name(catalog):
    assert _refs(catalog, VersionQuery()) == ["a:3", "b:2", "c:1"]
    assert _refs(catalog, VersionQuery(all_versions=True)) == ["a:3", "a:2", "a:1", "b:2", "b:1", "c:1"]
    assert _refs(catalog, VersionQuery(kind="cnn")) == ["c:1"]
    assert _refs(catalog, VersionQuery(all_versions=True, limit=2)) == ["a:3", "a:2"]


def test_the_latest_version_is_filtered_not_the_latest_match(catalog):
    # b:1 has acc 0.9 but b's latest (b:2) has 0.1: the default view of b does not match
    assert _refs(catalog, _q("metric.acc>=0.5")) == []
    assert _refs(catalog, _q("metric.acc>=0.5", all_versions=True)) == ["a:2", "b:1"]


def test_name_globs_are_case_sensitive_on_both_backends(catalog):
    register(catalog, name="A_x")
    assert _refs(catalog, VersionQuery(name_glob="a*")) == ["a:3"]
    assert _refs(catalog, VersionQuery(name_glob="A*")) == ["A_x:1"]
    assert _refs(catalog, VersionQuery(name_glob="?")) == ["a:3", "b:2", "c:1"]
    assert _refs(catalog, VersionQuery(name_glob="A?x")) == ["A_x:1"]
    assert _refs(catalog, VersionQuery(name_glob="b")) == ["b:2"]


def test_params_compare_by_type(catalog):
    every = {"all_versions": True}
    assert _refs(catalog, _q("param.dim>=100", "param.dim<300", **every)) == ["a:2", "b:1"]  # b:2's "200" is text
    assert _refs(catalog, _q('param.dim="200"', **every)) == ["b:2"]
    assert _refs(catalog, _q("param.dim=100.0", **every)) == ["a:2"]  # numbers compare as numbers
    assert _refs(catalog, _q("param.sg=true", **every)) == ["a:3", "a:1", "b:2"]
    assert _refs(catalog, _q("param.model=cbow", **every)) == ["b:2", "b:1"]
    assert _refs(catalog, _q("param.model!=cbow", **every)) == ["a:3", "a:2", "a:1"]  # c has no "model"
    assert _refs(catalog, _q("param.lr=0.025", "param.dim<=50", **every)) == ["a:1"]


def test_tags_filter_and_inherit_the_models_tags(catalog):
    every = {"all_versions": True}
    assert _refs(catalog, _q("tag.team=nlp", **every)) == ["a:2", "a:1", "b:1"]
    assert _refs(catalog, _q("tag.team!=nlp", **every)) == ["a:3"]  # versions without the tag never match
    catalog.models.set_tag("b", "team", "ads")  # a model tag: b:2 now shows team=ads, b:1 keeps its own
    assert _refs(catalog, _q("tag.team=ads", **every)) == ["b:2"]
    assert _refs(catalog, _q("tag.team=nlp", **every)) == ["a:2", "a:1", "b:1"]
    assert catalog.models.search(_q("tag.team=ads"))[0].tags == {"team": "ads"}


def test_values_are_bound_never_spliced_into_sql(catalog):
    nasty = "nlp' OR '1'='1"
    assert _refs(catalog, _q(f'tag.team="{nasty}"', all_versions=True)) == []
    assert _refs(catalog, _q("param.model='x'); DELETE FROM model_versions; --'", all_versions=True)) == []
    with catalog.session() as s:
        assert s.scalar(select(func.count()).select_from(SqlModelVersion)) == 6


def test_orders_put_missing_values_last_and_break_ties_by_name_then_newest(catalog):
    every = {"all_versions": True}
    assert _refs(catalog, _q(order="metric.acc", descending=True, **every)) == ["b:1", "a:2", "a:3", "a:1", "b:2",
                                                                                "c:1"]
    assert _refs(catalog, _q(order="metric.acc", **every)) == ["b:2", "a:1", "a:3", "a:2", "b:1", "c:1"]
    assert _refs(catalog, _q(order="metric.loss", **every))[0] == "b:2"
    # numeric params first (by value), then the others by their JSON text, then none
    assert _refs(catalog, _q(order="param.dim", **every)) == ["a:1", "a:2", "b:1", "a:3", "b:2", "c:1"]
    assert _refs(catalog, _q(order="tag.team", **every)) == ["a:2", "a:1", "b:1", "a:3", "b:2", "c:1"]
    newest_first = _refs(catalog, _q(order="created_at", descending=True, **every))
    assert newest_first == ["c:1", "b:2", "b:1", "a:3", "a:2", "a:1"]


def test_results_carry_typed_values_aliases_and_job_ids(catalog):
    (a2,) = catalog.models.search(_q("metric.acc=0.5", all_versions=True))
    d = a2.summary()
    assert set(d) == {"name", "version", "kind", "created_at", "params", "metrics", "tags", "aliases", "job_id"}
    assert d["params"] == {"dim": 100, "sg": False, "model": "skipgram", "lr": 0.025}
    assert d["aliases"] == ["production"] and d["job_id"] == "job-a1" and d["metrics"] == {"acc": 0.5}


def test_history_is_stored_by_epoch_and_its_last_value_is_final(db):
    register(db, metrics={"acc": 0.5}, history=[{"epoch": 1, "loss": 3.0, "acc": 0.1}, {"epoch": 2, "loss": 2.5}])
    v = db.models.get_version("w2v", 1)
    assert v.metrics == {"acc": 0.5, "loss": 2.5}  # the final acc given wins over the history's
    assert db.models.history("w2v", 1) == {"acc": [{"step": 1, "value": 0.1}],
                                           "loss": [{"step": 1, "value": 3.0}, {"step": 2, "value": 2.5}]}
    assert _refs(db, _q("metric.loss<=2.5")) == ["w2v:1"]
    with pytest.raises(InvalidParameter, match="history"):
        register(db, history=[{"epoch": -1, "loss": 1.0}])
    with pytest.raises(InvalidParameter, match="history"):
        register(db, history={"loss": [1.0]})
    # a value that is no finite number is left out of the history; the model is still registered
    v = register(db, history=[{"epoch": 1, "loss": float("inf"), "phase": "warmup"}, {"epoch": 2, "loss": 1.0}])
    assert db.models.history("w2v", v.version) == {"loss": [{"step": 2, "value": 1.0}]}


def test_sqlite_without_statistics_looks_up_each_versions_metric_by_its_own_index(tmp_path):
    """Nobody runs ANALYZE on a user's registry: ordering by a metric must not scan that metric's values for
    every row (it did, with the lookup index tied with the search index: 1.2 s on 10,000 versions)."""
    from services.registry import Database
    from services.registry.search import select_version_ids

    with Database(f"sqlite:///{tmp_path / 'r.db'}") as db:
        register(db)
        stmt = select_version_ids(_q("metric.loss>0", "tag.team=nlp", order="metric.analogy_accuracy",
                                     descending=True, all_versions=True, limit=20), "sqlite")
        sql = str(stmt.compile(db.engine, compile_kwargs={"literal_binds": True}))
        with db.engine.connect() as conn:
            assert not conn.exec_driver_sql("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'").all()
            plan = [row[-1] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql)]
    lookups = [line for line in plan if "model_metrics" in line and "version_id=?" in line]
    assert lookups and all("ix_model_metrics_version_id_key_step (version_id=? AND key=? AND step=?)" in line
                           for line in lookups), plan
    assert not any("SCAN model_versions" in line for line in plan), plan


def test_postgresql_connections_run_without_jit(db):
    """PostgreSQL compiled big search plans with JIT (~50 ms) before running them (~10 ms): kiln turns it off."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only")
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("SHOW jit").scalar() == "off"
    with db.session(read_only=True) as s:  # after a rollback too: the SET was committed
        assert s.connection().exec_driver_sql("SHOW jit").scalar() == "off"
