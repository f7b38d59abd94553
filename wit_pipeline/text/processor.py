"""Ingest's work on one record: normalise the caption, filter, identify the language, match queries.

`CaptionProcessor` holds only its config, so it pickles cheaply; `load()` fetches the fastText model and
the query automaton from their per-process caches. The local engine and Beam's `DoFn.setup()` call
the same `load()`, and then `process(record)` for each record.
"""

from __future__ import annotations

from typing import Any

from wit_pipeline import schema
from wit_pipeline.config import IngestConfig
from wit_pipeline.filters import apply_filters
from wit_pipeline.text import langid
from wit_pipeline.text.matching import Matcher, load_matcher
from wit_pipeline.text.normalise import normalise_record

ENGLISH = "en"


class CaptionProcessor:
    """Turns a source record into a TEXT_SCHEMA row carrying its status (`ok` or a drop reason)."""

    def __init__(self, config: IngestConfig):
        self.config = config
        self._model: Any = None  # the fastText model, loaded by load()
        self._matcher: Matcher | None = None

    def __getstate__(self):
        # Ship the config only: each worker loads (or reuses) the model and automaton itself.
        return {"config": self.config}

    def __setstate__(self, state):
        self.__init__(state["config"])

    def load(self) -> CaptionProcessor:
        """Load the language model and the query automaton (cached per process); idempotent."""
        if self._model is None:
            self._model = langid.load_model(self.config.lang.model_path)
        match = self.config.match
        if self._matcher is None and match.metadata_path is not None:
            self._matcher = load_matcher(match.metadata_path, match.case_sensitive)
        return self

    def process(self, record: dict) -> dict:
        """The record as a row of TEXT_SCHEMA (plus its extra columns) with its status decided."""
        return self.process_many([record])[0]

    def process_many(self, records: list[dict]) -> list[dict]:
        """`process` over many records, with one batched language-ID call for all their captions."""
        rows = [self._normalised_row(record) for record in records]
        pending = [row for row in rows if row["status"] == schema.OK]
        lowercase = self.config.lang.lowercase
        predictions = langid.predict_many(
            self._model, [r["caption"].lower() if lowercase else r["caption"] for r in pending]
        )
        for row, prediction in zip(pending, predictions, strict=True):
            self._decide(row, prediction)
        return rows

    def _normalised_row(self, record: dict) -> dict:
        row = schema.empty_row(schema.TEXT_SCHEMA)
        row.update(record)
        if row["status"] != schema.OK:
            return row
        if row["caption"] is None:
            row["status"] = "missing_caption"
            return row
        normalise_record(row)
        return row

    def _decide(self, row: dict, prediction: langid.Prediction) -> None:
        row["lang"], row["lang_score"] = prediction.lang, prediction.score
        reason = apply_filters(row, self.config.filters) or self._language_reason(prediction)
        if reason is not None:
            row["status"] = reason
        elif self._matcher is not None:
            row["entries"] = self._matcher.match(row["caption"])

    def _language_reason(self, prediction: langid.Prediction) -> str | None:
        if prediction.lang == ENGLISH and prediction.score >= self.config.lang.min_score:
            return None
        return "lang_not_en"
