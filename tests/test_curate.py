"""`wit curate`: one config file runs every stage; the same final shards on every engine; reruns
skip finished stages, refuse a changed table and redo from `--force STAGE`; single-stage commands
read their own table of the same file."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib

import pytest
from helpers.curate import example_config, final_files, stage_stats
from helpers.paths import REPO_ROOT

from wit_pipeline import shards


def wit(*args, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", "wit_pipeline", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout
    )


def test_print_config_fills_every_default_and_flags_win(tmp_path):
    from wit_pipeline.config import DownloadConfig, IngestConfig

    result = wit("curate", str(example_config(tmp_path)), "--print-config", "--engine", "spark", "--processes", "3")
    assert result.returncode == 0, result.stderr
    resolved = tomllib.loads(result.stdout)
    assert resolved["engine"] == "spark" and resolved["processes"] == 3  # flags override the file
    assert resolved["download"]["image_size"] == 64  # from the file
    assert resolved["download"]["retries"] == DownloadConfig().fetch.retries  # the dataclass's default
    assert resolved["ingest"]["min_words"] == IngestConfig().filters.min_words
    assert resolved["ingest"]["source"] == "coco" and resolved["reshard"]["samples_per_shard"] == 8
    # The printed file is itself a valid config: every key is a flag of its stage.
    reprinted = tmp_path / "resolved.toml"
    reprinted.write_text(result.stdout)
    again = wit("curate", str(reprinted), "--print-config")
    assert again.returncode == 0, again.stderr
    assert tomllib.loads(again.stdout) == resolved


@pytest.mark.parametrize(
    "bad, named",
    [
        (("[download]\n", "[download]\nimagesize = 3\n"), "imagesize"),
        (("[download]\n", "[download]\ninput = 'elsewhere.parquet'\n"), "input"),
        (('engine = "local"', 'engine = "flink"'), "flink"),
        (("radius = 4", "radius = 'four'"), "--radius"),
        (("processes = 2", "procesess = 2"), "procesess"),
    ],
)
def test_a_bad_key_or_value_is_one_line_naming_it(tmp_path, bad, named):
    result = wit("curate", str(example_config(tmp_path, replace=[bad])))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0] and "Traceback" not in result.stderr


def test_single_stage_commands_read_their_table_and_flags_override(tmp_path):
    config = example_config(tmp_path, replace=[("t = 20 ", "t = 3 ")])
    out = tmp_path / "run"
    result = wit("ingest", "--config", str(config), "--processes", "1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ingest: 400 rows in, 119 kept")
    result = wit("balance", "--config", str(config), "--seed", "5")
    assert result.returncode == 0, result.stderr
    stats = json.loads((out / "balance" / "stats.json").read_text())
    assert stats["config"]["t"] == 3 and stats["config"]["seed"] == 5  # file's t, flag's seed
    assert set(stats) >= {
        "stage",
        "engine",
        "rows_in",
        "kept",
        "dropped",
        "seconds",
        "started",
        "ended",
        "wit_version",
        "config",
    }
    assert stats["rows_in"] == stats["kept"] + sum(stats["dropped"].values()) == 119


def test_version_and_quiet():
    result = wit("--version")
    assert result.returncode == 0 and result.stdout.startswith("wit ")
    from wit_pipeline.stats import wit_version

    assert result.stdout.split()[1] == wit_version()


@pytest.mark.slow
def test_curate_writes_the_same_final_shards_on_every_engine(tmp_path):
    runs = {}
    for engine, extra in (
        ("local", []),
        ("beam", ["--", "--direct_running_mode=in_memory"]),
        ("spark", ["--processes", "2"]),
    ):
        result = wit("curate", str(example_config(tmp_path, engine)), "--engine", engine, *extra)
        assert result.returncode == 0, result.stderr[-3000:]
        out = tmp_path / engine
        runs[engine] = final_files(out)
        assert shards.finished_shards(out / "ingest") == [0]  # ingest's markers on every engine
        for stage, stats in stage_stats(out).items():
            assert (stats["stage"], stats["engine"]) == (stage, engine)
        manifest = json.loads((out / "final" / "manifest.json").read_text())
        assert manifest["provenance"]["engine"] == engine and manifest["provenance"]["wit_version"]
        assert manifest["samples"] == 24  # 24 images, 5 captions each, folded to one by dedup
    assert runs["beam"] == runs["local"]
    assert runs["spark"] == runs["local"]

    # A rerun skips every finished stage; a changed table is refused; --force redoes from there.
    local = example_config(tmp_path, "local")
    result = wit("curate", str(local))
    assert result.returncode == 0 and result.stdout.count("skipped") == 5, result.stdout
    changed = example_config(tmp_path, "local", replace=[("samples_per_shard = 8", "samples_per_shard = 5")])
    result = wit("curate", str(changed))
    assert result.returncode == 2 and "samples_per_shard" in result.stderr and "--force reshard" in result.stderr
    result = wit("curate", str(changed), "--force", "reshard")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("skipped") == 4
    assert len(json.loads((tmp_path / "local" / "final" / "manifest.json").read_text())["shards"]) == 5


@pytest.mark.slow
def test_a_train_table_trains_on_the_final_shards(tmp_path):
    pytest.importorskip("torch")
    config = example_config(tmp_path, "trained")
    config.write_text(
        config.read_text() + '\n[train]\npreset = "tiny"\nsteps = 2\nbatch_size = 8\n'
        "image_size = 64\nprogress = false\nworkers = 0\n"
    )
    result = wit("-q", "curate", str(config))
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "trained" / "train"
    assert (run / "checkpoint.pt").exists()
    assert json.loads((run / "config.json").read_text())["steps"] == 2
    assert json.loads((tmp_path / "trained" / "curate" / "train.json").read_text())["preset"] == "tiny"


def test_every_stage_flag_takes_its_default_from_the_config_dataclass():
    from wit_pipeline.cli import build_parser, subcommand_parsers
    from wit_pipeline.config import (
        BalanceConfig,
        DedupConfig,
        DownloadConfig,
        FilterConfig,
        LangIdConfig,
        ReshardConfig,
    )
    from wit_pipeline.sources.coco import CocoConfig
    from wit_pipeline.sources.urls import UrlListConfig
    from wit_pipeline.sources.warc import WarcConfig
    from wit_pipeline.sources.yfcc import YfccConfig

    fetch, resize, download, urls = DownloadConfig().fetch, DownloadConfig().resize, DownloadConfig(), UrlListConfig()
    expected = {
        "download": {
            "timeout": fetch.timeout,
            "retries": fetch.retries,
            "max_bytes": fetch.max_bytes,
            "per_host_connections": fetch.per_host_connections,
            "max_pixels": fetch.max_pixels,
            "user_agent_token": fetch.user_agent_token,
            "allow_private": fetch.allow_private,
            "image_size": resize.image_size,
            "resize_mode": resize.resize_mode,
            "encode_format": resize.encode_format,
            "encode_quality": resize.encode_quality,
            "min_image_size": resize.min_image_size,
            "max_aspect_ratio": resize.max_aspect_ratio,
            "max_image_area": resize.max_image_area,
            "resize_only_if_bigger": resize.resize_only_if_bigger,
            "threads": download.threads,
            "no_phash": not download.compute_phash,
            "url_col": urls.url_col,
            "caption_col": urls.caption_col,
            "shard_size": urls.shard_size,
        },
        "ingest": {
            "min_chars": FilterConfig().min_chars,
            "min_words": FilterConfig().min_words,
            "max_chars": FilterConfig().max_chars,
            "min_lang_score": LangIdConfig().min_score,
            "lid_lowercase": LangIdConfig().lowercase,
            "coco_captions": CocoConfig().captions,
            "coco_url_field": CocoConfig().url_field,
            "srcset": WarcConfig().srcset,
            "yfcc_caption": YfccConfig().caption,
        },
        "balance": {
            "t": BalanceConfig().t,
            "seed": BalanceConfig().seed,
            "keep_unmatched": BalanceConfig().keep_unmatched,
        },
        "dedup": {"radius": DedupConfig().radius, "bands": DedupConfig().bands, "max_bucket": DedupConfig().max_bucket},
        "reshard": {"samples_per_shard": ReshardConfig().samples_per_shard, "seed": ReshardConfig().seed},
    }
    parsers = subcommand_parsers(build_parser())
    for command, flags in expected.items():
        defaults = {action.dest: action.default for action in parsers[command]._actions}
        for dest, value in flags.items():
            assert defaults[dest] == value, (command, dest)


@pytest.mark.slow
def test_a_run_that_keeps_nothing_finishes_with_an_empty_manifest(tmp_path):
    text = (REPO_ROOT / "examples" / "commoncrawl-wat.toml").read_text()
    config = tmp_path / "wat.toml"
    config.write_text(text.replace('output = "out/commoncrawl"', f"output = '{tmp_path / 'wat'}'"))
    result = wit("-q", "curate", str(config), "--engine", "local", "--processes", "1")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ingest: 2 rows in, 0 kept" in result.stdout
    manifest = json.loads((tmp_path / "wat" / "final" / "manifest.json").read_text())
    assert manifest["samples"] == 0 and manifest["shards"] == []
