"""`wit adopt` on a real img2dataset download gives what `wit download` of the same URLs gives.

img2dataset (installed with wit) downloads a URL list from the loopback server; `wit download`
downloads the same list. After `wit adopt` of the first, both folders go through dedup and
reshard: the same rows fail with the same statuses, the same samples survive, and the final
shards hold the same samples in the same order with the same image bytes and hashes.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers.report_runs import coco_rows

from wit_pipeline import cli, shards

IMG2DATASET = """
import sys
from img2dataset import download
if __name__ == "__main__":
    download(url_list=sys.argv[1], output_folder=sys.argv[2], processes_count=1, thread_count=4,
             image_size=256, resize_mode="border", encode_quality=95, output_format="webdataset",
             input_format="parquet", url_col="url", caption_col="caption", number_sample_per_shard=10,
             timeout=10, retries=0, distributor="multiprocessing", enable_wandb=False,
             disallowed_header_directives=[])
"""


@pytest.fixture(scope="module")
def url_list(tmp_path_factory, image_server):
    rows = coco_rows(image_server.url)
    rows += [{"url": row["url"], "caption": f"The same photo again: {row['caption']}"} for row in rows[:4]]
    # A query of its own: the shared server counts hits per path, and other tests count /status/404.
    rows += [
        {"url": f"{image_server.url}/status/404?from=adopt", "caption": "a missing image"},
        {"url": f"{image_server.url}/notimage.jpg", "caption": "text labelled as a jpeg"},
    ]
    path = tmp_path_factory.mktemp("adopt") / "urls.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def final_samples(out) -> list[list[tuple]]:
    """Per final shard, in order: (uid, caption, url, sha256, phash, image bytes) of each sample."""
    found = []
    for sidecar in sorted((out / "final").glob("*.parquet")):
        table = pq.read_table(sidecar, columns=["uid", "caption", "url", "sha256", "phash"]).to_pylist()
        images = {key: members["jpg"] for key, members in shards.iter_tar(str(sidecar.with_suffix(".tar")))}
        found.append([(r["uid"], r["caption"], r["url"], r["sha256"], r["phash"], images[r["uid"]]) for r in table])
    return found


def raw_statuses(out) -> dict[str, str]:
    table = pa.concat_tables(
        pq.read_table(p, columns=["uid", "status"]) for p in sorted((out / "raw").glob("*.parquet"))
    )
    return dict(zip(table["uid"].to_pylist(), table["status"].to_pylist(), strict=True))


@pytest.mark.slow
def test_adopted_img2dataset_download_dedups_and_reshards_like_wit_download(url_list, tmp_path):
    i2d = tmp_path / "i2d"
    env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1")
    result = subprocess.run(
        [sys.executable, "-c", IMG2DATASET, str(url_list), str(i2d)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    adopted, downloaded = tmp_path / "adopted", tmp_path / "downloaded"
    assert cli.main(["adopt", str(i2d), "--output", str(adopted), "--processes", "1"]) == 0
    # img2dataset's own resizer, as img2dataset stored the adopted images with it.
    assert (
        cli.main(
            [
                "download",
                "--input",
                str(url_list),
                "--output",
                str(downloaded),
                "--processes",
                "1",
                "--shard-size",
                "10",
                "--retries",
                "0",
                "--allow-network",
                "127.0.0.1/32",
                "--resizer",
                "img2dataset",
            ]
        )
        == 0
    )
    for out in (adopted, downloaded):
        assert cli.main(["dedup", str(out)]) == 0
        assert cli.main(["reshard", str(out), "--samples-per-shard", "8"]) == 0

    statuses = raw_statuses(adopted)
    assert statuses == raw_statuses(downloaded)
    assert sorted(statuses.values()).count("ok") == 28 and {"http_404", "decode_error"} <= set(statuses.values())
    for name in ("keep.parquet", "clusters.parquet"):
        assert pq.read_table(adopted / "dedup" / name).equals(pq.read_table(downloaded / "dedup" / name)), name
    assert pq.read_table(adopted / "dedup/clusters.parquet").num_rows == 8  # four pairs of the same photo
    assert final_samples(adopted) == final_samples(downloaded)
    assert cli.main(["report", str(adopted)]) == 0


def test_adopt_refuses_a_folder_without_img2dataset_shards(tmp_path, capsys):
    assert cli.main(["adopt", str(tmp_path), "--output", str(tmp_path / "out")]) == 2
    assert cli.main(["adopt", str(tmp_path / "missing"), "--output", str(tmp_path / "out")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and "holds no img2dataset shards" in lines[0] and "is not a folder" in lines[1]


@pytest.mark.parametrize(
    "status, message, expected",
    [
        ("success", None, "ok"),
        ("failed_to_download", "HTTP Error 404: Not Found", "http_404"),
        ("failed_to_download", "<urlopen error timed out>", "timeout"),
        ("failed_to_download", "<urlopen error [Errno -2] Name or service not known>", "dns_error"),
        ("failed_to_download", "<urlopen error [Errno 111] Connection refused>", "connection_error"),
        ("failed_to_resize", "image too small", "too_small"),
        ("failed_to_resize", "Image decoding error", "decode_error"),
        ("failed_to_download", "something new", "img2dataset_failed"),
    ],
)
def test_img2dataset_statuses_map_to_wits_vocabulary(status, message, expected):
    from wit_pipeline.adopt import status_of
    from wit_pipeline.schema import check_status

    assert check_status(status_of(status, message)[0]) == expected
