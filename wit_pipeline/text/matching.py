"""Query matching: MetaCLIP's substring rule, run by an Aho-Corasick automaton.

MetaCLIP pads the caption with spaces, puts spaces around `, . ; : ? ! `` and turns tabs and
newlines into spaces; an entry matches when `" " + entry + " "` occurs in that text. Its reference
code loops over every entry per caption (`naive_match` here, kept as the specification the tests
compare against). The automaton finds the same entries in one pass over the caption, so a
500,000-entry list costs about what a 100-entry one does. It is built once per process and cached.
"""

from __future__ import annotations

import json

import ahocorasick

# MetaCLIP's `spacing`: these are wrapped in spaces, these become spaces.
PUNCTUATION_TO_WRAP = (",", ".", ";", ":", "?", "!", "`")
CHARS_TO_SPACE = ("\t", "\n", "\r")


def spacing(text: str) -> str:
    """The caption as MetaCLIP matches against it: space-padded, punctuation set apart."""
    spaced = f" {text} "
    for punct in PUNCTUATION_TO_WRAP:
        spaced = spaced.replace(punct, f" {punct} ")
    for char in CHARS_TO_SPACE:
        spaced = spaced.replace(char, " ")
    return spaced


def naive_match(text: str, entries: list[str], case_sensitive: bool = True) -> list[int]:
    """MetaCLIP's reference loop: ids of the entries `e` with `" e "` in the spaced caption."""
    spaced = spacing(text)
    if not case_sensitive:
        spaced = spaced.lower()
        return [i for i, entry in enumerate(entries) if f" {entry.lower()} " in spaced]
    return [i for i, entry in enumerate(entries) if f" {entry} " in spaced]


class Matcher:
    """An Aho-Corasick automaton over the space-padded entries; `match` equals `naive_match`."""

    def __init__(self, entries: list[str], case_sensitive: bool = True):
        self.case_sensitive = case_sensitive
        self.size = len(entries)
        automaton = ahocorasick.Automaton()
        # Two entries can be equal (or equal once lowercased): the automaton holds the first id,
        # `_same_as` the others, so both match, as in the naive loop.
        self._same_as: dict[int, list[int]] = {}
        for entry_id, entry in enumerate(entries):
            key = f" {entry if case_sensitive else entry.lower()} "
            first = automaton.get(key, None)
            if first is None:
                automaton.add_word(key, entry_id)
            else:
                self._same_as.setdefault(first, []).append(entry_id)
        if len(automaton):
            automaton.make_automaton()
        self._automaton = automaton

    def match(self, text: str) -> list[int]:
        """Sorted ids of the entries the caption matches (MetaCLIP's rule)."""
        if not len(self._automaton):
            return []
        spaced = spacing(text)
        if not self.case_sensitive:
            spaced = spaced.lower()
        found = {entry_id for _end, entry_id in self._automaton.iter(spaced)}
        if self._same_as:
            found.update(other for entry_id in list(found) for other in self._same_as.get(entry_id, ()))
        return sorted(found)


def load_entries(path: str) -> list[str]:
    """The entry list of a metadata file: a JSON list of strings (as `wit metadata build` writes)."""
    import fsspec

    with fsspec.open(path, "rt", encoding="utf-8") as f:
        entries = json.load(f)
    if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
        raise ValueError(f"metadata file {path} must be a JSON list of strings")
    return entries


_MATCHERS: dict[tuple[str, bool], Matcher] = {}


def load_matcher(metadata_path: str, case_sensitive: bool = True) -> Matcher:
    """The Matcher of a metadata file, built once per process and cached."""
    key = (metadata_path, case_sensitive)
    matcher = _MATCHERS.get(key)
    if matcher is None:
        matcher = Matcher(load_entries(metadata_path), case_sensitive)
        _MATCHERS[key] = matcher
    return matcher
