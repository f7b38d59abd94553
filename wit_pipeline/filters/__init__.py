"""Caption filters: each a pure function `(record, FilterConfig) -> drop reason | None`, one per file.

`FILTERS` is the one registry: `apply_filters` runs them in this order and records the first
reason, so the most specific reason wins (a bare URL is `url_only`, not `too_few_words`). Adding a
filter is one file, one line here, its status in `wit_pipeline.schema.STATUSES`, and a test.
"""

from __future__ import annotations

from collections.abc import Callable

from wit_pipeline.config import FilterConfig
from wit_pipeline.filters.blocklist import blocklist
from wit_pipeline.filters.digits_only import digits_only
from wit_pipeline.filters.filename_only import filename_only
from wit_pipeline.filters.max_chars import max_chars
from wit_pipeline.filters.min_chars import min_chars
from wit_pipeline.filters.min_words import min_words
from wit_pipeline.filters.natural_title import natural_title
from wit_pipeline.filters.url_only import url_only

CaptionFilter = Callable[[dict, FilterConfig], "str | None"]

FILTERS: dict[str, CaptionFilter] = {
    "url_only": url_only,
    "filename_only": filename_only,
    "digits_only": digits_only,
    "natural_title": natural_title,
    "min_chars": min_chars,
    "min_words": min_words,
    "max_chars": max_chars,
    "blocklist": blocklist,
}


def apply_filters(record: dict, config: FilterConfig) -> str | None:
    """The first drop reason any registered filter gives `record`, or None if all pass it."""
    for caption_filter in FILTERS.values():
        reason = caption_filter(record, config)
        if reason is not None:
            return reason
    return None
