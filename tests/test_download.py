"""The download stage against a real HTTP server on 127.0.0.1 that misbehaves like the web."""

from __future__ import annotations

import io
import json
import urllib.parse

import imagehash
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers.download import IMAGES, A, B, fast_config, read_rows
from PIL import Image

from wit_pipeline import schema, shards
from wit_pipeline.config import DownloadConfig, FetchConfig, ResizeConfig
from wit_pipeline.download import stage
from wit_pipeline.engines.local import LocalEngine
from wit_pipeline.io import join
from wit_pipeline.sources.urls import UrlListConfig


def write_list(path, rows) -> str:
    pq.write_table(pa.Table.from_pylist(rows, schema=pa.schema([("url", pa.string()), ("caption", pa.string())])), path)
    return str(path)


def tar_members(out) -> dict[str, bytes]:
    raw = join(str(out), "raw")
    members = {}
    for shard_id in shards.finished_shards(raw):
        for key, sample in shards.iter_tar(join(raw, f"{shards.shard_name(shard_id)}.tar")):
            for ext, data in sample.items():
                members[f"{key}.{ext}"] = data
    return members


@pytest.fixture(scope="module")
def misbehaving_run(tmp_path_factory, image_server, second_loopback_server):
    base = image_server.url
    private_target = urllib.parse.quote(f"{second_loopback_server.url}/img/{A}", safe="")
    cases = {
        "ok": f"{base}/img/{A}",
        "not_found": f"{base}/status/404",
        "server_error_then_ok": f"{base}/flaky/k1/1/{A}",
        "always_503": f"{base}/status/503",
        "rate_limited_then_ok": f"{base}/ratelimit/k2/1/{B}",
        "slow": f"{base}/slow/3/{A}",
        "redirect": f"{base}/redirect/{B}",
        "redirect_loop": f"{base}/loop/a",
        "redirect_to_private": f"{base}/redirect-to/{private_target}",
        "noai": f"{base}/noai/{A}",
        "html": f"{base}/html",
        "truncated": f"{base}/truncated/{A}",
        "bomb": f"{base}/bomb.png",
        "dropped_mid_body": f"{base}/drop/{A}",
        "not_an_image": f"{base}/notimage.jpg",
        "chunked": f"{base}/chunked/{B}",
        "direct_private": f"{second_loopback_server.url}/img/{A}",
        "ftp": "ftp://127.0.0.1/a.jpg",
        "empty_url": "",
    }
    rows = [{"url": url, "caption": name} for name, url in cases.items()]
    rows.append({"url": f"{base}/img/{B}", "caption": None})
    out = tmp_path_factory.mktemp("misbehaving")
    input_path = write_list(out / "urls.parquet", rows)
    totals = stage.run(
        LocalEngine(), str(out), fast_config(), input_path=input_path, url_config=UrlListConfig(shard_size=8)
    )
    return out, totals, len(rows)


EXPECTED = {
    "ok": "ok",
    "not_found": "http_404",
    "server_error_then_ok": "ok",
    "always_503": "http_503",
    "rate_limited_then_ok": "ok",
    "slow": "timeout",
    "redirect": "ok",
    "redirect_loop": "too_many_redirects",
    "redirect_to_private": "private_address",
    "noai": "opted_out",
    "html": "bad_content_type",
    "truncated": "truncated_image",
    "bomb": "decompression_bomb",
    "dropped_mid_body": "connection_error",
    "not_an_image": "decode_error",
    "chunked": "ok",
    "direct_private": "private_address",
    "ftp": "invalid_url",
    "empty_url": "invalid_url",
}


def test_every_misbehaviour_gets_its_exact_status(misbehaving_run):
    out, _, _ = misbehaving_run
    rows = read_rows(out)
    assert {name: rows[name]["status"] for name in EXPECTED} == EXPECTED


def test_a_null_caption_is_a_row_with_a_status(misbehaving_run):
    out, _, _ = misbehaving_run
    rows = read_rows(out)
    assert rows[None]["status"] == "missing_caption"


def test_stats_account_for_every_input_row(misbehaving_run):
    out, totals, input_rows = misbehaving_run
    assert totals["rows"] == input_rows
    assert sum(totals["statuses"].values()) == input_rows
    per_shard = [json.loads(open(p).read()) for p in sorted((out / "raw").glob("[0-9]*_stats.json"))]
    assert sum(s["rows"] for s in per_shard) == input_rows


def test_tar_holds_exactly_the_ok_rows_with_matching_members(misbehaving_run):
    out, _, _ = misbehaving_run
    rows = read_rows(out)
    ok_uids = {row["uid"] for row in rows.values() if row["status"] == "ok"}
    members = tar_members(out)
    assert {name.split(".")[0] for name in members} == ok_uids
    for row in rows.values():
        if row["status"] != "ok":
            continue
        image = members[f"{row['uid']}.jpg"]
        assert members[f"{row['uid']}.txt"].decode() == row["caption"]
        meta = json.loads(members[f"{row['uid']}.json"])
        assert meta["uid"] == row["uid"] and meta["sha256"] == row["sha256"]
        assert schema.uid(row["url"], row["caption"]) == row["uid"]
        # sha256 describes the stored bytes, bit for bit; the pHash the stored image's pixels as the
        # resizer encoded them, so it is imagehash's pHash of the written file up to the encoder's loss.
        import hashlib

        assert hashlib.sha256(image).hexdigest() == row["sha256"]
        file_phash = str(imagehash.phash(Image.open(io.BytesIO(image))))
        assert bin(int(file_phash, 16) ^ int(row["phash"], 16)).count("1") <= 2
        assert len(row["phash"]) == 16
        assert (row["width"], row["height"]) == Image.open(io.BytesIO(image)).size == (64, 64)
        assert row["bytes"] == len(image)


def test_retries_are_counted_and_4xx_are_not_retried(misbehaving_run, image_server):
    hits = image_server.hits
    assert hits["/status/404"] == 1  # 4xx: no retry
    assert hits["/status/503"] == 3  # 5xx: the first try and two retries
    assert hits[f"/flaky/k1/1/{A}"] == 2


def test_redirect_to_another_private_address_is_allowed_with_allow_private(
    tmp_path, image_server, second_loopback_server
):
    target = urllib.parse.quote(f"{second_loopback_server.url}/img/{A}", safe="")
    input_path = write_list(
        tmp_path / "urls.parquet", [{"url": f"{image_server.url}/redirect-to/{target}", "caption": "via redirect"}]
    )
    stage.run(
        LocalEngine(), str(tmp_path), fast_config(allow_private=True), input_path=input_path, url_config=UrlListConfig()
    )
    assert read_rows(tmp_path)["via redirect"]["status"] == "ok"


def test_byte_cap_refuses_large_bodies_with_and_without_content_length(tmp_path, image_server):
    sizes = {name: len(image_server.images[name]) for name in IMAGES}
    big = max(sizes, key=sizes.get)
    small = min(sizes, key=sizes.get)
    cap = (sizes[big] + sizes[small]) // 2
    input_path = write_list(
        tmp_path / "urls.parquet",
        [
            {"url": f"{image_server.url}/img/{big}", "caption": "declared"},
            {"url": f"{image_server.url}/chunked/{big}", "caption": "streamed"},
            {"url": f"{image_server.url}/img/{small}", "caption": "small"},
        ],
    )
    stage.run(
        LocalEngine(), str(tmp_path), fast_config(max_bytes=cap), input_path=input_path, url_config=UrlListConfig()
    )
    rows = read_rows(tmp_path)
    assert [rows[c]["status"] for c in ("declared", "streamed", "small")] == ["too_large_bytes"] * 2 + ["ok"]


def test_image_size_rules_use_img2dataset_resizer(tmp_path, image_server):
    input_path = write_list(tmp_path / "urls.parquet", [{"url": f"{image_server.url}/img/{A}", "caption": "a"}])
    config = DownloadConfig(
        fetch=FetchConfig(allow_networks=("127.0.0.1/32",)), resize=ResizeConfig(image_size=64, min_image_size=10_000)
    )
    stage.run(LocalEngine(), str(tmp_path), config, input_path=input_path, url_config=UrlListConfig())
    assert read_rows(tmp_path)["a"]["status"] == "too_small"


def test_rerun_skips_finished_shards(misbehaving_run, tmp_path):
    out, _, input_rows = misbehaving_run
    before = {p.name: p.stat().st_mtime_ns for p in (out / "raw").glob("*.tar")}
    totals = stage.run(
        LocalEngine(),
        str(out),
        fast_config(),
        input_path=str(out / "urls.parquet"),
        url_config=UrlListConfig(shard_size=8),
    )
    assert totals["skipped_shards"] == totals["shards"] == len(before)
    assert totals["rows"] == input_rows
    assert {p.name: p.stat().st_mtime_ns for p in (out / "raw").glob("*.tar")} == before


def test_connections_are_kept_alive_and_a_silently_closed_one_is_replaced(image_server):
    from wit_pipeline.download.fetch import fetch

    config = FetchConfig(allow_networks=("127.0.0.1/32",), retries=0, timeout=5)
    before = image_server.connections
    results = [fetch(f"{image_server.url}/img/{n}/{A}", config) for n in range(10)]
    assert [r.status for r in results] == ["ok"] * 10
    assert image_server.connections - before == 1  # ten images, one TCP connection

    # The server closes after this answer without a Connection: close header; the next request
    # finds the pooled connection dead and must resend on a new one, not fail the row.
    assert fetch(f"{image_server.url}/silent-close/{A}", config).status == "ok"
    after_close = fetch(f"{image_server.url}/img/after-close/{B}", config)
    assert after_close.status == "ok" and after_close.attempts == 1
    assert image_server.connections - before == 2


def test_closing_the_host_queue_wakes_a_thread_waiting_out_a_retry_after():
    # Ctrl-C or a failed write closes the queue: a thread must not sleep out a 60 s Retry-After.
    import threading
    import time

    from wit_pipeline.download.hosts import HostFairQueue

    work = HostFairQueue([0], host=lambda i: "h", per_host=1)
    assert work.take() == 0
    work.defer(0, 60.0)
    work.done(0)
    taken = []
    waiter = threading.Thread(target=lambda: taken.append(work.take()))
    waiter.start()
    time.sleep(0.2)
    started = time.monotonic()
    work.close()
    waiter.join(timeout=5)
    assert not waiter.is_alive() and taken == [None] and time.monotonic() - started < 5


def test_the_host_with_most_items_waiting_goes_first_within_its_limit():
    # A big host can only go `per_host` wide: each freed slot of it is filled first, so its
    # backlog does not trickle through at the end of the shard after the small hosts ran dry.
    from wit_pipeline.download.hosts import HostFairQueue

    items = ["a1", "a2", "a3", "a4", "b1", "c1", "c2"]
    work = HostFairQueue(items, host=lambda item: item[0], per_host=2)
    taken = [work.take() for _ in range(5)]
    assert taken == ["a1", "a2", "c1", "b1", "c2"]  # a at its limit of 2 after two; ties in order
    work.done("c1")
    work.done("a1")
    assert work.take() == "a3"
    work.defer("c2", 0.0)  # back into the queue for a retry
    work.done("c2")
    assert work.take() == "c2"  # a, with a4 waiting, is at its limit (a2, a3)
    work.done("a2")
    assert work.take() == "a4"
    for item in ("a3", "a4", "b1", "c2"):
        work.done(item)
    assert work.take() is None
