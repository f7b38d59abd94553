"""`wit` run as a user runs it (a subprocess), and what a user error must look like."""

from __future__ import annotations

import re
import subprocess

import pyarrow as pa
import pyarrow.parquet as pq

from wit_pipeline.testing.commands import download_argv, wit_argv

LOG_RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (DEBUG|INFO|WARNING) ")


def wit(*args, timeout=180, **kwargs):
    """Run `python -m wit_pipeline ARGS`; the finished process, its output as text."""
    return subprocess.run(wit_argv(*args), capture_output=True, text=True, timeout=timeout, **kwargs)


def wit_download(input_path, output, *flags, timeout=180, **kwargs):
    """`wit download INPUT -> OUTPUT FLAGS` from the test servers: one process, 127.0.0.1 allowed."""
    argv = download_argv(input_path, output, "--processes", 1, "--allow-network", "127.0.0.1/32", *flags)
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kwargs)


def one_line_error(result, *fragments):
    """A user error: exit 2 and one line on stderr (no traceback) that holds every fragment."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    # Progress bars and log records (per-shard INFO lines, library warnings) are not the error.
    lines = [
        line
        for line in result.stderr.splitlines()
        if line.strip() and "shard/s" not in line and "%|" not in line and not LOG_RECORD.match(line)
    ]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def url_list(path, urls: list[str]) -> str:
    """A Parquet URL list of `urls`, each with a caption of its own."""
    rows = [{"url": url, "caption": f"photo number {i} of a test"} for i, url in enumerate(urls)]
    pq.write_table(pa.Table.from_pylist(rows), path)
    return str(path)
