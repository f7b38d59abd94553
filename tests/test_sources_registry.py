"""The SOURCES registry, and the flags each source adds to `wit ingest` (commands/source_flags.py)."""

from __future__ import annotations

import argparse
import pickle

import pytest
from helpers.paths import TEST_DATA

from wit_pipeline.commands.source_flags import add_source_flags, build_source
from wit_pipeline.commands.stage_flags import absolute_paths
from wit_pipeline.sources import SOURCES, source_class


def parser_with_every_source_flag() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    add_source_flags(parser)  # a clash between two sources' flags raises here
    return parser


def test_registry_names_every_source():
    assert sorted(SOURCES) == ["coco", "urls", "warc", "wat", "yfcc"]
    assert SOURCES["urls"] == "wit_pipeline.sources.urls:UrlListSource"
    with pytest.raises(ValueError, match="unknown source 'flickr'; known sources: coco, urls, warc, wat, yfcc"):
        source_class("flickr")


@pytest.mark.parametrize(
    "name, argv, path, expected",
    [
        (
            "coco",
            ["--coco-captions", "join", "--image-root", "/data/imgs"],
            "coco/captions_train2017.json",
            {"captions": "join", "url_field": "coco_url", "image_root": "/data/imgs"},
        ),
        ("yfcc", ["--yfcc-caption", "title"], "yfcc/yfcc100m_dataset_sample.tsv", {"caption": "title"}),
        ("warc", ["--srcset", "largest"], "commoncrawl/iana.warc.gz", {"srcset": "largest"}),
        ("wat", [], "commoncrawl/iana-numbers.warc.wat.gz", None),
    ],
)
def test_flags_build_a_picklable_source(name, argv, path, expected):
    args = parser_with_every_source_flag().parse_args(argv)
    source = build_source(name, args, [str(TEST_DATA / path)])
    assert source.name == name
    if expected is not None:
        assert {k: getattr(source.config, k) for k in expected} == expected
    clone = pickle.loads(pickle.dumps(source))
    assert clone.shards() == source.shards() and len(source.shards()) == 1


def test_a_glob_expands_in_name_order_and_a_missing_input_is_named():
    source = source_class("warc")([str(TEST_DATA / "commoncrawl" / "*.warc.gz")])
    assert [s.path.rsplit("/", 1)[1] for s in source.shards()] == ["iana.warc.gz", "whirlwind.warc.gz"]
    with pytest.raises(FileNotFoundError, match="no input file matches"):
        source_class("warc")(["/nonexistent/crawl-*.warc.gz"]).shards()
    with pytest.raises(FileNotFoundError, match="no input file matches '/nonexistent/crawl.warc.gz'"):
        source_class("warc")(["/nonexistent/crawl.warc.gz"]).shards()


def test_a_relative_image_root_becomes_absolute(tmp_path, monkeypatch):
    # image_path travels to later stages, which may run in another folder or on remote workers.
    monkeypatch.chdir(TEST_DATA / "coco")
    args = parser_with_every_source_flag().parse_args(["--image-root", "images"])
    absolute_paths(args)  # what every command does first with its path flags
    source = build_source("coco", args, [str(TEST_DATA / "coco" / "captions_train2017.json")])
    assert source.config.image_root == str(TEST_DATA / "coco" / "images")
    paths = [r["image_path"] for shard in source.shards() for r in source.read(shard) if r["image_path"]]
    assert paths and all(p.startswith(str(TEST_DATA)) for p in paths)
