"""Real English text available offline, for the word2vec demo, tests and benchmark.

Three sources, each turned into plain lowercase text (one paragraph, gloss or sentence per line,
tokens ``[a-z]+``, lines of fewer than 3 words dropped) and cached under ``data/`` (git-ignored):

- ``wiki_extract_text``: the shortened Wikipedia dump in gensim's test data (200 articles); always there.
- ``python_docs_text``: the Python manuals of Debian's ``python3-doc`` package
  (``/usr/share/doc/python3*/html``), the prose of each page's main body.
- ``wordnet_text``: the WordNet glosses of Debian's ``dict-wn`` package (``/usr/share/dictd/wn.dict.dz``),
  one sense per line: its synonyms, then its definition and examples.

``bench_corpus`` concatenates the three: the benchmark's default corpus. ``make bench-data`` installs the
two packages (when it can) and builds it; ``python -m bench.corpora`` builds whatever is available and
prints the word counts.
"""
from __future__ import annotations

import bz2
import glob
import gzip
import os
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Iterable, Iterator

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "data"
DEFAULT_WIKI_TEXT = DATA / "enwiki-shortened.txt"
"""Where the extract is cached by default (``/data/`` is git-ignored)."""
DEFAULT_PYTHON_DOCS_TEXT = DATA / "python3-doc.txt"
DEFAULT_WORDNET_TEXT = DATA / "wordnet-glosses.txt"
DEFAULT_BENCH_TEXT = DATA / "bench-corpus.txt"
PYTHON_DOCS_GLOB = "/usr/share/doc/python3*/html"
"""Where Debian's python3-doc (via python3.X-doc) puts the HTML manuals."""
WORDNET_DICT = Path("/usr/share/dictd/wn.dict.dz")
"""dict-wn's dictd database: gzip-compatible (dictzip) text, with ``wn.index`` beside it."""
BENCH_PACKAGES = ("python3-doc", "dict-wn")
"""Debian packages the benchmark corpus comes from (``make bench-data`` installs them)."""

_WORD = re.compile(r"[a-z]+")
_MIN_WORDS = 3


def gensim_test_file(name: str) -> Path:
    """A file of gensim's bundled test data (gensim is a dev/bench extra)."""
    from gensim.test.utils import datapath

    path = Path(datapath(name))
    if not path.exists():
        raise FileNotFoundError(f"gensim test data {name} not found at {path}")
    return path


WIKI_DUMP = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"


def _write_cached(dest: Path, lines: Iterable[str]) -> Path:
    """Write ``lines`` (already tokenised text) to ``dest`` atomically, so concurrent callers never see a
    half-written file; return ``dest``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as out:
            for line in lines:
                out.write(line + "\n")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def _cached(dest: Path) -> bool:
    return dest.exists() and dest.stat().st_size > 0


def _tokens_line(text: str) -> str | None:
    words = _WORD.findall(text.lower())
    return " ".join(words) if len(words) >= _MIN_WORDS else None


def wiki_extract_text(dest_path: str | Path = DEFAULT_WIKI_TEXT) -> Path:
    """Write the Wikipedia sample as lowercase text (one paragraph per line, tokens ``[a-z]+``) to
    ``dest_path`` unless it is already there; return the path."""
    dest = Path(dest_path)
    if _cached(dest):
        return dest
    from gensim.corpora.wikicorpus import extract_pages, filter_wiki

    def lines() -> Iterator[str]:
        with bz2.open(gensim_test_file(WIKI_DUMP), "rb") as xml:
            for _title, text, _pageid in extract_pages(xml, filter_namespaces=("0",)):
                if text.lstrip()[:9].lower() == "#redirect":
                    continue
                for paragraph in filter_wiki(text).split("\n"):
                    if line := _tokens_line(paragraph):
                        yield line

    return _write_cached(dest, lines())


# -- python3-doc ------------------------------------------------------------------------------------

_BLOCK_TAGS = frozenset({"p", "div", "section", "li", "dt", "dd", "dl", "ul", "ol", "h1", "h2", "h3", "h4",
                         "h5", "h6", "table", "tr", "td", "th", "caption", "blockquote", "br", "hr", "figcaption"})
_CODE_TAGS = frozenset({"script", "style", "pre"})
"""Skipped with everything inside: scripts, styles and code listings are not English prose."""
_SKIPPED_PAGES = re.compile(r"^(genindex.*|py-modindex|search|contents)\.html$")
"""Generated indexes and the full table of contents: lists of names, not prose."""


class _ManualPage(HTMLParser):
    """The text of a Sphinx page's main body (``<div role="main">``): one line per block element.

    Navigation, sidebars and footers lie outside the body; code listings (``pre``), scripts, styles and
    API signatures (``<dt class="sig ...">``) are skipped.
    """

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self._buf: list[str] = []
        self._body_depth = 0  # open <div>s since the body's own, plus 1; 0 = outside the body
        self._skip: list[str] = []  # [tag, depth...]: the skipped element's tag and its nesting count
        self._skip_depth = 0

    def handle_starttag(self, tag, attrs):
        if self._skip_depth:
            if tag == self._skip[0]:
                self._skip_depth += 1
            return
        a = dict(attrs)
        if not self._body_depth:
            if tag == "div" and a.get("role") == "main":
                self._body_depth = 1
            return
        if tag in _CODE_TAGS or (tag == "dt" and "sig" in (a.get("class") or "").split()):
            self._flush()
            self._skip, self._skip_depth = [tag], 1
            return
        if tag == "div":
            self._body_depth += 1
        if tag in _BLOCK_TAGS:
            self._flush()

    def handle_startendtag(self, tag, attrs):
        if self._body_depth and not self._skip_depth and tag in _BLOCK_TAGS:
            self._flush()

    def handle_endtag(self, tag):
        if self._skip_depth:
            if tag == self._skip[0]:
                self._skip_depth -= 1
            return
        if not self._body_depth:
            return
        if tag in _BLOCK_TAGS:
            self._flush()
        if tag == "div":
            self._body_depth -= 1

    def handle_data(self, data):
        if self._body_depth and not self._skip_depth:
            self._buf.append(data)

    def _flush(self) -> None:
        if self._buf:
            if line := _tokens_line(" ".join(self._buf)):
                self.lines.append(line)
            self._buf = []

    def close(self) -> None:
        super().close()
        self._flush()


def python_docs_dir() -> Path | None:
    """The HTML root of the installed python3-doc manuals (the newest Python's), or None."""
    roots = sorted({Path(p).resolve() for p in glob.glob(PYTHON_DOCS_GLOB) if (Path(p) / "index.html").is_file()})
    return roots[-1] if roots else None


def python_docs_pages(root: Path) -> list[Path]:
    """The manual pages under ``root``, in a stable order, without generated indexes and assets."""
    pages = []
    for path in sorted(root.rglob("*.html")):
        rel = path.relative_to(root)
        if rel.parts[0].startswith("_") or _SKIPPED_PAGES.match(rel.name):
            continue
        pages.append(path)
    return pages


def python_docs_text(dest_path: str | Path = DEFAULT_PYTHON_DOCS_TEXT) -> Path:
    """Write the prose of the python3-doc manuals as lowercase text (one paragraph per line, tokens
    ``[a-z]+``) to ``dest_path`` unless it is already there; return the path.
    FileNotFoundError if python3-doc is not installed."""
    dest = Path(dest_path)
    if _cached(dest):
        return dest
    root = python_docs_dir()
    if root is None:
        raise FileNotFoundError(f"no Python manuals under {PYTHON_DOCS_GLOB} (install Debian's python3-doc)")

    def lines() -> Iterator[str]:
        for page in python_docs_pages(root):
            parser = _ManualPage()
            parser.feed(page.read_text(encoding="utf-8", errors="replace"))
            parser.close()
            yield from parser.lines

    return _write_cached(dest, lines())


# -- dict-wn ----------------------------------------------------------------------------------------

_SENSE = re.compile(r"^\s+(?:(?:n|v|adj|adv)\s+)?\d+:\s")
"""A line that starts a sense: ``    n 1: gloss...`` or ``    2: gloss...``."""
_SYN = re.compile(r"\[syn:(.*?)\]", re.S)
_BRACKETED = re.compile(r"\[[a-z]+:.*?\]", re.S)  # [ant: ...], [also: ...]: pointers, not the gloss
_B64 = {c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")}


def _dictd_number(text: str) -> int:
    """dictd's index numbers: base64 digits, most significant first."""
    n = 0
    for c in text:
        n = n * 64 + _B64[c]
    return n


def _wordnet_entries(dict_path: Path) -> Iterator[str]:
    """The text of each entry of a dictd database, in index order, without the 00-database-* entries."""
    with gzip.open(dict_path, "rb") as f:
        data = f.read()
    seen: set[int] = set()
    with open(dict_path.with_name(dict_path.name.removesuffix(".dz").removesuffix(".dict") + ".index"),
              encoding="utf-8", errors="replace") as index:
        for row in index:
            head, _, rest = row.rstrip("\n").partition("\t")
            offset_b64, _, length_b64 = rest.partition("\t")
            if head.startswith("00-database") or not length_b64:
                continue
            offset = _dictd_number(offset_b64)
            if offset in seen:  # several index keys (case variants) share one entry
                continue
            seen.add(offset)
            yield data[offset:offset + _dictd_number(length_b64)].decode("utf-8", errors="replace")


def _wordnet_senses(entry: str) -> Iterator[str]:
    """One line per sense of an entry: synonyms (else the headword), then gloss and examples."""
    head, _, body = entry.partition("\n")
    sense: list[str] = []
    for line in body.split("\n") + ["  1: "]:  # a sentinel sense flushes the last one
        if _SENSE.match(line):
            if sense:
                text = " ".join(sense)
                syn = _SYN.search(text)
                words = syn.group(1) if syn else head
                gloss = _BRACKETED.sub(" ", text)
                yield f"{words}\t{gloss}"
            sense = [_SENSE.sub("", line, count=1)]
        elif sense and line.strip():
            sense.append(line.strip())


def wordnet_text(dest_path: str | Path = DEFAULT_WORDNET_TEXT, dict_path: str | Path = WORDNET_DICT) -> Path:
    """Write the WordNet glosses of dict-wn as lowercase text to ``dest_path`` unless it is already there;
    return the path. One line per distinct gloss: the sense's synonyms, its definition and its examples
    (the same synset is listed under each of its words; it is written once). FileNotFoundError if
    dict-wn is not installed."""
    dest = Path(dest_path)
    if _cached(dest):
        return dest
    dict_path = Path(dict_path)
    if not dict_path.is_file():
        raise FileNotFoundError(f"{dict_path} not found (install Debian's dict-wn)")

    def lines() -> Iterator[str]:
        seen: set[int] = set()
        for entry in _wordnet_entries(dict_path):
            for sense in _wordnet_senses(entry):
                words, _, gloss = sense.partition("\t")
                gloss_line = " ".join(_WORD.findall(gloss.lower()))
                key = hash(gloss_line)
                if key in seen:
                    continue
                seen.add(key)
                if line := _tokens_line(f"{words} {gloss_line}"):
                    yield line

    return _write_cached(dest, lines())


# -- the benchmark corpus ---------------------------------------------------------------------------

def bench_corpus(dest_path: str | Path = DEFAULT_BENCH_TEXT) -> Path:
    """The benchmark corpus: python3-doc manuals + WordNet glosses + the Wikipedia sample, concatenated
    into ``dest_path`` (rebuilt when a part is newer); return the path. FileNotFoundError, naming the
    missing package, when python3-doc or dict-wn is not installed (``make bench-data`` installs them)."""
    dest = Path(dest_path)
    parts = [python_docs_text(), wordnet_text(), wiki_extract_text()]
    if _cached(dest) and dest.stat().st_mtime >= max(p.stat().st_mtime for p in parts):
        return dest

    def lines() -> Iterator[str]:
        for part in parts:
            with open(part, encoding="utf-8") as f:
                for line in f:
                    yield line.rstrip("\n")

    return _write_cached(dest, lines())


def word_count(path: str | Path) -> int:
    """Whitespace-separated tokens in a text file."""
    with open(path, encoding="utf-8", errors="replace") as f:
        return sum(len(line.split()) for line in f)


def questions_words() -> Path:
    """gensim's copy of the Google analogy questions (questions-words.txt)."""
    return gensim_test_file("questions-words.txt")


def wordsim353() -> Path:
    """gensim's copy of WordSim-353 (tab-separated pairs with human scores)."""
    return gensim_test_file("wordsim353.tsv")


def main() -> None:
    """Build every corpus whose source is installed and print its path and word count."""
    built = {"Wikipedia sample": wiki_extract_text()}
    missing = []
    for label, build in (("python3-doc manuals", python_docs_text), ("WordNet glosses", wordnet_text)):
        try:
            built[label] = build()
        except FileNotFoundError as e:
            missing.append(str(e))
    if not missing:
        built["benchmark corpus"] = bench_corpus()
    for label, path in built.items():
        print(f"{label:<20} {word_count(path):>12,} words  {path}")
    for reason in missing:
        print(f"missing: {reason}; the benchmark falls back to the Wikipedia sample")


if __name__ == "__main__":
    main()
