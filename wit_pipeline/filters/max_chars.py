"""Drop captions longer than `config.max_chars` characters: page text scraped into an alt attribute."""

from __future__ import annotations

from wit_pipeline.config import FilterConfig


def max_chars(record: dict, config: FilterConfig) -> str | None:
    return "too_long" if len(record["caption"]) > config.max_chars else None
