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

    nodes = [{"CPU": 2, "GPU": 0, "memory_gb": 3.5}, {"CPU": 1, "GPU": 0, "memory_gb": 3.5}]
    s = build_spec({**spec([small_corpus]), "resources": {"workers": 2, "cpus_per_worker": 4}})
    why = unsatisfiable(s, nodes)
    assert "asked for 2 worker(s) x 4 CPU" in why and "2 CPU, 0 GPU, 3.5 GB memory; 1 CPU" in why
    s = build_spec({**spec([small_corpus]), "resources": {"workers": 4, "cpus_per_worker": 1}})
    assert "asked for 4 worker(s)" in unsatisfiable(s, nodes)
    s = build_spec({**spec([small_corpus]), "resources": {"workers": 1, "cpus_per_worker": 1, "gpus_per_worker": 1}})
    assert "+ 1 GPU" in unsatisfiable(s, nodes)
    for placement in ("pack", "spread"):
        s = build_spec({**spec([small_corpus]), "resources": {"workers": 3, "cpus_per_worker": 1,
                                                               "placement": placement}})
        assert unsatisfiable(s, nodes) is None


@pytest.mark.parametrize("data,message", [
    ({"params": {"min_count": 0}}, "--min-count must be at least 1 (got 0)"),
    ({"params": {"lr": float("nan")}}, "--lr must be a finite number"),
    ({"params": {"max_vocab_size": 0}}, "--max-vocab must be at least 1"),
    ({"params": {"cbow_mean": "maybe"}}, "--cbow-mean must be true or false"),
    ({"resources": {"placement": "everywhere"}}, "--placement must be one of 'pack' or 'spread'"),
    ({"timeout_s": 0}, "--timeout must be greater than 0"),
    ({"checkpoint_interval_s": -1}, "--checkpoint-interval must be greater than 0"),
])
def test_messages_name_the_flag(small_corpus, data, message):
    d = spec([small_corpus])
    d["params"].update(data.pop("params", {}))
    with pytest.raises(InvalidParameter) as e:
        build_spec({**d, **data}, flags=True)
    assert str(e.value).startswith(message), str(e.value)
    # from a spec file the same problem names the key
    with pytest.raises(InvalidParameter) as e:
        build_spec({**d, **data})
    assert not str(e.value).startswith("--")


def test_a_name_with_a_trailing_newline_is_refused(small_corpus):
    with pytest.raises(InvalidParameter, match="name"):
        build_spec({**spec([small_corpus]), "name": "model\n"})
