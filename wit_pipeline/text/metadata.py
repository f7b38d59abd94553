"""The query list (MetaCLIP's "metadata"), built the way CLIP describes its 500,000 queries.

Parts, in this order (which decides what `max_entries` cuts): WordNet lemma names, English
Wikipedia unigrams with count >= `min_unigram_count`, bigrams with high pointwise mutual
information, and titles (any text file, one per line). Entries are deduplicated (first part wins)
and capped. Every part is optional.

PMI is the ratio P(ab) / (P(a) P(b)), not its logarithm: CLIP and MetaCLIP keep bigrams with
"PMI >= 30", and no bigram of a real corpus reaches a log-PMI of 30 (ours peak near 24), while the
ratio threshold keeps tens of thousands.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

WORDNET_DATA_FILES = ("data.noun", "data.verb", "data.adj", "data.adv")
# Adjective lemmas carry a syntactic marker: `galore(ip)`, `elect(p)`, `atomic(a)`.
_ADJ_MARKER = re.compile(r"\((?:a|p|ip)\)$")


@dataclass(frozen=True)
class MetadataConfig:
    wordnet: str | None = None
    unigrams: str | None = None
    min_unigram_count: int = 100
    bigrams: str | None = None
    # Unigram counts from the bigrams' own corpus; None: the `unigrams` file.
    bigram_unigrams: str | None = None
    min_pmi: float = 30.0
    titles: tuple[str, ...] = field(default_factory=tuple)
    max_entries: int = 500_000


def _open_text(path: str):
    import fsspec

    return fsspec.open(
        path, "rt", encoding="utf-8", errors="replace", compression="gzip" if path.endswith(".gz") else None
    ).open()


def wordnet_lemmas(folder: str) -> list[str]:
    """Every lemma name of every synset in a WordNet database folder, underscores as spaces.

    Reads the `data.*` files of WordNet 3.0's format: Debian's `wordnet-base` (/usr/share/wordnet)
    and NLTK's `corpora/wordnet` folder are both this format.
    """
    found = [name for name in WORDNET_DATA_FILES if os.path.exists(os.path.join(folder, name))]
    if not found:
        raise FileNotFoundError(f"no WordNet data.* files in {folder}")
    lemmas: list[str] = []
    for name in found:
        with open(os.path.join(folder, name), encoding="utf-8", errors="replace") as f:
            for line in f:
                lemmas.extend(_synset_lemmas(line))
    return _dedup(lemmas)


def _synset_lemmas(line: str) -> Iterator[str]:
    # Header lines (the licence) start with two spaces. A synset line is:
    # offset lex_filenum ss_type w_cnt(hex) word lex_id [word lex_id ...] p_cnt ...
    if line.startswith("  ") or not line.strip():
        return
    fields = line.split(" ")
    count = int(fields[3], 16)
    for i in range(count):
        word = _ADJ_MARKER.sub("", fields[4 + 2 * i])
        yield word.replace("_", " ")


def read_counts(path: str) -> dict[str, int]:
    """`word;count` or `word<TAB>count` lines (optionally gzipped); the separator is the last one."""
    counts: dict[str, int] = {}
    with _open_text(path) as f:
        for number, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line:
                continue
            cut = max(line.rfind("\t"), line.rfind(";"))
            word, count = line[:cut].strip(), line[cut + 1 :].strip()
            if cut < 0 or not count.isdigit():
                raise ValueError(f"{path}:{number}: expected 'word;count' or 'word<TAB>count', got {line[:80]!r}")
            if word:
                counts[word] = counts.get(word, 0) + int(count)
    return counts


def frequent_unigrams(counts: dict[str, int], min_count: int) -> list[str]:
    """Words with count >= min_count, most frequent first (ties alphabetical, for determinism)."""
    kept = [(-c, w) for w, c in counts.items() if c >= min_count and " " not in w]
    return [w for _, w in sorted(kept)]


def pmi_bigrams(bigram_counts: dict[str, int], unigram_counts: dict[str, int], min_pmi: float) -> list[str]:
    """Two-word entries whose PMI ratio P(ab) / (P(a) P(b)) is at least `min_pmi`, highest first."""
    bigram_total = sum(bigram_counts.values())
    unigram_total = sum(unigram_counts.values())
    if not bigram_total or not unigram_total:
        return []
    scored = []
    for bigram, count in bigram_counts.items():
        words = bigram.split()
        if len(words) != 2 or words[0] not in unigram_counts or words[1] not in unigram_counts:
            continue
        p_ab = count / bigram_total
        p_a, p_b = unigram_counts[words[0]] / unigram_total, unigram_counts[words[1]] / unigram_total
        pmi = p_ab / (p_a * p_b)
        if pmi >= min_pmi:
            scored.append((-math.log(pmi), " ".join(words)))
    return [b for _, b in sorted(scored)]


def read_titles(path: str) -> list[str]:
    with _open_text(path) as f:
        return [line.strip() for line in f if line.strip()]


def _dedup(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def build_parts(config: MetadataConfig) -> dict[str, list[str]]:
    """Each configured part's entries, in order; parts not configured are absent."""
    parts: dict[str, list[str]] = {}
    if config.wordnet:
        parts["wordnet"] = wordnet_lemmas(config.wordnet)
    unigram_counts = read_counts(config.unigrams) if config.unigrams else None
    if unigram_counts is not None:
        parts["unigrams"] = frequent_unigrams(unigram_counts, config.min_unigram_count)
    if config.bigrams:
        base = read_counts(config.bigram_unigrams) if config.bigram_unigrams else unigram_counts
        if base is None:
            raise ValueError("bigram PMI needs unigram counts: give a unigram file too")
        parts["bigrams"] = pmi_bigrams(read_counts(config.bigrams), base, config.min_pmi)
    if config.titles:
        parts["titles"] = _dedup(t for path in config.titles for t in read_titles(path))
    return parts


def merge(parts: dict[str, list[str]], max_entries: int) -> tuple[list[str], dict[str, int]]:
    """The entry list (deduplicated across parts, capped) and how many entries each part added."""
    entries: dict[str, None] = {}
    added: dict[str, int] = {}
    for name, items in parts.items():
        before = len(entries)
        for item in items:
            if len(entries) >= max_entries:
                break
            entries.setdefault(item)
        added[name] = len(entries) - before
    return list(entries), added


# Where WordNet's database usually lives: Debian's wordnet-base, then NLTK's download folders.
WORDNET_FOLDERS = (
    "/usr/share/wordnet",
    "~/nltk_data/corpora/wordnet",
    "/usr/share/nltk_data/corpora/wordnet",
    "/usr/local/share/nltk_data/corpora/wordnet",
    "/usr/lib/nltk_data/corpora/wordnet",
)


def find_wordnet(folders: Iterable[str] = WORDNET_FOLDERS) -> str | None:
    """The first folder holding WordNet `data.*` files, or None."""
    for folder in folders:
        folder = os.path.expanduser(folder)
        if any(os.path.exists(os.path.join(folder, name)) for name in WORDNET_DATA_FILES):
            return folder
    return None


def _package_file(package: str, name: str) -> str | None:
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(list(spec.submodule_search_locations)[0], name)
    return path if os.path.exists(path) else None


def packaged_sources() -> dict[str, str]:
    """The real inputs found on this machine: WordNet, pywordfreq's Wikipedia unigram counts, and
    wordsegment's web bigram counts (with its own unigram counts, for PMI)."""
    found = {
        "wordnet": find_wordnet(),
        "unigrams": _package_file("pywordfreq", "word_frequencies.gz"),
        "bigrams": _package_file("wordsegment", "bigrams.txt"),
        "bigram_unigrams": _package_file("wordsegment", "unigrams.txt"),
    }
    return {name: path for name, path in found.items() if path}
