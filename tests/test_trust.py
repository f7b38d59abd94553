"""Untrusted input: a URL list names a URL and nothing else; the address guard sees the real
address (IPv6 literals included) and still applies behind a proxy. Real server, real proxy, real TLS."""

from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers.cli import wit_download
from helpers.download import A, B, download_list, read_rows
from helpers.netproxy import HttpsImageServer, Proxy, self_signed_certificate
from helpers.paths import COCO_IMAGES

from wit_pipeline import schema
from wit_pipeline.config import FetchConfig
from wit_pipeline.download.fetch import fetch
from wit_pipeline.sources.urls import UrlListConfig
from wit_pipeline.testing.devserver import ImageServer

LOCAL_JPEG = COCO_IMAGES / B  # a real image on disk, different from the served one (A)
SECRET = "/etc/passwd"


def write_table(path, rows: list[dict]) -> str:
    names = list(dict.fromkeys(k for row in rows for k in row))
    pq.write_table(pa.Table.from_pylist(rows, schema=pa.schema([(n, pa.string()) for n in names])), path)
    return str(path)


def attack_rows(base: str, tmp_path) -> list[dict]:
    outside = tmp_path / "link_to_secret.jpg"
    outside.symlink_to(SECRET)
    return [
        {"url": f"{base}/img/{A}", "caption": "local jpeg", "image_path": str(LOCAL_JPEG)},
        {"url": f"{base}/img/{A}", "caption": "etc passwd", "image_path": SECRET},
        {"url": f"{base}/img/{A}", "caption": "file url", "image_path": f"file://{SECRET}"},
        {"url": f"{base}/img/{A}", "caption": "fsspec url", "image_path": "http://169.254.169.254/latest/meta-data"},
        {"url": f"{base}/img/{A}", "caption": "symlink", "image_path": str(outside)},
    ]


def test_a_url_list_never_makes_download_read_a_local_path(tmp_path, image_server):
    rows = attack_rows(image_server.url, tmp_path)
    input_path = write_table(tmp_path / "list.parquet", rows)
    download_list(input_path, tmp_path / "out")
    got = read_rows(tmp_path / "out")
    assert {caption: row["status"] for caption, row in got.items()} == {r["caption"]: "ok" for r in rows}
    # Every stored image is the served one (one sha256 for all), and no error column quotes a file.
    assert len({row["sha256"] for row in got.values()}) == 1
    assert all("root:" not in (row["error"] or "") for row in got.values())


def test_a_wit_stage_output_carrying_image_path_is_fetched_by_url_too(tmp_path, image_server):
    # Balance's output carries image_path through (a COCO ingest writes it): without --image-root
    # the download still fetches the URL, so a crafted "stage output" reads nothing either.
    rows = [
        dict(r, uid=schema.uid(r["url"], r["caption"]), status="ok") for r in attack_rows(image_server.url, tmp_path)
    ]
    folder = tmp_path / "balance"
    folder.mkdir()
    write_table(folder / "part-00000.parquet", rows)
    (folder / "run.json").write_text('{"stage": "balance"}')  # a stage folder: read by StageFolderSource
    download_list(folder, tmp_path / "out")
    got = read_rows(tmp_path / "out")
    assert {row["status"] for row in got.values()} == {"ok"}
    assert all("root:" not in (row["error"] or "") for row in got.values())


def test_image_root_reads_only_inside_the_root_after_resolving_links(tmp_path, image_server):
    root = tmp_path / "root"
    root.mkdir()
    (root / "inside.jpg").write_bytes(LOCAL_JPEG.read_bytes())
    (root / "escape.jpg").symlink_to(SECRET)
    rows = [
        {"url": f"{image_server.url}/img/{A}", "caption": "inside", "image_path": str(root / "inside.jpg")},
        {"url": f"{image_server.url}/img/{A}", "caption": "dotdot", "image_path": f"{root}/../../../../{SECRET}"},
        {"url": f"{image_server.url}/img/{A}", "caption": "symlink out", "image_path": str(root / "escape.jpg")},
        {"url": f"{image_server.url}/img/{A}", "caption": "absolute", "image_path": SECRET},
        {"url": f"{image_server.url}/img/{A}", "caption": "memory url", "image_path": "memory://root/inside.jpg"},
        {"url": f"{image_server.url}/img/{A}", "caption": "fetched"},
    ]
    input_path = write_table(tmp_path / "list.parquet", rows)
    # Through the command: a relative --image-root is made absolute before workers see it.
    result = wit_download(input_path, tmp_path / "out", "--image-root", "root", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    got = read_rows(tmp_path / "out")
    assert {c: r["status"] for c, r in got.items()} == {
        "inside": "ok",
        "dotdot": "untrusted_path",
        "symlink out": "untrusted_path",
        "absolute": "untrusted_path",
        "memory url": "untrusted_path",
        "fetched": "ok",
    }
    assert got["inside"]["sha256"] != got["fetched"]["sha256"]  # read from the root (image B), not fetched (A)
    assert all("root:" not in (row["error"] or "") for row in got.values())


def test_other_columns_of_a_url_list_are_carried_as_data_only(tmp_path, image_server):
    rows = [
        {
            "url": f"{image_server.url}/img/{A}",
            "caption": "a photo",
            "page_url": f"file://{SECRET}",
            "license": f"{image_server.url}/img/{B}",
            "note": SECRET,
        }
    ]
    input_path = write_table(tmp_path / "list.parquet", rows)
    before = image_server.hits[f"/img/{B}"]
    download_list(input_path, tmp_path / "out", url_config=UrlListConfig(keep_cols=("note",)))
    row = read_rows(tmp_path / "out")["a photo"]
    assert (row["status"], row["page_url"], row["license"], row["note"]) == (
        "ok",
        f"file://{SECRET}",
        f"{image_server.url}/img/{B}",
        SECRET,
    )
    assert image_server.hits[f"/img/{B}"] == before  # a URL in another column is never fetched


# --- the address guard sees the real address -------------------------------------------------


@pytest.fixture(scope="module")
def ipv6_server():
    with ImageServer(str(COCO_IMAGES), host="::1") as server:
        yield server


def test_ipv6_literals_reach_the_guard_as_addresses(ipv6_server):
    guarded = FetchConfig(timeout=1.0, retries=0)
    port = ipv6_server.url.rsplit(":", 1)[1]
    # No port: once looked up as the host ":"; now the guard refuses the loopback address itself.
    assert fetch("http://[::1]/x.jpg", guarded).status == "private_address"
    mapped = fetch(f"http://[::ffff:127.0.0.1]:{port}/img/{A}", guarded)
    assert (mapped.status, "Traceback" in (mapped.error or "")) == ("private_address", False)
    assert fetch("http://[::ffff:169.254.169.254]/latest", guarded).status == "private_address"
    allowed = fetch(f"{ipv6_server.url}/img/{A}", FetchConfig(timeout=1.0, retries=0, allow_networks=("::1/128",)))
    assert (allowed.status, allowed.data) == ("ok", (COCO_IMAGES / A).read_bytes())


# --- proxies ----------------------------------------------------------------------------------


def test_http_goes_through_the_proxy_and_the_guard_still_checks_the_target(image_server, second_loopback_server):
    with Proxy() as proxy:
        config = FetchConfig(timeout=2.0, retries=0, allow_networks=("127.0.0.1/32",), http_proxy=proxy.url)
        result = fetch(f"{image_server.url}/img/{A}", config)
        assert (result.status, result.data) == ("ok", (COCO_IMAGES / A).read_bytes())
        assert proxy.requests == [f"GET {image_server.url}/img/{A} HTTP/1.1"]
        # 127.0.0.2 is outside the allowance: refused before the proxy is asked anything.
        refused = fetch(f"{second_loopback_server.url}/img/{A}", config)
        assert refused.status == "private_address" and len(proxy.requests) == 1
        # NO_PROXY hosts go direct.
        direct = fetch(
            f"{image_server.url}/img/{B}",
            FetchConfig(
                timeout=2.0, retries=0, allow_networks=("127.0.0.1/32",), http_proxy=proxy.url, no_proxy=("127.0.0.1",)
            ),
        )
        assert direct.status == "ok" and len(proxy.requests) == 1


def test_https_goes_through_a_connect_tunnel(tmp_path, monkeypatch):
    cert, key = self_signed_certificate(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", cert)  # Python's ssl trusts the test certificate
    image = (COCO_IMAGES / A).read_bytes()
    with HttpsImageServer(image, cert, key) as server, Proxy() as proxy:
        config = FetchConfig(timeout=3.0, retries=0, allow_networks=("127.0.0.1/32",), https_proxy=proxy.url)
        result = fetch(f"{server.url}/a.jpg", config)
        assert (result.status, result.data) == ("ok", image)
        host_port = server.url.removeprefix("https://")
        assert [r.rsplit(" ", 1)[0] for r in proxy.requests] == [f"CONNECT {host_port}"]
        guarded = fetch(f"{server.url}/a.jpg", FetchConfig(timeout=3.0, retries=0, https_proxy=proxy.url))
        assert guarded.status == "private_address" and len(proxy.requests) == 1


@pytest.mark.slow
def test_the_cli_reads_the_proxy_variables_and_passes_them_in(tmp_path, image_server):
    input_path = write_table(tmp_path / "list.parquet", [{"url": f"{image_server.url}/img/{A}", "caption": "a cat"}])
    with Proxy() as proxy:
        env = dict(os.environ, HTTP_PROXY=proxy.url, NO_PROXY="")
        result = wit_download(input_path, tmp_path / "out", env=env)
        assert result.returncode == 0, result.stderr
        assert [line.split(" ")[0] for line in proxy.requests] == ["GET"]
    assert read_rows(tmp_path / "out")["a cat"]["status"] == "ok"


def test_an_image_path_naming_a_filesystem_chain_is_refused(tmp_path):
    # fsspec reads `a::b` as a chain of filesystems: such a path is never what the check resolved.
    from wit_pipeline.download.shard import path_under_root

    root = tmp_path / "root"
    root.mkdir()
    (root / "a.jpg").write_bytes(b"x")
    assert path_under_root(str(root / "a.jpg"), str(root)) is not None
    assert path_under_root(f"{root / 'a.jpg'}::file:///etc/passwd", str(root)) is None
    assert path_under_root("gs://bucket/imgs/a.jpg::file:///etc/passwd", "gs://bucket/imgs") is None
