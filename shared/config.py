"""Settings, resolved once from environment variables and an optional ``$KILN_HOME/config.toml``.

Environment variables win over the file; the file wins over the embedded defaults.

| setting          | env var                | default                              |
| ---------------- | ---------------------- | ------------------------------------ |
| kiln_home        | KILN_HOME              | ~/.kiln                              |
| redis_url        | KILN_REDIS_URL         | the embedded redis-server            |
| db_url           | KILN_DB_URL            | sqlite:///$KILN_HOME/registry.db     |
| artifacts        | KILN_ARTIFACTS         | $KILN_HOME/artifacts                 |
| ray_address      | RAY_ADDRESS            | the embedded local Ray instance      |
| max_running_jobs | KILN_MAX_RUNNING_JOBS  | 0 (no cap)                           |
| max_running_per_user | KILN_MAX_RUNNING_PER_USER | 0 (no cap)                     |
| user             | KILN_USER              | the login name                       |
| namespace        | KILN_NAMESPACE         | kiln (the Ray namespace of the dispatcher) |
"""
from __future__ import annotations

import dataclasses
import functools
import getpass
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from urllib.parse import urlsplit, urlunsplit

from shared.errors import InvalidParameter

SECRET_MASK = "***"


@dataclass(frozen=True)
class Settings:
    kiln_home: Path
    redis_url: str | None
    db_url: str
    artifacts: str
    ray_address: str | None
    max_running_jobs: int = 0
    max_running_per_user: int = 0
    user: str = "kiln"
    namespace: str = "kiln"
    ray_auth_token_path: str | None = None
    """The embedded Ray's token file; set by services.stack.resolve, never from the environment."""

    @property
    def embedded_redis(self) -> bool:
        return self.redis_url is None

    @property
    def embedded_ray(self) -> bool:
        return self.ray_address is None

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["kiln_home"] = str(self.kiln_home)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Settings":
        return cls(**{**d, "kiln_home": Path(d["kiln_home"])})

    def with_(self, **changes) -> "Settings":
        return dataclasses.replace(self, **changes)


_ENV = {
    "redis_url": "KILN_REDIS_URL",
    "db_url": "KILN_DB_URL",
    "artifacts": "KILN_ARTIFACTS",
    "ray_address": "RAY_ADDRESS",
    "max_running_jobs": "KILN_MAX_RUNNING_JOBS",
    "max_running_per_user": "KILN_MAX_RUNNING_PER_USER",
    "user": "KILN_USER",
    "namespace": "KILN_NAMESPACE",
}


def load_settings(env: dict | None = None) -> Settings:
    """Build Settings from ``env`` (default: os.environ) and ``$KILN_HOME/config.toml``."""
    env = os.environ if env is None else env
    home = Path(env.get("KILN_HOME") or Path.home() / ".kiln").expanduser().absolute()
    file_values = read_config_file(home / "config.toml")
    values = {k: env.get(var) or file_values.get(k) for k, var in _ENV.items()}
    caps = {k: _cap(values[k], _ENV[k] if env.get(_ENV[k]) else f"{home / 'config.toml'}: {k}")
            for k in ("max_running_jobs", "max_running_per_user")}
    try:
        login = getpass.getuser()
    except Exception:  # no login name in some containers
        login = "kiln"
    artifacts = values["artifacts"] or str(home / "artifacts")
    if "://" not in artifacts:
        artifacts = str(Path(artifacts).expanduser().absolute())
    return Settings(
        kiln_home=home,
        redis_url=values["redis_url"] or None,
        db_url=values["db_url"] or f"sqlite:///{home / 'registry.db'}",
        artifacts=artifacts,
        ray_address=values["ray_address"] or None,
        user=values["user"] or login,
        namespace=values["namespace"] or "kiln",
        **caps,
    )


def read_config_file(path: Path) -> dict:
    """The ``[kiln]`` table of ``path`` (``{}`` when there is no file). InvalidParameter, naming the file,
    for a syntax error (with its line), a key or table kiln does not know, or a value of the wrong type:
    a misspelt setting would otherwise be ignored without a word."""
    if not path.is_file():
        return {}
    try:
        doc = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise InvalidParameter(f"{path}: not valid TOML ({e})") from None
    except OSError as e:
        raise InvalidParameter(f"{path}: cannot be read ({e.strerror})") from None
    extra = sorted(k for k in doc if k != "kiln")
    if extra:
        what = "table" if isinstance(doc[extra[0]], dict) else "key"
        raise InvalidParameter(f"{path}: unknown {what} {extra[0]!r}: settings go in a [kiln] table "
                               f"({', '.join(_ENV)})")
    table = doc.get("kiln", {})
    if not isinstance(table, dict):
        raise InvalidParameter(f"{path}: 'kiln' must be a table ([kiln])")
    for key, value in table.items():
        if key not in _ENV:
            raise InvalidParameter(f"{path}: unknown setting {key!r} in [kiln] (known: {', '.join(_ENV)})")
        want = (int,) if key.startswith("max_running") else (str,)
        if isinstance(value, bool) or not isinstance(value, want):
            kind = "a whole number" if want == (int,) else "a string"
            raise InvalidParameter(f"{path}: {key} must be {kind} (got {value!r})")
    return table


def _cap(value, where: str) -> int:
    """A cap on running jobs: a whole number >= 0 (0 or unset: no cap)."""
    try:
        n = int(value or 0)
    except ValueError:
        n = -1
    if n < 0:
        raise InvalidParameter(f"{where} must be a whole number >= 0 (0: no cap), not {value!r}")
    return n


def mask_url(url: str | None) -> str | None:
    """``url`` with its password (``scheme://user:PASSWORD@host``) replaced by ``***``; other text unchanged."""
    if not url or "@" not in url or "://" not in url:
        return url
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        user = parts.username or ""
        host = parts.netloc.rsplit("@", 1)[1]
        return urlunsplit(parts._replace(netloc=f"{user}:{SECRET_MASK}@{host}"))
    except ValueError:  # not parseable as a URL: hide everything between '://' and '@'
        scheme, rest = url.split("://", 1)
        return f"{scheme}://{SECRET_MASK}@{rest.rsplit('@', 1)[1]}"


def mask_secrets(text: str, *urls: str | None) -> str:
    """``text`` with the password of each of ``urls`` replaced by ``***`` wherever it appears."""
    for url in urls:
        try:
            password = urlsplit(url).password if url and "://" in url else None
        except ValueError:
            password = None
        if password:
            text = text.replace(password, SECRET_MASK)
    return text


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, resolved once."""
    return load_settings()
