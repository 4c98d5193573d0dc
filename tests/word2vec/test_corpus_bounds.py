"""The corpus reader stays linear and bounded on pathological input, and says what is wrong in one line."""
from __future__ import annotations

import os
import resource
import subprocess
import sys
import time

import pytest

from shared.corpus_files import resolve_corpus
from shared.errors import CorpusError, InvalidParameter
from workers.word2vec.corpus import BLOCK_BYTES, ReadStats, Shard, read_sentences


def _drain(path, **kw) -> tuple[list[list[str]], ReadStats]:
    st = ReadStats()
    return list(read_sentences(Shard(str(path)), stats=st, **kw)), st


def test_nul_bytes_after_a_text_head_stop_the_reader_where_they_start(tmp_path):
    path = tmp_path / "half-binary.txt"
    text = b"the cat sat on the mat\n" * 200_000  # 4.6 MB of text, then NULs
    with open(path, "wb") as f:
        f.write(text)
        f.write(b"\x00" * (8 << 20))
    with pytest.raises(CorpusError, match=r"NUL byte\) at byte \d+"):
        _drain(path)


def test_the_submit_sniff_reads_the_tail_too(tmp_path):
    path = tmp_path / "tail.txt"
    path.write_bytes(b"word " * 100_000 + b"\x00" * 100)
    with pytest.raises(InvalidParameter, match="binary"):
        resolve_corpus([str(path)])


def _peak_rss_of(code: str) -> tuple[int, float]:
    """(peak RSS in KB, seconds) of a fresh interpreter running ``code``."""
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code + "\nimport resource;print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"],
                         capture_output=True, text=True, check=True, cwd=os.getcwd())
    return int(out.stdout.split()[-1]), time.perf_counter() - t0


def test_a_huge_token_is_dropped_and_memory_stays_bounded(tmp_path):
    small, big = tmp_path / "small.txt", tmp_path / "big.txt"
    for path, run in ((small, 2 << 20), (big, 48 << 20)):
        with open(path, "wb") as f:
            f.write(b"alpha beta\n")
            f.write(b"x" * run)  # one "token" with no whitespace
            f.write(b" gamma delta\nepsilon\n")
    code = ("from workers.word2vec.corpus import *\nst=ReadStats()\n"
            "s=list(read_sentences(Shard(%r), stats=st))\nassert s==[['alpha','beta'],['gamma','delta'],['epsilon']], s\n"
            "assert st.overlong_tokens==1, st")
    rss_small, t_small = _peak_rss_of(code % str(small))
    rss_big, t_big = _peak_rss_of(code % str(big))
    # 24x the bytes: memory does not follow the token (a few blocks at most), time stays linear
    assert rss_big - rss_small < 8 * BLOCK_BYTES // 1024, (rss_small, rss_big)


def test_long_tokens_below_the_limit_are_kept(tmp_path):
    path = tmp_path / "ok.txt"
    word = "y" * 1000
    path.write_text(f"a {word} b\n")
    sentences, st = _drain(path)
    assert sentences == [["a", word, "b"]] and st.overlong_tokens == 0


def test_a_catastrophic_token_pattern_fails_in_bounded_time(tmp_path):
    path = tmp_path / "aaa.txt"
    path.write_text("a" * 40 + "!\n")
    t0 = time.perf_counter()
    with pytest.raises(CorpusError, match="token-pattern"):
        _drain(path, token_pattern=r"(a|aa)+b")
    assert time.perf_counter() - t0 < 30


def test_a_file_deleted_after_planning_is_one_clear_error(tmp_path):
    path = tmp_path / "gone.txt"
    path.write_text("a b c\n")
    shard = Shard(str(path))
    path.unlink()
    with pytest.raises(CorpusError, match="no longer exists"):
        list(read_sentences(shard))


def test_a_named_pipe_is_refused_without_reading_it(tmp_path):
    fifo = tmp_path / "corpus.fifo"
    os.mkfifo(fifo)
    with pytest.raises(InvalidParameter, match="named pipe"):
        resolve_corpus([str(fifo)])


def test_a_mixed_directory_reports_what_it_skipped(tmp_path):
    d = tmp_path / "mixed"
    d.mkdir()
    (d / "a.txt").write_text("some words here\n")
    (d / "empty.txt").write_text("")
    (d / "blob.bin").write_bytes(b"\x00\x01\x02" * 10)
    skipped = []
    files = resolve_corpus([str(d)], skipped=skipped)
    assert [f.name for f in files] == ["a.txt"]
    assert sorted((p.name, why) for p, why in skipped) == [("blob.bin", "looks like a binary file, not text"),
                                                            ("empty.txt", "empty")]
