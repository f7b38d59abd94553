"""`wit` as a user runs it, as an argv: what tests and benchmarks start as a subprocess."""

from __future__ import annotations

import sys
from typing import Any


def wit_argv(*args: Any) -> list[str]:
    """`python -m wit_pipeline ARGS` with this interpreter (the venv's `wit`); each arg as text."""
    return [sys.executable, "-m", "wit_pipeline", *map(str, args)]


def download_argv(input_path: Any, output: Any, *flags: Any) -> list[str]:
    """`wit download --input INPUT --output OUTPUT FLAGS`."""
    return wit_argv("download", "--input", input_path, "--output", output, *flags)
