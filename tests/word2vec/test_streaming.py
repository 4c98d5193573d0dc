"""The corpus reader streams: its memory is bounded by its block size, not by the file's size."""
import tracemalloc

from workers.word2vec.corpus import Shard, read_sentences
from workers.word2vec.vocab import count_shard

WORDS = " ".join(f"w{i % 5000}" for i in range(20000)) + " "


def peak_bytes(tmp_path, repeats: int) -> tuple[int, int]:
    path = tmp_path / f"text8-like-{repeats}.txt"
    with open(path, "w") as f:  # one long line, text8 style
        for _ in range(repeats):
            f.write(WORDS)
    tracemalloc.start()
    tokens = sum(len(s) for s in read_sentences(Shard(str(path)), max_sentence_length=10000))
    _, peak_read = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    counts = count_shard(Shard(str(path)))
    _, peak_count = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert tokens == repeats * 20000 and len(counts.counts) == 5000
    return peak_read, peak_count


def test_memory_does_not_grow_with_the_file(tmp_path):
    small = peak_bytes(tmp_path, 50)    # about 6 MB
    large = peak_bytes(tmp_path, 200)   # about 23 MB
    for s, big in zip(small, large):
        assert big < 1.25 * s, (small, large)
