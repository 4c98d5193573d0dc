"""Corpus shards and the sentence reader.

A corpus (the files ``shared.corpus_files.resolve_corpus`` returns) is cut into ``Shard``s: byte ranges of
plain files, split right after a newline (or, on a long text8-style line, after any whitespace) so that no
token is cut and every byte belongs to exactly one shard. A compressed file (.gz, .bz2) cannot be seeked
cheaply, so it is always one whole-file shard.

``read_sentences`` streams one shard as lists of tokens: one sentence per line, a line longer than
``max_sentence_length`` tokens cut into several sentences. Memory stays bounded by the block size even for a
100 MB single-line file. Bytes that are not valid UTF-8 are replaced by U+FFFD and counted in ``ReadStats``.
"""
from __future__ import annotations

import codecs
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from shared.corpus_files import open_binary
from shared.errors import CorpusError

BLOCK_BYTES = 1 << 20
"""Bytes read per block; a line is split into sentences without ever holding more than about this much."""

MAX_TOKEN_BYTES = BLOCK_BYTES
"""A run of this many bytes without whitespace is no word: it is dropped (counted in ReadStats.overlong_tokens),
so a file holding one huge "token" costs no more memory or time than any other."""

PATTERN_TIMEOUT_S = 2.0
"""Longest time ``--token-pattern`` may spend on one piece of text; a pattern that backtracks
catastrophically fails the job (or the submit) with one line instead of hanging it."""

NEWLINE_SEARCH_BYTES = 1 << 20
"""How far past a planned shard boundary to look for a newline before settling for any whitespace."""

_WHITESPACE = b" \t\n\r\x0b\x0c"
_WS_RE = re.compile(rb"[ \t\n\r\x0b\x0c]")
_COMPRESSED = (".gz", ".bz2")


@dataclass(frozen=True)
class Shard:
    """Bytes ``[start, end)`` of ``path``; for a compressed file ``end`` is None (the whole file)."""

    path: str
    start: int = 0
    end: int | None = None

    @property
    def compressed(self) -> bool:
        return self.path.endswith(_COMPRESSED)

    def to_dict(self) -> dict:
        return {"path": self.path, "start": self.start, "end": self.end}

    @classmethod
    def from_dict(cls, d: dict) -> "Shard":
        return cls(path=d["path"], start=int(d["start"]), end=None if d["end"] is None else int(d["end"]))


@dataclass
class ReadStats:
    """What a reader saw: raw bytes, lines, sentences, tokens, and undecodable bytes it replaced."""

    bytes_read: int = 0
    lines: int = 0
    sentences: int = 0
    tokens: int = 0
    undecodable_bytes: int = 0
    overlong_tokens: int = 0

    def add(self, other: "ReadStats") -> None:
        for k in vars(self):
            setattr(self, k, getattr(self, k) + getattr(other, k))


# ---------------------------------------------------------------- planning

def _boundary_after(f, pos: int, limit: int) -> int:
    """First offset >= pos just past a newline (searched up to NEWLINE_SEARCH_BYTES), else past any
    whitespace; ``limit`` if neither is found before it."""
    f.seek(pos)
    data = f.read(min(NEWLINE_SEARCH_BYTES, limit - pos))
    nl = data.find(b"\n")
    if nl >= 0:
        return pos + nl + 1
    # a text8-style line: settle for any whitespace, reading on until one is found
    at = pos
    while True:
        m = _WS_RE.search(data)
        if m:
            return at + m.start() + 1
        at += len(data)
        if at >= limit:
            return limit
        f.seek(at)
        data = f.read(min(BLOCK_BYTES, limit - at))
        if not data:
            return limit


def corpus_size(files: list[str | Path]) -> int:
    """The corpus files' total size in bytes; CorpusError (one line) for a file gone since submit."""
    total = 0
    for file in files:
        try:
            total += os.path.getsize(file)
        except FileNotFoundError:
            raise CorpusError(f"corpus: {file} no longer exists (deleted or moved after submit)") from None
        except OSError as e:
            raise CorpusError(f"corpus: {file}: cannot be read ({e.strerror})") from None
    return total


def plan_shards(files: list[str | Path], target_bytes: int = 64 << 20) -> list[Shard]:
    """Cut ``files`` into shards of about ``target_bytes`` each, in file order.

    Plain files are split at whitespace (preferably a newline) so that no token is cut; consecutive
    shards of a file tile it exactly. Compressed files and empty files give one whole-file shard.
    """
    if target_bytes < 1:
        raise ValueError("target_bytes must be positive")
    shards: list[Shard] = []
    for file in files:
        path = str(file)
        if path.endswith(_COMPRESSED):
            shards.append(Shard(path, 0, None))
            continue
        size = os.path.getsize(path)
        if size <= target_bytes:
            shards.append(Shard(path, 0, size))
            continue
        start = 0
        with open(path, "rb") as f:
            while start < size:
                cut = size if start + target_bytes >= size else _boundary_after(f, start + target_bytes, size)
                shards.append(Shard(path, start, cut))
                start = cut
    return shards


# ---------------------------------------------------------------- reading

_local = threading.local()


def _count_and_replace(exc: UnicodeDecodeError):
    _local.bad = getattr(_local, "bad", 0) + (exc.end - exc.start)
    return ("\ufffd", exc.end)


codecs.register_error("kiln.count_replace", _count_and_replace)


def _decode(data: bytes, stats: ReadStats) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        _local.bad = 0
        text = data.decode("utf-8", errors="kiln.count_replace")
        stats.undecodable_bytes += _local.bad
        return text


def _raw_blocks(shard: Shard) -> Iterator[bytes]:
    """The shard's bytes in blocks of about BLOCK_BYTES; CorpusError if the file is gone or holds NUL bytes
    (checked on every block: a file whose head is text and whose tail is binary is caught where it turns)."""
    try:
        f = open_binary(shard.path)
    except FileNotFoundError:
        raise CorpusError(f"corpus: {shard.path} no longer exists (deleted or moved after submit)") from None
    except PermissionError:
        raise CorpusError(f"corpus: {shard.path}: permission denied") from None
    at = shard.start
    with f:
        if not (shard.compressed or shard.end is None):
            f.seek(shard.start)
        left = None if (shard.compressed or shard.end is None) else shard.end - shard.start
        while left is None or left > 0:
            try:
                block = f.read(BLOCK_BYTES if left is None else min(BLOCK_BYTES, left))
            except (OSError, EOFError) as e:
                raise CorpusError(f"corpus: {shard.path}: cannot be read ({e})") from None
            if not block:
                return
            nul = block.find(b"\x00")
            if nul >= 0:
                raise CorpusError(f"corpus: {shard.path}: binary data (a NUL byte) at byte {at + nul}; "
                                  "not a text file")
            at += len(block)
            if left is not None:
                left -= len(block)
            yield block


def _tokenizer(lowercase: bool, token_pattern: str | None):
    findall = None
    if token_pattern:
        import regex  # noqa: PLC0415 - re-compatible, and its matches can be given a time limit

        rx = regex.compile(token_pattern)

        def findall(text: str) -> list[str]:
            try:
                return rx.findall(text, timeout=PATTERN_TIMEOUT_S)
            except TimeoutError:
                raise CorpusError(f"--token-pattern {token_pattern!r} took over {PATTERN_TIMEOUT_S:g} s on one "
                                  "line (catastrophic backtracking); simplify the pattern") from None

    def tokens(text: str) -> list[str]:
        if lowercase:
            text = text.lower()
        return findall(text) if findall else text.split()

    return tokens


def read_sentences(
    shard: Shard,
    *,
    lowercase: bool = False,
    token_pattern: str | None = None,
    max_sentence_length: int = 10000,
    stats: ReadStats | None = None,
) -> Iterator[list[str]]:
    """Yield the shard's sentences as lists of tokens (empty lines give none).

    One line is one sentence, cut into pieces of at most ``max_sentence_length`` tokens. Tokens are
    whitespace-separated, or the matches of ``token_pattern``; ``lowercase`` lowercases first.
    ``stats`` (optional) is updated in place with what was read.
    """
    if max_sentence_length < 1:
        raise ValueError("max_sentence_length must be positive")
    st = stats if stats is not None else ReadStats()
    tokenize = _tokenizer(lowercase, token_pattern)
    maxlen = max_sentence_length
    pending: list[str] = []  # tokens of the current (long) line not yet yielded

    def flush_full() -> Iterator[list[str]]:
        nonlocal pending
        while len(pending) >= maxlen:
            st.sentences += 1
            yield pending[:maxlen]
            pending = pending[maxlen:]

    carry = b""
    skipping = False  # inside a run of more than MAX_TOKEN_BYTES bytes without whitespace: dropped
    for block in _raw_blocks(shard):
        st.bytes_read += len(block)
        if skipping:
            m = _WS_RE.search(block)
            if m is None:
                continue
            block, skipping = block[m.start():], False  # the whitespace stays: a newline still ends the line
        data = carry + block if carry else block
        last_nl = data.rfind(b"\n")
        if last_nl >= 0:
            lines = _decode(data[: last_nl + 1], st).split("\n")
            lines.pop()  # the empty string after the final newline
            carry = data[last_nl + 1 :]
            for line in lines:
                st.lines += 1
                toks = tokenize(line)
                st.tokens += len(toks)
                if pending:
                    pending.extend(toks)
                    toks, pending = pending, []
                if len(toks) <= maxlen:
                    if toks:
                        st.sentences += 1
                        yield toks
                    continue
                pending = toks
                yield from flush_full()
                if pending:
                    st.sentences += 1
                    yield pending
                pending = []
        else:
            carry = data
        if len(carry) > BLOCK_BYTES:
            # a long line: tokenize up to its last whitespace, keep the tail for the next block
            cut = max(carry.rfind(bytes([w])) for w in _WHITESPACE)
            if cut >= 0:
                toks = tokenize(_decode(carry[: cut + 1], st))
                st.tokens += len(toks)
                pending.extend(toks)
                carry = carry[cut + 1 :]
                yield from flush_full()
            if len(carry) > MAX_TOKEN_BYTES:  # no word is this long: drop it up to the next whitespace
                st.overlong_tokens += 1
                carry, skipping = b"", True
    if carry or pending:
        toks = tokenize(_decode(carry, st)) if carry else []
        st.tokens += len(toks)
        st.lines += 1
        pending.extend(toks)
        yield from flush_full()
        if pending:
            st.sentences += 1
            yield pending
