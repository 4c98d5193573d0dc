"""Click options generated from the pydantic job spec, so that every default, bound and help text lives
in one place (shared/specs.py) and a new spec field is a new flag without touching the CLI.

    options = spec_options(Word2VecParams, "params", exclude={"corpus"}) + spec_options(Resources, "resources")
    @with_options(options)
    def word2vec(**kwargs): data = spec_data(options, kwargs)

Each option defaults to None ("not given"): only the flags the user typed go into the spec, and pydantic
fills in the rest, so the defaults shown in ``--help`` are the spec's own. The flag is the field name
with dashes, or the field's ``json_schema_extra["flag"]`` (``--max-vocab``, a pair such as
``--sg/--cbow``); ``"unit": "duration"`` takes ``90``, ``90s``, ``30m`` or ``2h``.
"""
from __future__ import annotations

import re
import types
import typing
from dataclasses import dataclass

import click


class Duration(click.ParamType):
    """Seconds, written as ``90``, ``90s``, ``30m``, ``2h`` or ``1d``."""

    name = "duration"
    _UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}

    def convert(self, value, param, ctx):
        if isinstance(value, (int, float)):
            return float(value)
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", str(value))
        if not m:
            self.fail(f"{value!r} is not a duration (try 90, 90s, 30m or 2h)", param, ctx)
        return float(m.group(1)) * self._UNITS[m.group(2)]


DURATION = Duration()


@dataclass(frozen=True)
class SpecOption:
    """One flag and the spec field it fills: ``section`` ("params", "resources" or "" for the top level)."""

    section: str
    field: str
    flag: str
    option: click.Option


def _base_type(annotation):
    """``int | None`` -> int; ``Literal["a", "b"]`` -> click.Choice."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        annotation = args[0] if len(args) == 1 else str
    if typing.get_origin(annotation) is typing.Literal:
        return click.Choice([str(a) for a in typing.get_args(annotation)])
    return annotation


def _shown_default(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return None  # the pair shows it (below)
    return f"{value:g}" if isinstance(value, float) else str(value)


def spec_options(model, section: str, *, exclude: set[str] = frozenset(),
                 only: set[str] | None = None) -> list[SpecOption]:
    """One option per field of the pydantic ``model`` (a part of JobSpec found at ``section``)."""
    from shared.specs import flag_of  # noqa: PLC0415 - pydantic only for the commands that build specs

    out = []
    for name, info in model.model_fields.items():
        if name in exclude or (only is not None and name not in only):
            continue
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        flag = flag_of(model, name)
        kind = _base_type(info.annotation)
        help_text = info.description or ""
        attrs: dict = {"default": None, "help": help_text}
        if kind is bool:
            on, _, off = flag.partition("/")
            off = off or "--no-" + on.removeprefix("--")
            decl = f"{on}/{off}"
            attrs["help"] = f"{help_text}  [default: {on if info.default else off}]".strip()
        else:
            decl = flag
            if extra.get("unit") == "duration":
                attrs["type"] = DURATION
            elif isinstance(kind, click.Choice) or kind in (int, float, str):
                attrs["type"] = kind
            shown = _shown_default(info.default)
            if shown is not None:  # in the help text: click would print a string default in parentheses
                attrs["help"] = f"{help_text}  [default: {shown}]".strip()
        out.append(SpecOption(section, name, decl.split("/")[0], click.Option([decl, name], **attrs)))
    return out


def with_options(options: list[SpecOption]):
    """A decorator adding ``options`` to a click command (in the given order)."""
    def decorate(f):
        for o in reversed(options):
            click.decorators._param_memo(f, o.option)
        return f

    return decorate


def spec_data(options: list[SpecOption], values: dict) -> dict:
    """The spec dict from a command's keyword values: only the options the user gave, nested by section."""
    data: dict = {}
    for o in options:
        value = values.get(o.field)
        if value is None:
            continue
        target = data.setdefault(o.section, {}) if o.section else data
        target[o.field] = value
    return data
