"""Searching model versions: ``metric.X >= V`` filters, an order and a limit, as one SQL query.

``parse_filter("metric.accuracy > 0.9")`` and ``parse_order("metric.accuracy")`` turn user text into a
structured ``VersionQuery``; ``select_version_ids(query, dialect)`` builds the SELECT with every value bound as a
parameter (no SQL is ever built from user text). Filters are ANDed. A version without the filtered key
never matches (``tag.team != nlp`` needs a ``team`` tag). Metrics compare their final value (the one
logged without a step); a version's tags include its model's (its own win).

    query = VersionQuery(kind="word2vec", filters=(parse_filter("tag.team=nlp"),
                                                    parse_filter("metric.analogy_accuracy>=0.4")),
                         order=parse_order("metric.analogy_accuracy"), descending=True, limit=20)
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.orm import aliased

from services.registry.schema import (SqlMetric, SqlModelTag, SqlModelVersion, SqlParam, SqlRegisteredModel,
                                      SqlVersionTag)
from shared.errors import InvalidParameter

OPERATORS = ("=", "!=", "<", "<=", ">", ">=")
"""Comparison operators a filter may use (``==`` is read as ``=``)."""
ORDER_FIELDS = ("name", "version", "created_at", "kind")
"""Plain fields ``--order-by`` takes, besides ``metric.X``, ``param.X`` and ``tag.X``."""
MAX_LIMIT = 100_000
_FILTER = re.compile(r"[ \t]*(metric|param|tag)\.([^\s=!<>]{1,250})[ \t]*(<=|>=|!=|==|=|<|>)[ \t]*(.*?)[ \t]*")
_FIELD = re.compile(r"(metric|param|tag)\.([^\s=!<>]{1,250})")
_GLOB = re.compile(r"[A-Za-z0-9_.\-*?]{1,128}")
_HINT = "use metric.NAME OP VALUE, param.NAME OP VALUE or tag.NAME OP VALUE with OP one of = != < <= > >="


class Filter(NamedTuple):
    """One condition: ``kind`` is metric, param or tag; ``value`` a float (metric), a JSON value (param)
    or a string (tag)."""

    kind: str
    key: str
    op: str
    value: Any


class OrderField(NamedTuple):
    """``name`` / ``version`` / ``created_at`` / ``kind`` (key None), or metric / param / tag with a key."""

    kind: str
    key: str | None = None


@dataclass(frozen=True)
class VersionQuery:
    """What ``kiln models list`` asks: by default the latest version of each model, by name."""

    kind: str | None = None
    name_glob: str | None = None
    filters: tuple[Filter, ...] = ()
    order: OrderField | None = None
    descending: bool = False
    limit: int | None = None
    all_versions: bool = False

    def __post_init__(self):
        if self.name_glob is not None and not _GLOB.fullmatch(self.name_glob):
            raise InvalidParameter(f"--name: bad pattern {self.name_glob!r} (model-name characters, "
                                   "'*' and '?')")
        if self.limit is not None and (isinstance(self.limit, bool) or not isinstance(self.limit, int)
                                       or not 1 <= self.limit <= MAX_LIMIT):
            raise InvalidParameter(f"--limit must be a whole number from 1 to {MAX_LIMIT}, got {self.limit!r}")
        for f in self.filters:
            if not isinstance(f, Filter):
                raise InvalidParameter(f"not a filter: {f!r}")


# -- parsing ------------------------------------------------------------------------------------------
def parse_filter(text: str) -> Filter:
    """``"metric.accuracy >= 0.9"`` -> Filter("metric", "accuracy", ">=", 0.9). InvalidParameter if malformed.

    Values: a number for metrics; for params a JSON literal (``100``, ``true``, ``null``, ``"a b"``) or
    a bare word (a string); for tags a string (quotes optional). Params and tags compare with ``<`` etc.
    only against numbers (params) or not at all (tags take ``=`` and ``!=``).
    """
    m = _FILTER.fullmatch(text) if isinstance(text, str) else None
    if m is None:
        raise InvalidParameter(f"bad filter {text!r}: {_HINT}")
    kind, key, op, raw = m.groups()
    op = "=" if op == "==" else op
    if raw == "":
        raise InvalidParameter(f"bad filter {text!r}: no value after {op!r}")
    if kind == "metric":
        value = _number(raw)
        if value is None:
            raise InvalidParameter(f"bad filter {text!r}: a metric compares with a number, not {raw!r}")
    elif kind == "param":
        value = _param_value(raw)
        if op not in ("=", "!=") and (isinstance(value, (bool, str)) or value is None):
            raise InvalidParameter(f"bad filter {text!r}: {op} compares params with a number")
    else:
        value = _unquote(raw)
        if op not in ("=", "!="):
            raise InvalidParameter(f"bad filter {text!r}: tags compare with = or != only")
    return Filter(kind, key, op, value)


def parse_order(text: str) -> OrderField:
    """``"metric.accuracy"`` -> OrderField("metric", "accuracy"); ``"created_at"`` -> OrderField("created_at")."""
    if text in ORDER_FIELDS:
        return OrderField(text)
    m = _FIELD.fullmatch(text) if isinstance(text, str) else None
    if m is None:
        raise InvalidParameter(f"--order-by: unknown field {text!r} (one of {', '.join(ORDER_FIELDS)}, "
                               "metric.NAME, param.NAME or tag.NAME)")
    return OrderField(m.group(1), m.group(2))


def _number(raw: Any) -> float | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, (int, float)):
        return float(raw) if math.isfinite(raw) else None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _param_value(raw: str) -> Any:
    try:
        value = json.loads(raw)
    except ValueError:
        return _unquote(raw)
    if isinstance(value, (list, dict)):
        raise InvalidParameter(f"bad filter value {raw!r}: compare params with a number, a string, "
                               "true, false or null")
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidParameter(f"bad filter value {raw!r}: not a finite number")
    return value


def _unquote(raw: str) -> str:
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        return raw[1:-1]
    return raw


# -- SQL ----------------------------------------------------------------------------------------------
def param_json(value: Any) -> str:
    """The JSON text a param value is stored as (the same encoding as registration)."""
    return json.dumps(value, sort_keys=True, allow_nan=False)


def select_version_ids(query: VersionQuery, dialect: str) -> Select:
    """SELECT model_versions.id for ``query`` on ``dialect`` ("sqlite", "postgresql"), ordered and limited.

    Every user value is a bound parameter."""
    mv = SqlModelVersion
    stmt = select(mv.id).join(SqlRegisteredModel, SqlRegisteredModel.id == mv.model_id)
    if query.kind is not None:
        stmt = stmt.where(SqlRegisteredModel.kind == query.kind)
    if query.name_glob is not None:
        stmt = stmt.where(_name_matches(query.name_glob, dialect))
    if not query.all_versions:
        newer = aliased(SqlModelVersion)
        stmt = stmt.where(~select(newer.id).where(newer.model_id == mv.model_id, newer.version > mv.version)
                          .exists())
    for f in query.filters:
        stmt = stmt.where(_condition(f))
    keys = []
    if query.order is not None:
        for column in _order_columns(query.order):
            column = column.desc() if query.descending else column.asc()
            keys.append(column.nulls_last())
    keys += [SqlRegisteredModel.name.asc(), mv.version.desc()]
    stmt = stmt.order_by(*keys)
    if query.limit is not None:
        stmt = stmt.limit(query.limit)
    return stmt


def _name_matches(glob: str, dialect: str):
    # Case-sensitive on both backends: SQLite's LIKE ignores case, so SQLite gets glob() (same * and ?);
    # elsewhere LIKE, with '_' (the one SQL wildcard a model name may hold) escaped.
    name = SqlRegisteredModel.name
    if "*" not in glob and "?" not in glob:
        return name == glob
    if dialect == "sqlite":
        return func.glob(glob, name)
    like = glob.replace("_", "\\_").replace("*", "%").replace("?", "_")
    return name.like(like, escape="\\")


def _condition(f: Filter):
    # Uncorrelated IN (subquery): computed once from the (key, value) indexes, so the planner can start
    # from the most selective filter instead of probing every version (both SQLite and PostgreSQL).
    mv = SqlModelVersion
    if f.kind == "metric":
        return mv.id.in_(select(SqlMetric.version_id).where(SqlMetric.key == f.key, SqlMetric.step.is_(None),
                                                            _compare(SqlMetric.value, f.op, f.value)))
    if f.kind == "param":
        typed_number = isinstance(f.value, (int, float)) and not isinstance(f.value, bool)
        column, value = (SqlParam.num, float(f.value)) if typed_number else (SqlParam.value, param_json(f.value))
        return mv.id.in_(select(SqlParam.version_id).where(SqlParam.key == f.key, _compare(column, f.op, value)))
    # A version's tags include its model's, unless the version sets the same key itself.
    own = select(SqlVersionTag.version_id).where(SqlVersionTag.key == f.key)
    inherited = select(SqlModelTag.model_id).where(SqlModelTag.key == f.key, _compare(SqlModelTag.value, f.op, f.value))
    return or_(mv.id.in_(own.where(_compare(SqlVersionTag.value, f.op, f.value))),
               and_(mv.model_id.in_(inherited), mv.id.not_in(own)))


def _compare(column, op: str, value):
    return {"=": column == value, "!=": column != value, "<": column < value, "<=": column <= value,
            ">": column > value, ">=": column >= value}[op]


def _order_columns(order: OrderField) -> list:
    mv = SqlModelVersion
    if order.key is None:
        return [{"name": SqlRegisteredModel.name, "version": mv.version, "created_at": mv.created_at,
                 "kind": SqlRegisteredModel.kind}[order.kind]]
    if order.kind == "metric":
        return [select(SqlMetric.value).where(SqlMetric.version_id == mv.id, SqlMetric.key == order.key,
                                              SqlMetric.step.is_(None)).limit(1).scalar_subquery()]
    if order.kind == "param":  # numbers by value, then the other params by their JSON text
        param = select(SqlParam).where(SqlParam.version_id == mv.id, SqlParam.key == order.key)
        return [param.with_only_columns(SqlParam.num).scalar_subquery(),
                param.with_only_columns(SqlParam.value).scalar_subquery()]
    own = select(SqlVersionTag.value).where(SqlVersionTag.version_id == mv.id, SqlVersionTag.key == order.key)
    inherited = select(SqlModelTag.value).where(SqlModelTag.model_id == mv.model_id, SqlModelTag.key == order.key)
    return [func.coalesce(own.scalar_subquery(), inherited.scalar_subquery())]
