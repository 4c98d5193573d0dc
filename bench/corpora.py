"""Real English text available offline, for the word2vec demo, tests and benchmark.

gensim's test data ships a shortened Wikipedia dump (about 6 MB of XML, 200 articles); ``wiki_extract_text``
turns it into plain lowercase text, one paragraph per line, letters only, and caches the result.
"""
from __future__ import annotations

import bz2
import os
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_WIKI_TEXT = REPO / "data" / "enwiki-shortened.txt"
"""Where the extract is cached by default (``/data/`` is git-ignored)."""

_WORD = re.compile(r"[a-z]+")


def gensim_test_file(name: str) -> Path:
    """A file of gensim's bundled test data (gensim is a dev/bench extra)."""
    from gensim.test.utils import datapath

    path = Path(datapath(name))
    if not path.exists():
        raise FileNotFoundError(f"gensim test data {name} not found at {path}")
    return path


WIKI_DUMP = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"


def wiki_extract_text(dest_path: str | Path = DEFAULT_WIKI_TEXT) -> Path:
    """Write the Wikipedia sample as lowercase text (one paragraph per line, tokens ``[a-z]+``) to
    ``dest_path`` unless it is already there; return the path."""
    dest = Path(dest_path)
    if dest.exists() and dest.stat().st_size > 0:
        return dest
    from gensim.corpora.wikicorpus import extract_pages, filter_wiki

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    with bz2.open(gensim_test_file(WIKI_DUMP), "rb") as xml, open(tmp, "w", encoding="utf-8") as out:
        for _title, text, _pageid in extract_pages(xml, filter_namespaces=("0",)):
            if text.lstrip()[:9].lower() == "#redirect":
                continue
            for paragraph in filter_wiki(text).split("\n"):
                words = _WORD.findall(paragraph.lower())
                if len(words) >= 3:
                    out.write(" ".join(words) + "\n")
    os.replace(tmp, dest)  # atomic, so concurrent callers never see a half-written file
    return dest


def questions_words() -> Path:
    """gensim's copy of the Google analogy questions (questions-words.txt)."""
    return gensim_test_file("questions-words.txt")


def wordsim353() -> Path:
    """gensim's copy of WordSim-353 (tab-separated pairs with human scores)."""
    return gensim_test_file("wordsim353.tsv")


if __name__ == "__main__":
    print(wiki_extract_text())
