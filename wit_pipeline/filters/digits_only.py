"""Drop captions with digits but no letters: `2019`, `12/05/2018`, `#345 - 12`."""

from __future__ import annotations

from wit_pipeline.config import FilterConfig


def digits_only(record: dict, config: FilterConfig) -> str | None:
    caption = record["caption"]
    if any(ch.isdigit() for ch in caption) and not any(ch.isalpha() for ch in caption):
        return "digits_only"
    return None
