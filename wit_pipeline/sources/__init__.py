"""Sources: one module per kind of input, each following the contract in `base.py`.

`SOURCES` names every source by its `--source` value. Entries are "module:Class" strings loaded on
first use, so importing this package imports no parser (ijson, warcio, selectolax) and a source
whose module is not installed fails only when it is asked for; a class may stand in for a string
(a test's or a plugin's own source). Sources hold no command-line code: their flags live in
`wit_pipeline/commands/source_flags.py`.
"""

from __future__ import annotations

import importlib

SOURCES: dict[str, str | type] = {
    "urls": "wit_pipeline.sources.urls:UrlListSource",
    "coco": "wit_pipeline.sources.coco:CocoSource",
    "yfcc": "wit_pipeline.sources.yfcc:YfccSource",
    "warc": "wit_pipeline.sources.warc:WarcSource",
    "wat": "wit_pipeline.sources.wat:WatSource",
}


def source_class(name: str) -> type:
    """The class registered as `name` in SOURCES; a ValueError lists the known names otherwise."""
    if name not in SOURCES:
        raise ValueError(f"unknown source {name!r}; known sources: {', '.join(sorted(SOURCES))}")
    entry = SOURCES[name]
    if not isinstance(entry, str):
        return entry
    module_name, _, class_name = entry.partition(":")
    return getattr(importlib.import_module(module_name), class_name)
