"""The README's walkthrough, run as written: every ```bash test block, in order, in one fresh folder.

A block's commands run under `bash -euo pipefail` with the repository's `tests/data` beside them
(as they would from the repository root); a ```text block right after a test block lists lines
that must appear in what the block printed. Only 127.0.0.1 and local files are touched: the
blocks that need the internet are not marked for testing.
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
_FENCE = re.compile(r"^```(?P<info>[^\n]*)\n(?P<body>.*?)^```\s*$", re.S | re.M)


def readme_blocks(text: str) -> list[tuple[str, list[str]]]:
    """(commands, expected output lines) for each ```bash test block, in order."""
    fences = [(m.group("info").strip(), m.group("body")) for m in _FENCE.finditer(text)]
    blocks = []
    for index, (info, body) in enumerate(fences):
        if info == "bash test":
            following = fences[index + 1] if index + 1 < len(fences) else ("", "")
            expected = following[1].splitlines() if following[0] == "text" else []
            blocks.append((body, [line for line in expected if line.strip()]))
    return blocks


def test_the_readme_marks_its_walkthrough_for_testing():
    blocks = readme_blocks((REPO / "README.md").read_text())
    assert len(blocks) >= 8
    commands = "\n".join(body for body, _ in blocks)
    for command in (
        "wit ingest",
        "wit balance",
        "wit download",
        "wit dedup",
        "wit reshard",
        "wit report",
        "wit inspect",
        "wit train",
        "wit eval",
        "wit adopt",
        "wit metadata build",
    ):
        assert command in commands, command


@pytest.mark.slow
def test_readme_walkthrough_runs_as_written(tmp_path):
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "data").symlink_to(REPO / "tests" / "data")
    env = dict(
        os.environ,
        NO_ALBUMENTATIONS_UPDATE="1",
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        HF_HOME=str(tmp_path / ".hf"),
        COLUMNS="200",
        PATH=os.pathsep.join([str(pathlib.Path(sys.executable).parent), os.environ.get("PATH", "")]),
    )
    for number, (commands, expected) in enumerate(readme_blocks((REPO / "README.md").read_text()), start=1):
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", commands],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        printed = result.stdout + result.stderr
        assert result.returncode == 0, f"README block {number} failed:\n{commands}\n{printed[-3000:]}"
        missing = [line for line in expected if line not in printed]
        assert not missing, f"README block {number} did not print {missing}:\n{printed[-3000:]}"
