"""Drop captions containing a blocklisted word: whole words, case-insensitive; none by default.

"ass" blocks "my ass" but not "glass" or "Assam". An entry may be several words ("bad phrase").
"""

from __future__ import annotations

import functools
import re

from wit_pipeline.config import FilterConfig


def blocklist(record: dict, config: FilterConfig) -> str | None:
    if not config.blocklist:
        return None
    return "blocklisted" if _pattern(config.blocklist).search(record["caption"]) else None


@functools.lru_cache(maxsize=8)
def _pattern(words: tuple[str, ...]) -> re.Pattern:
    # Longest first, so "bad word" wins over "bad" in the alternation; lookarounds instead of \b so
    # entries that start or end with punctuation still match as whole words.
    alternatives = "|".join(re.escape(w) for w in sorted(set(words), key=len, reverse=True) if w)
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


def load_blocklist(path: str) -> tuple[str, ...]:
    """Words of a blocklist file: one word or phrase per line; blank lines and `#` comments skipped."""
    import fsspec

    with fsspec.open(path, "rt", encoding="utf-8") as f:
        lines = [line.strip() for line in f]
    return tuple(line for line in lines if line and not line.startswith("#"))
