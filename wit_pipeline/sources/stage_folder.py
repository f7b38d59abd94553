"""A folder a wit stage wrote (OUT/ingest, OUT/balance) as the input of the next stage.

Such a folder holds the rows the stage kept in `part-NNNNN.parquet` files, beside tables of another
kind (balance's `entry_counts.parquet`), the rows it dropped (`dropped/`) and its `run.json`. This
reader reads the parts alone, in name order, in row ranges of `shard_size` rows, and its records
keep what the earlier stages found: wit's own columns as they are (source, source_id, page_url,
license, image_path, the size hints, caption_original, lang, lang_score, entries) and every column
an earlier stage carried beyond the schema (a URL list's `--keep-cols`), so those flow on without
repeating `--keep-cols`. Each row's url and caption are checked again before anything is fetched,
as a URL list's are, and its uid is computed from them.

The download stage reads its input with this reader when the input is a stage folder (it holds a
`run.json`), and with `urls.UrlListSource` otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa

from wit_pipeline import claim, io, schema
from wit_pipeline.sources.base import SourceShard, make_record
from wit_pipeline.sources.files import FileSource, expand_inputs
from wit_pipeline.sources.urls import UrlListConfig, read_rows, validate_pair

# What a record gets from the row's url and caption rather than from the folder.
_CHECKED = ("uid", "url", "caption", "status", "error")
# Columns a later stage adds (the image facts): not read from an earlier stage's folder.
_LATER = frozenset(field.name for field in schema.IMAGE_FIELDS)


def is_stage_folder(path: str) -> bool:
    """Whether `path` is a folder a wit stage wrote (it holds that stage's run.json)."""
    return io.exists(io.join(path, claim.RUN_FILE))


class StageFolderSource(FileSource):
    """The rows a wit stage kept, read on by the next stage.

    The config is the download stage's `UrlListConfig`; of it only `shard_size` applies here, since
    a stage folder's columns are wit's own.
    """

    name = "stage"
    default_config = UrlListConfig()
    config: UrlListConfig

    def __init__(self, folder: str, config: UrlListConfig | None = None):
        super().__init__([folder], config)
        self.folder = folder

    def shards(self) -> list[SourceShard]:
        """Row ranges of `shard_size` rows over the part files in name order, numbered across them."""
        planned: list[SourceShard] = []
        for part in self._parts():
            rows = io.parquet_rows(part)
            for start in range(0, rows, self.config.shard_size):
                planned.append(SourceShard(len(planned), part, start, min(start + self.config.shard_size, rows)))
        return planned

    def read(self, shard: SourceShard) -> Iterator[dict]:
        """The shard's rows as records: url and caption checked, every other column kept as it is."""
        table = read_rows(shard.path, shard.start, shard.stop)
        kept = [name for name in table.schema.names if name not in _CHECKED and name not in _LATER]
        for row in table.to_pylist():
            url, caption = row["url"], row["caption"]
            status, error = validate_pair(url, caption)
            record = make_record(url.strip() if status == schema.OK else url, caption, row.get("source"))
            record.update({name: row[name] for name in kept}, status=status, error=error)
            yield record

    def extra_columns(self, shard: SourceShard) -> dict[str, pa.DataType]:
        """The columns beyond wit's schema that an earlier stage carried, with their Arrow types."""
        file_schema = io.parquet_schema(shard.path)
        return {field.name: field.type for field in file_schema if field.name not in schema.RAW_SCHEMA.names}

    def _parts(self) -> list[str]:
        try:
            return expand_inputs(io.join(self.folder, "part-*.parquet"))
        except FileNotFoundError:
            return []  # the stage kept nothing: its stats say why, and the next stage has no shard
