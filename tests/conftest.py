"""Shared test set-up: real parts on loopback only.

Subprocesses (CLI runs, spawned workers, Beam worker pools) must import this checkout's code, so
the repository root goes first on PYTHONPATH.
"""

from __future__ import annotations

import os
import pathlib

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
TEST_DATA = REPO_ROOT / "tests" / "data"

os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(REPO_ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
)
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
