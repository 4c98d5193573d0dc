"""Reading a job spec from a YAML or JSON file (``kiln submit -f spec.yaml``)."""
from __future__ import annotations

import json
from pathlib import Path

import yaml

from shared.errors import InvalidParameter


def read_spec_file(path: str) -> dict:
    p = Path(path)
    if not p.is_file():
        raise InvalidParameter(f"-f: {path}: no such file")
    try:
        text = p.read_text()
        data = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError) as e:
        raise InvalidParameter(f"-f: {path}: not a valid spec file ({str(e).splitlines()[0]})") from None
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
    return data
