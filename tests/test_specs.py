import os
import gzip

import pytest

from shared.errors import InvalidParameter
from shared.specs import build_spec


def spec(corpus, **params):
    return {"name": "m", "params": {"corpus": [str(c) for c in corpus], **params}}


def test_valid_spec_resolves_paths(small_corpus, tmp_path):
    s = build_spec(spec([small_corpus]))
    assert s.params.corpus == [str(small_corpus.absolute())]
    assert (s.params.dim, s.params.window, s.params.negative, s.params.min_count) == (100, 5, 5, 5)
    assert s.params.sg is True and s.params.sample == 1e-3 and s.params.lr == 0.025


def test_directory_and_glob(tmp_path):
    d = tmp_path / "texts"
    d.mkdir()
    (d / "a.txt").write_text("hello world\n")
    with gzip.open(d / "b.txt.gz", "wt") as f:
        f.write("more words\n")
    (d / "empty.txt").write_text("")
    assert len(build_spec(spec([d])).params.corpus) == 2
    assert len(build_spec(spec([str(d / "*.txt*")])).params.corpus) == 2


@pytest.mark.parametrize("field,value,needle", [
    ("dim", 0, "dim"), ("epochs", -1, "epochs"), ("window", 0, "window"), ("negative", 0, "negative"),
    ("sample", -0.5, "sample"), ("dim", "abc", "dim"), ("lr", 0, "lr"),
])
def test_bad_numbers(small_corpus, field, value, needle):
    with pytest.raises(InvalidParameter) as e:
        build_spec(spec([small_corpus], **{field: value}))
    assert needle in str(e.value) and "\n" not in str(e.value)
    assert e.value.code == "INVALID_PARAMETER_VALUE"


def test_missing_empty_dir_binary(tmp_path):
    with pytest.raises(InvalidParameter, match="no such file"):
        build_spec(spec([tmp_path / "nope.txt"]))
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(InvalidParameter, match="empty"):
        build_spec(spec([tmp_path / "empty.txt"]))
    d = tmp_path / "d"
    d.mkdir()
    with pytest.raises(InvalidParameter, match="holds no files"):
        build_spec(spec([d]))
    (d / "blob.bin").write_bytes(bytes(range(256)) * 10)
    with pytest.raises(InvalidParameter, match="no readable text"):
        build_spec(spec([d]))
    with pytest.raises(InvalidParameter, match="binary"):
        build_spec(spec([d / "blob.bin"]))


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable(tmp_path):
    f = tmp_path / "secret.txt"
    f.write_text("words here\n")
    f.chmod(0)
    with pytest.raises(InvalidParameter, match="permission denied"):
        build_spec(spec([f]))


def test_bad_name_and_resources(small_corpus):
    with pytest.raises(InvalidParameter, match="name"):
        build_spec({"name": "bad name!", "params": {"corpus": [str(small_corpus)]}})
    with pytest.raises(InvalidParameter, match="workers"):
        build_spec({**spec([small_corpus]), "resources": {"workers": 0}})


def test_unsatisfiable_resources(small_corpus):
    from services.jobs import unsatisfiable

    s = build_spec({**spec([small_corpus]), "resources": {"workers": 2, "cpus_per_worker": 4}})
    assert "no node has 4 CPUs" in unsatisfiable(s, [{"CPU": 2, "GPU": 0}, {"CPU": 1, "GPU": 0}])
    s = build_spec({**spec([small_corpus]), "resources": {"workers": 4, "cpus_per_worker": 1}})
    assert "can hold 3 workers" in unsatisfiable(s, [{"CPU": 2, "GPU": 0}, {"CPU": 1, "GPU": 0}])
    s = build_spec({**spec([small_corpus]), "resources": {"workers": 3, "cpus_per_worker": 1}})
    assert unsatisfiable(s, [{"CPU": 2, "GPU": 0}, {"CPU": 1, "GPU": 0}]) is None
