"""Beam as Dataflow runs it: wit built as a wheel, installed into a fresh venv that has no source
tree, Beam's worker pool started from that venv, and `wit curate` submitted to Beam's own job
service on the PortableRunner with `--environment_type=EXTERNAL`. Any pickling, import or staging
fault shows here; the final shards must equal the local engine's.

To stay fast and offline the fresh venv reuses the main venv's third-party packages through a
.pth line (Beam, pyarrow ...), but wit itself comes only from the built wheel: the test checks
that `import wit_pipeline` resolves inside the fresh venv, away from this checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig

import pytest

pytest.importorskip("apache_beam")

from helpers.curate import example_config, final_files  # noqa: E402
from helpers.paths import REPO_ROOT  # noqa: E402

from wit_pipeline.testing.beam_services import portable_runner_args  # noqa: E402

pytestmark = pytest.mark.slow

SOURCES = ("pyproject.toml", "README.md", "wit_pipeline", "beam_jobs", "training")


def copy_sources(tmp_path):
    """The package's sources, copied (no stale build/ folder, no egg-info)."""
    source = tmp_path / "source"
    source.mkdir()
    for name in SOURCES:
        origin = REPO_ROOT / name
        if origin.is_dir():
            shutil.copytree(origin, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy(origin, source / name)
    return source


def test_beams_stager_builds_the_package_from_setup_file_pyproject(tmp_path):
    """What `--setup_file=./pyproject.toml` does on Dataflow: Beam's stager builds an sdist."""
    import tarfile

    from apache_beam.runners.portability.stager import Stager

    source = copy_sources(tmp_path)
    (tmp_path / "staged").mkdir()
    sdist = Stager._build_setup_package(str(source / "pyproject.toml"), str(tmp_path / "staged"))
    with tarfile.open(sdist) as archive:
        names = archive.getnames()
    assert any(name.endswith("wit_pipeline/engines/beam.py") for name in names)
    assert any(name.endswith("beam_jobs/dedup.py") for name in names)


def build_wheel(tmp_path) -> str:
    """The package built as a wheel, offline."""
    source = copy_sources(tmp_path)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path / "dist"),
            str(source),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    shutil.rmtree(source)
    (wheel,) = (tmp_path / "dist").glob("wit_pipeline-*.whl")
    return str(wheel)


def fresh_venv(tmp_path, wheel: str):
    """A venv with the wheel installed and the main venv's third-party packages on its path."""
    venv = tmp_path / "venv"
    # No PYTHONPATH (conftest points it at this checkout, whose egg-info would pass for wit).
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # The wheel first: once the main venv's packages are visible, pip would see its editable wit.
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps", "--no-index", wheel],
        check=True,
        capture_output=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    # Only the directory: the main venv's own .pth files (its editable wit) are not processed.
    with open(os.path.join(site, "main_venv_packages.pth"), "w") as f:
        f.write(sysconfig.get_paths()["purelib"] + "\n")
    env["PATH"] = str(venv / "bin") + os.pathsep + env.get("PATH", "")
    return venv, env


def test_curate_from_a_wheel_on_the_portable_runner_with_an_external_worker_pool(tmp_path):
    venv, env = fresh_venv(tmp_path, build_wheel(tmp_path))
    where = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import wit_pipeline, beam_jobs; print(wit_pipeline.__file__); print(beam_jobs.__file__)",
        ],
        cwd=tmp_path,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    for path in where:
        assert path.startswith(str(venv)) and not path.startswith(str(REPO_ROOT)), path

    subprocess.run(
        [sys.executable, "-m", "wit_pipeline", "curate", str(example_config(tmp_path, "local"))],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
        timeout=300,
    )
    # The example's inputs are relative to the checkout: the copy names them absolutely, so
    # the job runs from a folder that holds no source at all.
    config = example_config(tmp_path, "portable", replace=[('"tests/data/', f'"{REPO_ROOT}/tests/data/')])
    python = str(venv / "bin" / "python")
    with portable_runner_args(tmp_path, python=python, env=env, cwd=tmp_path, grace=30) as beam_args:
        result = subprocess.run(
            [str(venv / "bin" / "wit"), "curate", str(config), "--engine", "beam", "--", *beam_args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
    assert result.returncode == 0, result.stderr[-4000:]
    assert final_files(tmp_path / "portable") == final_files(tmp_path / "local")
