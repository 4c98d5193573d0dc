"""Migration 0002 on a database that kiln 0.1 wrote: stringified params become typed, every version gets a
uid, and the old rows are searchable afterwards (SQLite and PostgreSQL)."""
from __future__ import annotations

import json

from sqlalchemy import text

from services.registry import Database, VersionQuery, make_engine, parse_filter, upgrade

# What kiln 0.1's word2vec pipeline registered: every param str()-ed, None as "", the corpus as JSON text.
LEGACY_PARAMS = {"dim": "100", "sample": "0.001", "sg": "True", "hs": "False", "max_vocab": "", "seed": "1",
                 "corpus": json.dumps(["/data/a.txt", "/data/b.txt"]), "model": "skipgram", "lr": "1e-05",
                 "weird": "nan"}


def test_upgrading_an_old_registry_types_its_params_and_keeps_everything(fresh_url):
    upgrade(fresh_url, "0001")
    engine = make_engine(fresh_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO registered_models (id, name, kind, created_at) "
                              "VALUES (1, 'news', 'word2vec', CURRENT_TIMESTAMP)"))
            for vid in (1, 2):
                conn.execute(text("INSERT INTO model_versions (id, model_id, version, status, created_at, job_id) "
                                  "VALUES (:id, 1, :id, 'READY', CURRENT_TIMESTAMP, :job)"),
                             {"id": vid, "job": f"job-{vid}"})
                for key, value in LEGACY_PARAMS.items():
                    conn.execute(text("INSERT INTO model_params (version_id, key, value) VALUES (:v, :k, :x)"),
                                 {"v": vid, "k": key, "x": json.dumps(value)})
                conn.execute(text("INSERT INTO model_metrics (version_id, key, value) VALUES (:v, 'acc', 0.5)"),
                             {"v": vid})
            conn.execute(text("INSERT INTO model_aliases (model_id, alias, version_id) VALUES (1, 'production', 1)"))
    finally:
        engine.dispose()

    upgrade(fresh_url)
    with Database(fresh_url, auto_upgrade=False) as db:
        v1, v2 = db.models.list_versions("news")
        assert v1.params == {"dim": 100, "sample": 0.001, "sg": True, "hs": False, "max_vocab": None, "seed": 1,
                             "corpus": ["/data/a.txt", "/data/b.txt"], "model": "skipgram", "lr": 1e-05,
                             "weird": "nan"}
        assert v1.aliases == ("production",) and v1.metrics == {"acc": 0.5} and v1.job_id == "job-1"
        assert len(v1.uid) == 32 and len(v2.uid) == 32 and v1.uid != v2.uid
        query = VersionQuery(filters=(parse_filter("param.dim>=100"), parse_filter("param.sg=true")),
                             all_versions=True)
        assert [v.ref for v in db.models.search(query)] == ["news:2", "news:1"]
        new = db.models.register_version(name="news", kind="word2vec", params={"dim": 50}, metrics={},
                                         artifacts={}, lineage={})
        assert new.version == 3 and new.uid not in (v1.uid, v2.uid)
