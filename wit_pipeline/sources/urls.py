"""URL lists: Parquet, CSV, TSV and JSONL files (optionally gzip-compressed), or a folder of them.

A list from outside wit (img2dataset's, LAION's, DataComp's, the user's own). Column names are
configurable and default to img2dataset's conventions; `--keep-cols` names the other columns to
carry, and a column named after one of wit's pair fields (page_url, license, source_id ...) fills
that field as data. Parquet inputs are split into row ranges in place; text formats are streamed
once into Parquet shard files under a staging folder (as img2dataset does with its feather
shards), so that no shard ever needs the whole file and every worker can open its own shard
directly, gzip or not. A folder a wit stage wrote is read by `stage_folder.StageFolderSource`.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import sys
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import fsspec
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from wit_pipeline import schema
from wit_pipeline.config import ConfigError
from wit_pipeline.io import (
    InputError,
    NoInput,
    exists,
    expand,
    fs_path,
    join,
    open_parquet,
    parquet_schema,
    read_json,
    write_atomic,
)
from wit_pipeline.sources.base import SourceShard, make_record
from wit_pipeline.sources.files import FileSource

FORMATS = ("parquet", "csv", "tsv", "jsonl")
_STAGING_DONE = "_SUCCESS"
# wit's pair fields a list may fill by naming a column after one (page_url, license, source_id ...):
# taken as data, with wit's type, instead of the values a URL list gives them.
_PAIR_COLUMNS = [f.name for f in schema.PAIR_FIELDS if f.name not in ("uid", "url", "caption", "status", "error")]


# The input cannot be read as a URL list: the shared input error, reported in one line.
InputError = InputError

# img2dataset's column spellings, accepted when the user leaves --url-col / --caption-col alone.
IMG2DATASET_URL_COLS = ("url", "URL")
IMG2DATASET_CAPTION_COLS = ("caption", "TEXT", "text")


@dataclass(frozen=True)
class UrlListConfig:
    """How to read a URL+caption list (img2dataset-compatible column names)."""

    url_col: str = "url"
    caption_col: str = "caption"
    keep_cols: tuple[str, ...] = ()
    # Rows per shard: the unit of download work, as img2dataset's number_sample_per_shard.
    shard_size: int = 10_000
    # Input format: None infers it from the file name (.parquet, .csv, .tsv, .jsonl, with .gz).
    input_format: str | None = None

    def __post_init__(self):
        if self.shard_size <= 0:
            raise ConfigError("shard_size must be positive")


def infer_format(path: str) -> str:
    name = path.lower().rsplit("/", 1)[-1]
    for suffix in (".gz", ".bz2", ".zst"):
        name = name.removesuffix(suffix)
    ext = name.rsplit(".", 1)[-1]
    ext = {"json": "jsonl", "ndjson": "jsonl", "txt": "tsv"}.get(ext, ext)
    if ext not in FORMATS:
        raise InputError(f"{path}: cannot tell the format from the name; use one of {', '.join(FORMATS)}")
    return ext


def list_inputs(path: str) -> list[str]:
    """The input files: `path` itself, or the URL-list files directly inside the folder `path`."""
    try:
        return expand(path, recursive=False, accept=_is_url_list_name, missing="input not found: {}")
    except NoInput:
        if exists(path):  # a folder holding no list: say which formats were looked for
            raise InputError(f"no URL-list files ({', '.join(FORMATS)}) in folder {path}") from None
        raise


def _is_url_list_name(name: str) -> bool:
    """A file a folder of URL lists contributes: a known format, not hidden or `_`-prefixed."""
    if name.startswith(("_", ".")):
        return False
    try:
        infer_format(name)
    except InputError:
        return False
    return True


def validate_pair(url, caption) -> tuple[str, str | None]:
    """The status and reason for a raw (url, caption) pair before anything is fetched."""
    if not isinstance(url, str) or not url.strip():
        return "invalid_url", "url is null or empty"
    try:
        parts = urllib.parse.urlsplit(url.strip())
    except ValueError as err:
        return "invalid_url", f"url does not parse: {err}"
    if parts.scheme.lower() not in ("http", "https"):
        return "invalid_url", f"url scheme {parts.scheme!r} is not http or https"
    if not parts.hostname:
        return "invalid_url", "url has no host"
    if caption is None:
        return "missing_caption", "caption is null"
    return schema.OK, None


class UrlListSource(FileSource):
    """A URL+caption list as a wit source: `shards()` plans the work, `read()` streams one shard."""

    name = "urls"
    default_config = UrlListConfig()
    config: UrlListConfig

    def __init__(self, paths: str | Sequence[str], config: UrlListConfig | None = None, staging_dir: str | None = None):
        super().__init__(paths, config)
        # Where text-format inputs are staged as Parquet shards (kept, so that reruns reuse them).
        self.staging_dir = staging_dir

    def shards(self) -> list[SourceShard]:
        """Row-range shards of `shard_size` rows, numbered in input order across files."""
        planned: list[SourceShard] = []
        for file in (f for path in self.paths for f in list_inputs(path)):
            fmt = self.config.input_format or infer_format(file)
            parquet_files = [file] if fmt == "parquet" else self._stage_text_file(file, fmt, len(planned))
            row_offset = 0  # row number within the original file, for provenance
            for parquet_file in parquet_files:
                rows, names = _footer(parquet_file)
                columns = _data_columns(names) if rows else []
                if columns:  # a missing column is the user's to fix: say so before any work starts
                    self._resolve_columns(columns, file)
                for start in range(0, rows, self.config.shard_size):
                    stop = min(start + self.config.shard_size, rows)
                    planned.append(SourceShard(len(planned), parquet_file, start, stop, (file, row_offset)))
                    row_offset += stop - start
        return planned

    def read(self, shard: SourceShard) -> Iterator[dict]:
        origin, first_row = self.origin(shard), self._first_row(shard)
        table = read_rows(shard.path, shard.start, shard.stop)
        if "_wit_error" in table.schema.names:
            table = _with_null_columns(table, [self.config.url_col, self.config.caption_col])
        url_col, caption_col = self._resolve_columns(table.schema.names, origin)
        kept = list(self.config.keep_cols)
        table = _castable(table, [c for c in _PAIR_COLUMNS if c in table.schema.names])
        carried = [c for c in _PAIR_COLUMNS if c in table.schema.names]
        data = table.select([*dict.fromkeys([url_col, caption_col, *carried, *kept])]).to_pydict()
        urls, url_errors = _text_values(table.column(url_col), "url")
        captions, caption_errors = _text_values(table.column(caption_col), "caption")
        base = origin.rsplit("/", 1)[-1]
        errors = table.column("_wit_error").to_pylist() if "_wit_error" in table.schema.names else None
        for i in range(table.num_rows):
            url, caption = urls[i], captions[i]
            status, error = validate_pair(url, caption)
            if url_errors[i] or caption_errors[i]:
                status, error = "malformed_record", url_errors[i] or caption_errors[i]
            if errors and errors[i]:
                status, error = "malformed_record", errors[i]
            record = make_record(
                url.strip() if status == schema.OK else url,
                caption,
                source=self.name,
                source_id=f"{base}:{first_row + i}",
                status=status,
                error=error,
            )
            for name in carried:
                if data[name][i] is not None:
                    record[name] = data[name][i]
            for name in kept:
                record[name] = data[name][i]
            yield record

    def origin(self, shard: SourceShard) -> str:
        """The list file the shard's rows come from (a text list is read from its staged Parquet)."""
        return shard.options[0] if shard.options else shard.path

    def _first_row(self, shard: SourceShard) -> int:
        """The shard's first row number within its list file, for each record's source_id."""
        return shard.options[1] if shard.options else shard.start

    def extra_columns(self, shard: SourceShard) -> dict[str, pa.DataType]:
        """Arrow types of the extra columns this shard's records carry, as found in its file."""
        file_schema = parquet_schema(shard.path)
        return {name: file_schema.field(name).type for name in self.config.keep_cols}

    def _resolve_columns(self, names: list[str], origin: str) -> tuple[str, str]:
        names = [n for n in names if n != "_wit_error"]
        url_col = _pick_column(names, self.config.url_col, IMG2DATASET_URL_COLS, "url", origin)
        caption_col = _pick_column(names, self.config.caption_col, IMG2DATASET_CAPTION_COLS, "caption", origin)
        missing = [c for c in self.config.keep_cols if c not in names]
        if missing:
            raise InputError(f"{origin}: --keep-cols {missing} not found; columns are {names}")
        clashes = [c for c in self.config.keep_cols if c in schema.RAW_SCHEMA.names or c in (url_col, caption_col)]
        if clashes:
            raise InputError(
                f"--keep-cols {','.join(clashes)}: wit writes column(s) of that name itself; "
                "rename them in the input to carry them"
            )
        return url_col, caption_col

    def _stage_text_file(self, file: str, fmt: str, first_shard: int) -> list[str]:
        """Stream a text-format file once into Parquet files of shard_size rows; reuse them on rerun."""
        if self.staging_dir is None:
            raise InputError(f"{file}: a {fmt} input needs a staging folder for its shards (staging_dir)")
        stage = join(self.staging_dir, f"{first_shard:05d}-{_safe_name(file)}")
        fs, stage_path = fs_path(stage)
        done = join(stage, _STAGING_DONE)
        if exists(done):
            return [join(stage, n) for n in read_json(done)]
        fs.makedirs(stage_path, exist_ok=True)
        try:
            names = _write_staged(fs, stage_path, _text_batches(file, fmt, self.config.shard_size))
        except _NeedsPythonReader:
            # Arrow's fast reader gave up on the file (a malformed line that is not UTF-8 either):
            # read it again, whole, with the csv module, which turns every line into a row.
            names = _write_staged(fs, stage_path, _text_batches(file, fmt, self.config.shard_size, python_csv=True))
        write_atomic(done, json.dumps(names).encode())
        return [join(stage, n) for n in names]


def _text_values(column: pa.ChunkedArray, what: str) -> tuple[list, list]:
    """A URL or caption column as str-or-None values, with a per-row error where a value is not
    text: a list may hold integers, bytes (valid UTF-8 or not) or nested values there."""
    kind = column.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind):
        return column.to_pylist(), [None] * len(column)
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_fixed_size_binary(kind):
        values: list[str | None] = []
        errors: list[str | None] = []
        for raw in column.to_pylist():
            try:
                values.append(None if raw is None else raw.decode("utf-8"))
                errors.append(None)
            except UnicodeDecodeError as err:
                values.append(None)
                errors.append(f"{what} is not UTF-8 text: {err}")
        return values, errors
    return [None] * len(column), [
        None if v is None else f"{what} column has type {kind}, not text" for v in column.to_pylist()
    ]


def _castable(table: pa.Table, carried: list[str]) -> pa.Table:
    """Cast the input's columns that share a name with wit's own to wit's type; a column that
    does not cast (a list of ints as `license`) is not carried rather than failing the shard."""
    for name in carried:
        wanted = schema.RAW_SCHEMA.field(name).type
        if table.schema.field(name).type == wanted:
            continue
        index = table.schema.get_field_index(name)
        try:
            table = table.set_column(index, name, table.column(name).cast(wanted))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            table = table.remove_column(index)
    return table


def _with_null_columns(table: pa.Table, names: list[str]) -> pa.Table:
    """A staged part made only of malformed lines lacks the file's columns: add them as nulls."""
    for name, alternatives in zip(names, (IMG2DATASET_URL_COLS, IMG2DATASET_CAPTION_COLS), strict=True):
        if name not in table.schema.names and not any(alt in table.schema.names for alt in alternatives):
            table = table.append_column(name, pa.nulls(table.num_rows, pa.string()))
    return table


def _pick_column(names, wanted, alternatives, what, origin) -> str:
    if wanted in names:
        return wanted
    default = "url" if what == "url" else "caption"
    if wanted == default:  # the user left the default: accept img2dataset's spellings too
        for alternative in alternatives:
            if alternative in names:
                return alternative
    raise InputError(f"{origin}: no {what} column {wanted!r}; columns are {names} (use --{what}-col)")


def _safe_name(path: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in path.rsplit("/", 1)[-1])[:80]


def _footer(path: str) -> tuple[int, list[str]]:
    """A Parquet file's row count and column names, from one read of its footer."""
    try:
        with open_parquet(path) as parquet:
            return parquet.metadata.num_rows, parquet.schema_arrow.names
    except pa.ArrowInvalid as err:
        raise InputError(f"{path}: not a readable Parquet file: {err}") from None


def _data_columns(names: list[str]) -> list[str]:
    # A staged part made only of malformed lines has no columns of its own (see _with_null_columns).
    return names if "_wit_error" not in names or len(names) > 1 else []


def read_rows(path: str, start: int, stop: int | None) -> pa.Table:
    """Rows [start, stop) of a Parquet file (stop None: to its end), reading only the row groups
    that hold them."""
    with open_parquet(path) as parquet:
        stop = parquet.metadata.num_rows if stop is None else stop
        groups, offset, first = [], 0, None
        for g in range(parquet.num_row_groups):
            n = parquet.metadata.row_group(g).num_rows
            if offset + n > start and offset < stop:
                groups.append(g)
                first = offset if first is None else first
            offset += n
        table = parquet.read_row_groups(groups) if groups else parquet.schema_arrow.empty_table()
    return table.slice(start - (first or 0), stop - start)


def _write_staged(fs, stage_path: str, batches) -> list[str]:
    names = []
    for index, batch in enumerate(batches):
        name = f"{index:05d}.parquet"
        with fs.open(f"{stage_path}/{name}", "wb") as f:
            pq.write_table(batch, f)
        names.append(name)
    return names


class _NeedsPythonReader(Exception):
    """Arrow's CSV reader failed part-way; the slower csv-module reader reads every line."""


def _text_batches(path: str, fmt: str, rows_per_batch: int, python_csv: bool = False) -> Iterator[pa.Table]:
    """Stream a CSV/TSV/JSONL file (any fsspec compression) as tables of `rows_per_batch` rows."""
    with _open_text(path) as f:
        if fmt == "jsonl":
            batches = _jsonl_batches(f, path)
        else:
            batches = _python_csv_batches(path, fmt) if python_csv else _csv_batches(path, fmt)
        pending: list[pa.Table] = []
        count = 0
        for table in batches:
            while table.num_rows:
                take = min(rows_per_batch - count, table.num_rows)
                pending.append(table.slice(0, take))
                table = table.slice(take)
                count += take
                if count == rows_per_batch:
                    yield pa.concat_tables(pending, promote_options="permissive")
                    pending, count = [], 0
        if pending:
            yield pa.concat_tables(pending, promote_options="permissive")


def _csv_batches(path: str, fmt: str) -> Iterator[pa.Table]:
    """CSV/TSV as tables of string columns; a row with the wrong field count becomes an error row."""
    delimiter = "\t" if fmt == "tsv" else ","
    names = _csv_header(path, delimiter)
    bad_rows: list[dict] = []

    def record_bad_row(row) -> str:
        bad_rows.append(
            {
                "_wit_error": f"line {row.number}: {row.text[:200]!r}: expected "
                f"{row.expected_columns} fields, got {row.actual_columns}"
            }
        )
        return "skip"  # skipped by the parser only: it comes back below as a malformed_record row

    # Every column as a string: URL lists carry ids and numbers that must not be reinterpreted,
    # and a type guessed from the first block can fail on a later one.
    # Read as bytes and decode after: one non-UTF-8 byte must cost its row, not the whole file.
    convert = pacsv.ConvertOptions(
        column_types={n: pa.binary() for n in names}, strings_can_be_null=True, quoted_strings_can_be_null=False
    )
    parse = pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True, invalid_row_handler=record_bad_row)
    try:
        with _open_text(path) as f, _arrow_row_errors_silenced():
            reader = pacsv.open_csv(
                f,
                parse_options=parse,
                convert_options=convert,
                read_options=pacsv.ReadOptions(block_size=1 << 22, use_threads=False),
            )
            for batch in reader:
                yield _decode_utf8(pa.Table.from_batches([batch]))
                if bad_rows:
                    yield pa.Table.from_pylist(bad_rows)
                    bad_rows.clear()
    except UnicodeDecodeError as err:  # a header name that is not UTF-8
        raise _NeedsPythonReader(str(err)) from None
    except pa.ArrowInvalid as err:
        if "CSV parse error" in str(err):
            raise _NeedsPythonReader(str(err)) from None
        raise InputError(f"{path}: cannot read as {fmt.upper()}: {err}") from None
    except (OSError, EOFError) as err:
        raise InputError(f"{path}: cannot read as {fmt.upper()}: {err}") from None
    if bad_rows:
        yield pa.Table.from_pylist(bad_rows)


@contextlib.contextmanager
def _arrow_row_errors_silenced():
    """Arrow decodes a malformed line as UTF-8 before it calls the row handler; when that fails it
    prints "Exception ignored" to stderr and stops. The python reader takes over (see above), so
    that message would only be noise: it is dropped while Arrow reads."""
    previous = sys.unraisablehook
    sys.unraisablehook = lambda unraisable: None
    try:
        yield
    finally:
        sys.unraisablehook = previous


def _python_csv_batches(path: str, fmt: str, batch_rows: int = 50_000) -> Iterator[pa.Table]:
    """CSV/TSV through the csv module: every line a row, a wrong field count or bytes that are not
    UTF-8 a row with a _wit_error. Empty fields are nulls, as Arrow reads unquoted empty fields."""
    delimiter = "\t" if fmt == "tsv" else ","
    try:
        with _open_text(path) as f:
            reader = csv.reader(
                io.TextIOWrapper(f, encoding="utf-8", errors="surrogateescape", newline=""), delimiter=delimiter
            )
            header = [_utf8_or_none(name) or f"column_{i}" for i, name in enumerate(next(reader, []))]
            rows: list[dict] = []
            for fields in reader:
                rows.append(_python_csv_row(header, fields, reader.line_num))
                if len(rows) == batch_rows:
                    yield _string_table(rows)
                    rows = []
            if rows:
                yield _string_table(rows)
    except (OSError, EOFError, csv.Error) as err:
        raise InputError(f"{path}: cannot read as {fmt.upper()}: {err}") from None


def _python_csv_row(header: list[str], fields: list[str], line: int) -> dict:
    if len(fields) != len(header):
        text = ",".join(fields)[:200].encode("utf-8", "surrogateescape")
        return {"_wit_error": f"line {line}: {text!r}: expected {len(header)} fields, got {len(fields)}"}
    row: dict = {name: _utf8_or_none(value) for name, value in zip(header, fields, strict=True)}
    bad = [name for name, value in zip(header, fields, strict=True) if value and row[name] is None]
    if bad:
        row["_wit_error"] = f"line {line}: column {bad[0]!r} is not UTF-8 text"
    return row


def _utf8_or_none(value: str) -> str | None:
    """A csv-module field (decoded with surrogateescape) as text; None when empty or not UTF-8."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return value or None


def _decode_utf8(table: pa.Table) -> pa.Table:
    """Binary CSV columns as strings; a row holding bytes that are not UTF-8 gets a _wit_error
    (a malformed_record row downstream) and nulls where the bad values were."""
    errors: list[str | None] = [None] * table.num_rows
    columns = []
    for name in table.column_names:
        column = table.column(name)
        try:
            columns.append(column.cast(pa.string()))
            continue
        except pa.ArrowInvalid:
            pass
        values = []
        for i, raw in enumerate(column.to_pylist()):
            try:
                values.append(None if raw is None else raw.decode("utf-8"))
            except UnicodeDecodeError as err:
                values.append(None)
                errors[i] = errors[i] or f"column {name!r} is not UTF-8 text: {raw[:80]!r}: {err.reason}"
        columns.append(pa.array(values, pa.string()))
    decoded = pa.table(columns, names=table.column_names)
    if any(errors):
        decoded = decoded.append_column("_wit_error", pa.array(errors, pa.string()))
    return decoded


def _csv_header(path: str, delimiter: str) -> list[str]:
    try:
        with _open_text(path) as f:
            header = next(
                csv.reader(io.TextIOWrapper(f, encoding="utf-8", errors="replace"), delimiter=delimiter), None
            )
    except (OSError, EOFError, csv.Error) as err:
        raise InputError(f"{path}: cannot read the header: {err}") from None
    if not header:
        raise InputError(f"{path}: empty file, no header line")
    return header


def _open_text(path: str):
    fs, inner = fs_path(path)
    return fs.open(inner, "rb", compression=fsspec.utils.infer_compression(inner))


def _jsonl_batches(f, path: str, batch_rows: int = 50_000) -> Iterator[pa.Table]:
    rows: list[dict] = []
    try:
        for line_number, line in enumerate(io.TextIOWrapper(f, encoding="utf-8", errors="replace"), 1):
            if not line.strip(" \t\r\n\f\v"):  # blank in JSON's sense; \x1c is a malformed line
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as err:
                value = {"_wit_error": f"line {line_number}: not JSON: {err}"}
            if not isinstance(value, dict):
                value = {"_wit_error": f"line {line_number}: not a JSON object"}
            elif not value:
                value = {"_wit_error": None}  # `{}` is still a row (of nulls): a table of no columns has no rows
            rows.append(
                {
                    k: (
                        v
                        if v is None or isinstance(v, str)
                        else json.dumps(v)
                        if isinstance(v, (dict, list))
                        else str(v)
                    )
                    for k, v in value.items()
                }
            )
            if len(rows) == batch_rows:
                yield _string_table(rows)
                rows = []
    except (OSError, EOFError) as err:
        raise InputError(f"{path}: cannot read: {err}") from None
    if rows:
        yield _string_table(rows)


def _string_table(rows: list[dict]) -> pa.Table:
    # Lines may differ in keys (a malformed line has only _wit_error): take the union of all keys.
    names = list(dict.fromkeys(key for row in rows for key in row))
    return pa.Table.from_pylist(rows, schema=pa.schema([(name, pa.string()) for name in names]))
