"""The CLI test modules run each test on both of the CLI's paths (issue #7: every command keeps its output,
exit codes and --json through a server):

- ``direct``: the command reads and writes the stores itself (the test's own settings, tests/conftest.py);
- ``server``: the command is a client of a real `kiln serve` (KILN_URL + KILN_TOKEN, an admin token of the
  test's user). One server per test module, over that module's settings (the session's Redis, its own
  SQLite file, artifacts and namespace); for a test, ``settings`` are the server's, so what a test checks in
  the stores it checks in the server's. The command itself is given an unreachable Redis and a database
  file that must never appear: it can only have worked through the server.

A CLI test module imports the fixtures (``from tests.cli_sides import cli_side, env, settings  # noqa``);
every test that uses ``env`` then runs once per side (``[direct]``/``[server]`` in its id). A test that only
makes sense on the direct path says so with ``@direct_only`` and a comment giving the reason.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.api.conftest import create_tokens, make_settings, running_server

SIDES = ("direct", "server")
direct_only = pytest.mark.parametrize("cli_side", ["direct"], indirect=True)
"""For a test that only makes sense on the direct path (say why where it is used)."""


@pytest.fixture(scope="module", params=SIDES)
def cli_side(request, redis_url, tmp_path_factory):
    """None on the direct side; on the server side the module's running `kiln serve` (tokens: tester)."""
    if request.param == "direct":
        yield None
        return
    folder = tmp_path_factory.mktemp("cli-server")
    settings = make_settings(folder / "kiln-home", redis_url)
    tokens = create_tokens(settings, tester=True)  # the user the direct side runs as, an admin
    with running_server(settings) as server:
        server.tokens = tokens
        yield server


def client_env(env: dict, server, token: str, folder: Path) -> dict:
    """``env`` made a client of ``server``'s: KILN_URL and ``token``, an unreachable Redis and a database
    file (under ``folder``) that must never appear."""
    return {**env, "KILN_URL": server.url, "KILN_TOKEN": token, "KILN_REDIS_URL": "redis://127.0.0.1:1/0",
            "KILN_DB_URL": f"sqlite:///{folder / 'client-has-no-database.db'}"}


@contextmanager
def through_server(settings, env: dict, folder: Path):
    """A `kiln serve` over ``settings`` for the length of the block, and the env of a client of it (the
    same user, an admin): for a test that compares both paths on one state it made at some cost."""
    token = create_tokens(settings, tester=True)["tester"]
    with running_server(settings) as server:
        yield client_env(env, server, token, folder)
    assert not (folder / "client-has-no-database.db").exists()


@pytest.fixture
def settings(settings, cli_side):
    """The test's own settings directly; the server's through it (Redis still flushed for each test)."""
    return settings if cli_side is None else cli_side.settings


@pytest.fixture
def env(env, cli_side, tmp_path):
    """The environment a test runs `kiln` in: on the server side, KILN_URL and the token, and no store."""
    if cli_side is None:
        yield env
        return
    yield client_env(env, cli_side, cli_side.tokens["tester"], tmp_path)
    assert not (tmp_path / "client-has-no-database.db").exists(), "a command on the server side opened a database"
