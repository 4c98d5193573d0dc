"""A real `kiln serve` process on loopback over real Redis and SQLite, with real tokens."""
from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import redis
import requests

from shared.config import Settings

KILN = str(Path(sys.executable).with_name("kiln"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(settings: Settings) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KILN_", "RAY_ADDRESS"))}
    env.update(KILN_HOME=str(settings.kiln_home), KILN_REDIS_URL=settings.redis_url, KILN_DB_URL=settings.db_url,
               KILN_ARTIFACTS=settings.artifacts, KILN_NAMESPACE=settings.namespace, KILN_USER=settings.user,
               RAY_ADDRESS=settings.ray_address or "127.0.0.1:1")
    return env


@dataclass
class Server:
    url: str
    settings: Settings
    proc: subprocess.Popen
    tokens: dict[str, str] = field(default_factory=dict)

    def get(self, path: str, token: str | None = None, **kw) -> requests.Response:
        return requests.get(self.url + path, headers=_auth(token), timeout=30, **kw)

    def post(self, path: str, token: str | None = None, **kw) -> requests.Response:
        headers = {**_auth(token), **kw.pop("headers", {})}
        return requests.post(self.url + path, headers=headers, timeout=30, **kw)

    def delete(self, path: str, token: str | None = None, **kw) -> requests.Response:
        return requests.delete(self.url + path, headers=_auth(token), timeout=30, **kw)


def _auth(token: str | None) -> dict:
    return {"Authorization": f"Bearer {token}"} if token else {}


@contextmanager
def running_server(settings: Settings, *, host: str = "127.0.0.1", args: tuple[str, ...] = ()):
    """`kiln serve` for ``settings`` on a free port; waits until it answers, stops it afterwards."""
    port = free_port()
    proc = subprocess.Popen([KILN, "serve", "--host", host, "--port", str(port), *args], env=server_env(settings),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"kiln serve exited {proc.returncode}: {proc.stdout.read()}")
            try:
                requests.get(url + "/api/openapi.json", timeout=2)
                break
            except (requests.ConnectionError, requests.Timeout):  # a loaded machine: not up yet
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
    except BaseException:  # never leave the server running behind a failed start
        proc.kill()
        proc.wait()
        raise
    try:
        yield Server(url, settings, proc)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def make_settings(home: Path, redis_url: str, *, user: str = "tester", ray_address: str | None = None) -> Settings:
    return Settings(kiln_home=home, redis_url=redis_url, db_url=f"sqlite:///{home / 'registry.db'}",
                    artifacts=str(home / "artifacts"), ray_address=ray_address, user=user,
                    namespace="kiln-test-" + secrets.token_hex(3))


def create_tokens(settings: Settings, **users: bool) -> dict[str, str]:
    """A token per user (``name=is_admin``), created through the token service."""
    from services.registry import Database
    from services.tokens import TokenService

    with Database(settings.db_url) as db:
        svc = TokenService(db)
        return {user: svc.create(user, admin=admin)[0] for user, admin in users.items()}


def register_word2vec(settings: Settings, name: str = "vecs", words: int = 60, dim: int = 8,
                      given: tuple[list[str], np.ndarray] | None = None) -> str:
    """A small word2vec version in the registry with real files (topic words near each other), or with
    the ``given`` (words, vectors)."""
    from services.registry import Database
    from shared.artifacts import ArtifactStore
    from workers.word2vec.model import Word2VecModel

    if given is not None:
        vocab, vectors = given
        dim = vectors.shape[1]
    else:
        rng = np.random.default_rng(0)
        centres = rng.normal(size=(3, dim))
        vocab = [f"{t}{i}" for i in range(words // 3) for t in ("cat", "car", "sun")]
        vectors = np.stack([centres[("cat", "car", "sun").index(w[:3])] + 0.05 * rng.normal(size=dim)
                            for w in vocab])
    paths = Word2VecModel(vocab, vectors).save(Path(settings.artifacts) / "models" / secrets.token_hex(4))
    store = ArtifactStore(settings.artifacts)
    with Database(settings.db_url) as db:
        mv = db.models.register_version(name=name, kind="word2vec", params={"dim": dim}, metrics={"vocab_size": len(vocab)},
                                        artifacts={k: store.uri(p) for k, p in paths.items()},
                                        lineage={"kiln_version": "test"})
    return f"{mv.name}:{mv.version}"


@contextmanager
def own_redis(folder: Path):
    """A redis-server of this fixture's own: a module-long server must not share a DB index that another
    test session, picking "an empty one" at the same moment, may flush under it."""
    from services.stack import redis_server_binary

    port = free_port()
    proc = subprocess.Popen([redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--dir", str(folder)], stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                redis.Redis.from_url(url).ping()
                break
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    """One server for a test module (its own redis-server and SQLite file): tokens for alice and bob
    (users) and root (admin)."""
    folder = tmp_path_factory.mktemp("api")
    with own_redis(folder) as redis_url:
        settings = make_settings(folder / "kiln-home", redis_url)
        tokens = create_tokens(settings, alice=False, bob=False, root=True)
        with running_server(settings) as server:
            server.tokens = tokens
            yield server


def register_cnn(settings: Settings, name: str = "digits", classes=("a", "b", "c"), size: int = 16) -> str:
    """A small (randomly initialised) LeNet-5 version with the files a CNN job writes: weights, card and
    evaluation.json (confusion matrix)."""
    import json

    import torch
    from safetensors.torch import save_file

    from services.registry import Database
    from shared.artifacts import ArtifactStore
    from workers.cnn.card import WEIGHTS, write_card
    from workers.cnn.models import build_model

    torch.manual_seed(0)
    args = {"arch": "lenet5", "in_channels": 1, "num_classes": len(classes), "image_size": [size, size]}
    folder = Path(settings.artifacts) / "models" / secrets.token_hex(4)
    folder.mkdir(parents=True)
    save_file(build_model(args).state_dict(), str(folder / WEIGHTS))
    card = write_card(folder, model_args=args, classes=list(classes), shape=[size, size, 1], mean=[0.5], std=[0.25],
                      metrics={}, params={"arch": "lenet5"}, dataset={})
    k = len(classes)
    matrix = [[5 if i == j else 1 for j in range(k)] for i in range(k)]
    (folder / "evaluation.json").write_text(json.dumps({"confusion": matrix, "classes": list(classes)}))
    store = ArtifactStore(settings.artifacts)
    with Database(settings.db_url) as db:
        mv = db.models.register_version(name=name, kind="cnn", params={"arch": "lenet5"}, metrics={"accuracy": 0.8},
                                        artifacts={"model": store.uri(folder), "weights": store.uri(folder / WEIGHTS),
                                                   "card": store.uri(card),
                                                   "evaluation": store.uri(folder / "evaluation.json")},
                                        lineage={})
    return f"{mv.name}:{mv.version}"
