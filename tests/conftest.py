"""Shared test set-up: real parts on loopback only.

Subprocesses (CLI runs, spawned workers, Beam worker pools) must import this checkout's code, so
the repository root goes first on PYTHONPATH.
"""

from __future__ import annotations

import os

import pytest
from helpers.paths import COCO_IMAGES, REPO_ROOT

from wit_pipeline.testing.devserver import ImageServer

os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(REPO_ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
)
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")


@pytest.fixture(scope="session")
def image_server():
    """A real HTTP server on 127.0.0.1 serving the real COCO test images, with web misbehaviours."""
    with ImageServer(str(COCO_IMAGES), host="127.0.0.1") as server:
        yield server


@pytest.fixture(scope="session")
def second_loopback_server():
    """The same server on 127.0.0.2: another loopback address, outside a 127.0.0.1/32 allowance."""
    with ImageServer(str(COCO_IMAGES), host="127.0.0.2") as server:
        yield server


@pytest.fixture(scope="session")
def small_run(tmp_path_factory, image_server):
    """A real run of every stage (ingest -> reshard) over a few COCO pairs, a 404 and a French caption."""
    from helpers.report_runs import run_chain, small_run_rows

    return run_chain(tmp_path_factory.mktemp("small_run") / "out", small_run_rows(image_server.url))
