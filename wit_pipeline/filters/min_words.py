"""Drop captions with fewer than `config.min_words` words (DataComp keeps more than 2).

Words are whitespace-separated tokens, as DataComp counts them (`len(caption.split())`).
"""

from __future__ import annotations

from wit_pipeline.config import FilterConfig


def min_words(record: dict, config: FilterConfig) -> str | None:
    return "too_few_words" if len(record["caption"].split()) < config.min_words else None
