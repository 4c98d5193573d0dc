"""`kiln models export -o PATH` never destroys anything: devices, pipes, links and folders are refused,
an existing file needs --force, the temporary file is never written through a planted link, `-` is stdout."""
from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from services.registry import Database
from tests.test_cli import one_line_error, run
from workers.word2vec.model import Word2VecModel


@pytest.fixture
def model_env(env, settings):
    """A registered word2vec version with real vector files (no job needed) and the CLI env."""
    d = Path(settings.artifacts) / "manual" / "model"
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    files = Word2VecModel(["king", "queen", "man"], rng.standard_normal((3, 4)).astype(np.float32),
                          counts=np.array([3, 2, 1])).save(d)
    db = Database(settings.db_url)
    db.models.register_version(name="exp", kind="word2vec", params={"dim": 4}, metrics={},
                               artifacts={k: Path(v).as_uri() for k, v in files.items()}, lineage={})
    return env


def test_devices_are_refused_and_left_alone(model_env):
    before = os.stat("/dev/full")
    r = run(["models", "export", "exp", "-o", "/dev/full"], model_env)
    assert "is a device" in one_line_error(r, 2)
    after = os.stat("/dev/full")
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev
    assert not list(Path("/dev").glob(".full.kiln-*"))


def test_a_fifo_a_symlink_and_a_folder_are_refused(model_env, tmp_path):
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    assert "named pipe" in one_line_error(run(["models", "export", "exp", "-o", str(fifo)], model_env), 2)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    link = tmp_path / "link.txt"
    link.symlink_to(victim)
    for flags in ([], ["--force"]):
        r = run(["models", "export", "exp", "-o", str(link), *flags], model_env)
        assert "symbolic link" in one_line_error(r, 2)
    assert link.is_symlink() and victim.read_text() == "precious\n"
    assert "is a directory" in one_line_error(run(["models", "export", "exp", "-o", str(tmp_path)], model_env), 2)


def test_an_existing_file_needs_force(model_env, tmp_path):
    out = tmp_path / "vectors.txt"
    out.write_text("keep me\n")
    r = run(["models", "export", "exp", "-o", str(out)], model_env)
    assert "exists; add --force" in one_line_error(r, 2)
    assert out.read_text() == "keep me\n"
    r = run(["models", "export", "exp", "-o", str(out), "--force"], model_env)
    assert r.returncode == 0, r.stderr
    assert out.read_text().startswith("3 4\n")


def test_a_planted_link_at_the_old_temporary_name_is_not_followed(model_env, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (tmp_path / "out.txt.kiln-tmp").symlink_to(victim)  # where the old code wrote its temporary file
    r = run(["models", "export", "exp", "-o", str(tmp_path / "out.txt")], model_env)
    assert r.returncode == 0, r.stderr
    assert victim.read_text() == "precious\n"
    assert (tmp_path / "out.txt").read_text().startswith("3 4\n")
    assert not [p for p in tmp_path.iterdir() if ".kiln-" in p.name and p.name != "out.txt.kiln-tmp"]


def test_dash_is_standard_output(model_env, tmp_path):
    r = subprocess.run([str(Path(sys.executable).parent / "kiln"), "models", "export", "exp", "-o", "-"],
                       env=model_env, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("3 4\n") and len(r.stdout.splitlines()) == 4
    assert not (tmp_path / "-").exists()
