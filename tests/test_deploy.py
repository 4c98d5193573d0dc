"""deploy/ checked against kiln itself (no Docker or Kubernetes here): every file parses, names only
settings kiln reads, runs only `kiln` commands that exist, uses the Ray version kiln is installed with,
agrees on ports between head and workers, and mounts what a job's workers read (the corpus) and write
(the artifact store) on every node, not only on the head."""
from __future__ import annotations

import re
import shlex
from importlib import metadata
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from cli.main import kiln as kiln_cli
from shared.config import _ENV

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
KILN_SETTINGS = set(_ENV.values())
RAY_SETTINGS = {"RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_USAGE_STATS_ENABLED"}
REQUIRED = {"KILN_REDIS_URL", "KILN_DB_URL", "KILN_ARTIFACTS"}
RAY_VERSION = metadata.version("ray")


def load(name: str) -> dict:
    return yaml.safe_load((DEPLOY / name).read_text())


def kiln_commands(text: str) -> list[list[str]]:
    """Every `kiln ...` invocation in a shell command line, as argument lists."""
    found = []
    for part in re.split(r"&&|\|\||;|&(?!&)", text):
        words = shlex.split(part)
        words = [w for w in words if not re.fullmatch(r"[A-Z_]+=\S*", w)]  # drop VAR=value prefixes
        if words and words[0] == "kiln":
            found.append(words[1:])
    return found


def interpolate(value: str, **values: str) -> str:
    """Compose's ``${VAR}`` / ``${VAR:?message}`` substitution, with ``values`` for the variables."""
    return re.sub(r"\$\{(\w+)(?::?[-?][^}]*)?\}", lambda m: values[m.group(1)], value)


def assert_kiln_command_exists(args: list[str]) -> None:
    assert args, "a bare `kiln`"
    assert args[0] in kiln_cli.commands, f"`kiln {args[0]}` is not a kiln command"


def test_every_deploy_file_parses():
    names = sorted(p.name for p in DEPLOY.iterdir())
    assert {"Dockerfile", "compose.yaml", "kuberay-cluster.yaml", "ray-autoscaler.yaml"} <= set(names)
    for name in names:
        if name.endswith(".yaml"):
            assert isinstance(load(name), dict), name


def test_dockerfile_uses_kilns_ray_and_its_settings():
    text = (DEPLOY / "Dockerfile").read_text()
    bases = re.findall(r"rayproject/ray:([\d.]+)-py(\d)(\d+)", text)
    assert bases and all(v == RAY_VERSION for v, _, _ in bases), (bases, RAY_VERSION)
    for src in re.findall(r"^COPY (\S+)", text, re.M):
        assert (DEPLOY.parent / src).exists(), f"Dockerfile copies {src}, which is not in the repository"
    env_names = re.findall(r"\b([A-Z][A-Z0-9_]+)=", " ".join(re.findall(r"^ENV (.+)$", text, re.M)))
    assert env_names and set(env_names) <= KILN_SETTINGS | {"KILN_HOME"} | RAY_SETTINGS


# -- compose ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def compose():
    return load("compose.yaml")


def _kiln_services(compose) -> dict:
    return {name: svc for name, svc in compose["services"].items() if "build" in svc}


def test_compose_env_names_settings_kiln_reads(compose):
    nodes = _kiln_services(compose)
    assert set(nodes) == {"ray-head", "ray-worker"}
    for name, svc in nodes.items():
        env = svc["environment"]
        assert REQUIRED <= set(env), name
        assert set(env) <= KILN_SETTINGS | RAY_SETTINGS, f"{name}: unknown settings {set(env) - KILN_SETTINGS - RAY_SETTINGS}"


def test_compose_urls_point_at_its_services(compose):
    env = compose["services"]["ray-head"]["environment"]
    redis_url = urlsplit(interpolate(env["KILN_REDIS_URL"], KILN_REDIS_PASSWORD="pw"))
    assert redis_url.scheme == "redis" and redis_url.hostname in compose["services"] and redis_url.port == 6379
    redis_cmd = compose["services"]["redis"]["command"]
    assert redis_cmd[redis_cmd.index("--appendonly") + 1] == "yes"  # live status survives a Redis restart
    # the Redis password in the URL is the one the server requires
    assert interpolate(redis_cmd[redis_cmd.index("--requirepass") + 1], KILN_REDIS_PASSWORD="pw") == redis_url.password
    db = urlsplit(env["KILN_DB_URL"])
    pg = compose["services"][db.hostname]["environment"]
    assert db.scheme.startswith("postgresql") and db.port == 5432
    assert (db.username, db.password, db.path.lstrip("/")) == (pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"], pg["POSTGRES_DB"])


def test_compose_ray_ports_agree_and_avoid_redis(compose):
    head_cmd = " ".join(compose["services"]["ray-head"]["command"])
    worker_cmd = " ".join(compose["services"]["ray-worker"]["command"])
    head_port = int(re.search(r"ray start --head --port=(\d+)", head_cmd).group(1))
    host, port = re.search(r"--address=([\w.-]+):(\d+)", worker_cmd).groups()
    assert (host, int(port)) == ("ray-head", head_port)
    assert head_port != 6379  # Redis's port
    for args in kiln_commands(compose["services"]["ray-head"]["command"][-1]):
        assert_kiln_command_exists(args)


def test_compose_mounts_corpus_and_artifacts_on_every_ray_node(compose):
    nodes = _kiln_services(compose)
    artifacts = nodes["ray-head"]["environment"]["KILN_ARTIFACTS"]
    mounts = {name: {v.split(":")[1] for v in svc["volumes"]} for name, svc in nodes.items()}
    for name, targets in mounts.items():
        assert artifacts in targets, f"{name} does not mount KILN_ARTIFACTS ({artifacts})"
    # whatever the head mounts (the corpus under /data included), every worker mounts too
    assert mounts["ray-worker"] >= mounts["ray-head"], mounts
    example = re.search(r"kiln submit word2vec (\S+)", (DEPLOY / "compose.yaml").read_text()).group(1)
    assert any(example.startswith(t + "/") for t in mounts["ray-worker"]), example


# -- KubeRay ------------------------------------------------------------------------------------------
def test_kuberay_groups_share_settings_and_volumes():
    spec = load("kuberay-cluster.yaml")["spec"]
    assert spec["rayVersion"] == RAY_VERSION
    groups = [spec["headGroupSpec"], *spec["workerGroupSpecs"]]
    head_pod = spec["headGroupSpec"]["template"]["spec"]
    head_mounts = {m["mountPath"] for m in head_pod["containers"][0]["volumeMounts"]}
    for group in groups:
        pod = group["template"]["spec"]
        container = pod["containers"][0]
        env = {e["name"]: e for e in container["env"]}
        assert REQUIRED <= set(env) and set(env) <= KILN_SETTINGS | RAY_SETTINGS
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert env["KILN_ARTIFACTS"]["value"] in mounts
        assert set(mounts) >= head_mounts  # corpus and artifacts on every pod
        assert set(mounts.values()) <= {v["name"] for v in pod["volumes"]}
        claims = {v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"]}
        assert {"kiln-artifacts", "kiln-data"} <= claims


# -- Ray autoscaler -----------------------------------------------------------------------------------
def test_ray_autoscaler_ports_settings_and_commands():
    cfg = load("ray-autoscaler.yaml")
    head = " ".join(cfg["head_start_ray_commands"])
    worker = " ".join(cfg["worker_start_ray_commands"])
    head_port = int(re.search(r"ray start --head --port=(\d+)", head).group(1))
    assert int(re.search(r"--address=\S+:(\d+)", worker).group(1)) == head_port != 6379
    exports = " ".join(cfg["setup_commands"])
    names = set(re.findall(r"\b([A-Z][A-Z0-9_]+)=", exports)) - {"PATH"}
    assert REQUIRED <= names <= KILN_SETTINGS | RAY_SETTINGS
    for line in cfg["head_start_ray_commands"]:
        for args in kiln_commands(line):
            assert_kiln_command_exists(args)
