"""Reading a job spec from a YAML or JSON file (``kiln submit -f spec.yaml``)."""
from __future__ import annotations

import json
from pathlib import Path

import yaml

from shared.errors import InvalidParameter


def _where(e: Exception) -> str:
    """``, line N`` (1-based) where the parser stopped, when it says."""
    mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
    if mark is not None:
        return f", line {mark.line + 1}"
    return f", line {e.lineno}" if isinstance(e, json.JSONDecodeError) else ""


def _problem(e: Exception) -> str:
    if isinstance(e, yaml.MarkedYAMLError) and e.problem:
        return e.problem
    if isinstance(e, json.JSONDecodeError):
        return e.msg
    return str(e).splitlines()[0] if str(e) else type(e).__name__


def read_spec_file(path: str) -> dict:
    """The spec in a YAML (or ``.json``) file as a dict, with relative paths made relative to the file.
    InvalidParameter names the file and, for a syntax error, the line."""
    p = Path(path)
    if not p.is_file():
        raise InvalidParameter(f"-f: {path}: no such file")
    try:
        text = p.read_text()
        data = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError) as e:
        raise InvalidParameter(f"-f: {path}{_where(e)}: not a valid spec file ({_problem(e)})") from None
    if not isinstance(data, dict):
        raise InvalidParameter(f"-f: {path}: a spec must be a mapping (kind, name, params, resources...)")
    # Relative corpus paths are relative to the spec file.
    params = data.get("params") or {}
    base = p.parent
    for key in ("eval_analogies", "eval_similarity"):
        if isinstance(params.get(key), str) and not Path(params[key]).expanduser().is_absolute():
            params[key] = str(base / params[key])
    if isinstance(params.get("corpus"), str):
        params["corpus"] = [params["corpus"]]
    if isinstance(params.get("corpus"), list):
        params["corpus"] = [c if Path(str(c)).expanduser().is_absolute() else str(base / str(c)) for c in params["corpus"]]
    # a cnn job's files too; a name that is no file beside the spec (`digits`) stays as written
    for key in ("dataset", "test", "weights"):
        value = params.get(key)
        if data.get("kind") == "cnn" and isinstance(value, str) and not Path(value).expanduser().is_absolute() \
                and (base / value).exists():
            params[key] = str(base / value)
    return data
