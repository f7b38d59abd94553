"""Where the repository and the few real files the tests need are."""

from __future__ import annotations

import pathlib

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
TEST_DATA = REPO_ROOT / "tests" / "data"
COCO_IMAGES = TEST_DATA / "coco" / "images"
