"""The download stage on the simulated web: HTTPS hosts on 127.0.0.2.. with latency, a CA made at
run time, 404s, one-time 429s and resets; kept-alive connections across HTTPS."""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers.paths import COCO_IMAGES

from wit_pipeline import io, shards
from wit_pipeline.config import DownloadConfig, FetchConfig, ResizeConfig
from wit_pipeline.download import stage
from wit_pipeline.engines.local import LocalEngine
from wit_pipeline.sources.urls import UrlListConfig
from wit_pipeline.testing.simweb import SimulatedWeb, WebProfile, make_urls

PROFILE = WebProfile(
    connect_delay=0.05, ttfb=0.01, slow_hosts=1, slow_factor=5.0, share_404=0.1, share_429=0.1, share_reset=0.1
)


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    with SimulatedWeb(
        str(COCO_IMAGES), str(tmp_path_factory.mktemp("simweb")), hosts=4, profile=PROFILE, large=2
    ) as simulated:
        yield simulated


def _rows(out) -> list[dict]:
    raw = io.join(str(out), "raw")
    return [
        row
        for shard_id in shards.finished_shards(raw)
        for row in io.read_parquet(io.join(raw, f"{shards.shard_name(shard_id)}.parquet")).to_pylist()
    ]


def test_hosts_speak_https_with_the_run_time_ca_only(web):
    url = f"{web.bases[0]}/img/x/{sorted(web.images)[0]}"
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        urllib.request.urlopen(url, timeout=5, context=ssl.create_default_context())
    with urllib.request.urlopen(url, timeout=5, context=ssl.create_default_context(cafile=web.ca_file)) as answer:
        assert answer.read() == web.images[sorted(web.images)[0]]
    assert web.bases[1].startswith("https://127.0.0.3:")


def test_download_over_the_simulated_web(web, tmp_path, monkeypatch):
    # The CA reaches the client as users hand it to img2dataset too: SSL_CERT_FILE.
    monkeypatch.setenv("SSL_CERT_FILE", web.ca_file)
    names = [n for n in sorted(web.images) if n.endswith(".jpg")]
    urls = make_urls(web.bases, names, 120, PROFILE, seed=1)
    pq.write_table(
        pa.table({"url": urls, "caption": [f"photo {i}" for i in range(len(urls))]}), tmp_path / "urls.parquet"
    )
    config = DownloadConfig(
        fetch=FetchConfig(timeout=5, retries=2, backoff_base=0.01, allow_networks=("127.0.0.0/8",)),
        resize=ResizeConfig(image_size=64),
        threads=8,
    )
    before = web.stats()
    totals = stage.run(
        LocalEngine(1),
        str(tmp_path / "out"),
        config,
        input_path=str(tmp_path / "urls.parquet"),
        url_config=UrlListConfig(shard_size=60),
    )
    rows = {row["url"]: row for row in _rows(tmp_path / "out")}
    assert len(rows) == len(urls) == totals["rows"]
    for url in urls:
        expected = "http_404" if "/status/404" in url else "ok"
        assert rows[url]["status"] == expected, (url, rows[url]["error"])
    # 429s and resets were each answered once with the failure, then retried to success.
    assert any("/ratelimit/" in u for u in urls) and any("/reset/" in u for u in urls)
    assert all(rows[u]["status"] == "ok" for u in urls if "/reset/" in u or "/ratelimit/" in u)
    # Kept alive across HTTPS: far fewer TLS connections than requests.
    after = web.stats()
    connections = sum(after["connections"]) - sum(before["connections"])
    requests = sum(after["requests"]) - sum(before["requests"])
    assert requests >= len(urls)
    assert connections <= requests / 3, (connections, requests)
    # Polite: no host answered more requests at once than its per-host limit (8 threads, limit 4).
    assert max(after["peak_in_flight"]) <= config.fetch.per_host_connections == 4, after["peak_in_flight"]
    # Zipf-like shares: the first host takes the most URLs, every host takes some.
    per_host = [sum(u.startswith(base + "/") for u in urls) for base in web.bases]
    assert per_host[0] == max(per_host) and min(per_host) > 0


def test_a_429_is_requeued_for_its_retry_after_while_the_thread_fetches_others(web, tmp_path, monkeypatch):
    # One thread: were it to sleep out the Retry-After (1 s), the rate-limited URL, first in the
    # list, would finish first. Requeued, it gives its thread to the others and finishes last,
    # retried no sooner than the server asked.
    import tarfile
    import time

    monkeypatch.setenv("SSL_CERT_FILE", web.ca_file)
    names = [n for n in sorted(web.images) if n.endswith(".jpg")][:6]
    limited = f"{web.bases[0]}/ratelimit/requeue-test/1/{names[0]}"
    urls = [limited] + [f"{web.bases[0]}/img/requeue/{name}" for name in names]
    pq.write_table(pa.table({"url": urls, "caption": [f"photo {i}" for i in range(len(urls))]}), tmp_path / "u.parquet")
    config = DownloadConfig(
        fetch=FetchConfig(timeout=5, retries=2, allow_networks=("127.0.0.0/8",)),
        resize=ResizeConfig(image_size=64),
        threads=1,
    )
    started = time.monotonic()
    stage.run(
        LocalEngine(1),
        str(tmp_path / "out"),
        config,
        input_path=str(tmp_path / "u.parquet"),
        url_config=UrlListConfig(),
    )
    elapsed = time.monotonic() - started
    rows = {row["url"]: row for row in _rows(tmp_path / "out")}
    assert all(row["status"] == "ok" for row in rows.values()), [r["error"] for r in rows.values()]
    with tarfile.open(tmp_path / "out" / "raw" / "00000.tar") as tar:
        keys = list(dict.fromkeys(member.name.split(".")[0] for member in tar.getmembers()))
    assert keys[-1] == rows[limited]["uid"] and len(keys) == len(urls)
    assert elapsed >= 1.0
