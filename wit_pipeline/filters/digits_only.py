"""Drop captions with digits but no letters: `2019`, `12/05/2018`, `#345 - 12`."""

from __future__ import annotations

import re

from wit_pipeline.config import FilterConfig

_DIGIT = re.compile(r"\d")
_LETTER = re.compile(r"[^\W\d_]")  # a word character that is neither a digit nor '_': a letter


def digits_only(record: dict, config: FilterConfig) -> str | None:
    caption = record["caption"]
    if _DIGIT.search(caption) and not _LETTER.search(caption):
        return "digits_only"
    return None
