"""Drop captions that are only a URL: the alt text names an address, not the image."""

from __future__ import annotations

import re

from wit_pipeline.config import FilterConfig

_URL = re.compile(r"(?:[a-z][a-z0-9+.-]*://|www\.)\S+", re.IGNORECASE)


def url_only(record: dict, config: FilterConfig) -> str | None:
    return "url_only" if _URL.fullmatch(record["caption"].strip()) else None
