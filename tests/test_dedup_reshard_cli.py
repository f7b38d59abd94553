"""`wit dedup` and `wit reshard` from the command line, on both engines, and their usage errors."""

from __future__ import annotations

import json

import pytest
from helpers.paths import TEST_DATA
from helpers.rawshards import RawSample, half, write_raw_shard

from wit_pipeline import cli

IMAGES = sorted((TEST_DATA / "coco" / "images").glob("*.jpg"))[:6]


@pytest.fixture(autouse=True)
def only_these_commands(monkeypatch):
    # The CLI is exercised through main(); only this stage's commands are registered here, so
    # these tests do not depend on the other stages' modules.
    monkeypatch.setattr(cli, "COMMANDS", ["wit_pipeline.commands.dedup", "wit_pipeline.commands.reshard"])


@pytest.fixture
def out(tmp_path):
    samples = [RawSample(f"http://127.0.0.1/{p.name}", p.stem, p.read_bytes()) for p in IMAGES]
    samples.append(RawSample("http://127.0.0.1/copy.jpg", "copy", half(IMAGES[0].read_bytes())))
    write_raw_shard(str(tmp_path / "raw"), 0, samples)
    return tmp_path


def test_dedup_then_reshard(out, capsys):
    assert cli.main(["dedup", str(out)]) == 0
    assert "dedup: 7 rows in, 6 kept\n  dropped near_duplicate: 1" in capsys.readouterr().out
    assert cli.main(["reshard", str(out), "--samples-per-shard", "4", "--seed", "1", "--processes", "1"]) == 0
    manifest = json.loads((out / "final" / "manifest.json").read_text())
    assert [s["samples"] for s in manifest["shards"]] == [4, 2]
    assert manifest["provenance"]["stages"]["dedup"]["stats.json"]["kept"] == 6


@pytest.mark.slow
def test_beam_engine_from_the_cli(out):
    beam_flags = ["--", "--direct_running_mode=in_memory"]
    assert cli.main(["dedup", str(out), "--output", str(out / "dedup_local")]) == 0
    assert cli.main(["dedup", str(out), "--engine", "beam", *beam_flags]) == 0
    keep = (out / "dedup" / "keep.parquet").read_bytes()
    assert keep == (out / "dedup_local" / "keep.parquet").read_bytes()
    assert cli.main(["reshard", str(out), "--samples-per-shard", "4", "--engine", "beam", *beam_flags]) == 0
    assert cli.main(["reshard", str(out), "--samples-per-shard", "4", "--output", str(out / "final_local")]) == 0
    for name in ("00000.tar", "00001.tar", "00000.parquet"):
        assert (out / "final" / name).read_bytes() == (out / "final_local" / name).read_bytes()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["dedup"], "give the run folder OUT"),
        (["dedup", "{tmp}/nowhere"], "no finished raw shards"),
        (["dedup", "{out}", "--radius", "40"], "radius must be between 0 and 31"),
        (["dedup", "{out}", "--bands", "3"], "bands must be between radius + 1 and 64"),
        (["dedup", "{out}", "--decontaminate", "{tmp}/no_eval"], "not a folder"),
        (["reshard", "{out}"], "run `wit dedup` first"),
        (["reshard", "{out}", "--samples-per-shard", "0"], None),
    ],
)
def test_usage_errors_are_one_line(out, tmp_path, capsys, argv, message):
    argv = [a.format(out=out, tmp=tmp_path) for a in argv]
    if message is None:  # needs a keep list first, then the bad flag is what fails
        assert cli.main(["dedup", str(out)]) == 0
        message = "samples_per_shard must be positive"
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
