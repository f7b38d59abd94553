"""Drop captions shorter than `config.min_chars` characters (DataComp keeps more than 5)."""

from __future__ import annotations

from wit_pipeline.config import FilterConfig


def min_chars(record: dict, config: FilterConfig) -> str | None:
    return "too_short" if len(record["caption"]) < config.min_chars else None
