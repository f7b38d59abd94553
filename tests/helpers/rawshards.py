"""Test helper: raw shards as the download stage writes them, from real image bytes.

`RawSample(url, caption, jpeg)` becomes one `ok` row (tar members `<uid>.jpg|.txt|.json`, hashes
and sizes in the sidecar); `RawFailure(url, caption, status)` one failed row without an image.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

from PIL import Image, ImageOps

from helpers.paths import COCO_IMAGES
from wit_pipeline import schema, shards
from wit_pipeline.download.hashing import phash_hex, sha256_hex
from wit_pipeline.io import join, makedirs


@dataclass
class RawSample:
    url: str
    caption: str
    jpeg: bytes
    # The size before the download stage's resize; None means the stored image's size.
    original_size: tuple[int, int] | None = None

    @property
    def uid(self) -> str:
        return schema.uid(self.url, self.caption)


@dataclass
class RawFailure:
    url: str
    caption: str
    status: str = "http_404"

    @property
    def uid(self) -> str:
        return schema.uid(self.url, self.caption)


def write_raw_shard(folder: str, shard_id: int, samples: list) -> list[dict]:
    """Write shard `shard_id` (tar, sidecar, stats, marker) into `folder`; return its rows."""
    makedirs(folder)
    name = shards.shard_name(shard_id)
    rows = []
    with shards.TarSampleWriter(join(folder, f"{name}.tar")) as tar:
        for sample in samples:
            row = schema.empty_row(schema.RAW_SCHEMA)
            row.update(uid=sample.uid, url=sample.url, caption=sample.caption, source="test")
            if isinstance(sample, RawFailure):
                row.update(status=sample.status, error="test failure")
                rows.append(row)
                continue
            with Image.open(io.BytesIO(sample.jpeg)) as image:
                width, height = image.size
            original_width, original_height = sample.original_size or (width, height)
            row.update(
                status=schema.OK,
                http_status=200,
                sha256=sha256_hex(sample.jpeg),
                phash=phash_hex(sample.jpeg),
                width=width,
                height=height,
                original_width=original_width,
                original_height=original_height,
                bytes=len(sample.jpeg),
            )
            rows.append(row)
            meta = {k: row[k] for k in ("uid", "url", "caption", "width", "height", "sha256")}
            tar.write(
                sample.uid,
                {"jpg": sample.jpeg, "txt": sample.caption.encode(), "json": json.dumps(meta, sort_keys=True).encode()},
            )
    shards.write_parquet(join(folder, f"{name}.parquet"), rows, schema.RAW_SCHEMA)
    ok = sum(row["status"] == schema.OK for row in rows)
    shards.mark_done(folder, shard_id, {"rows": len(rows), "ok": ok})
    return rows


# Real near duplicates of one photo, as the web makes them.
def encode(image: Image.Image, quality: int = 95) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def load(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def half(data: bytes) -> bytes:
    image = load(data)
    return encode(image.resize((image.width // 2, image.height // 2), Image.LANCZOS))


def double(data: bytes) -> bytes:
    image = load(data)
    return encode(image.resize((image.width * 2, image.height * 2), Image.LANCZOS))


def quality50(data: bytes) -> bytes:
    return encode(load(data), quality=50)


def grayscale(data: bytes) -> bytes:
    return encode(ImageOps.grayscale(load(data)))


def crop3(data: bytes) -> bytes:
    """3% cut from every side."""
    image = load(data)
    dx, dy = round(image.width * 0.03), round(image.height * 0.03)
    return encode(image.crop((dx, dy, image.width - dx, image.height - dy)))


def border1(data: bytes) -> bytes:
    return encode(ImageOps.expand(load(data), border=1, fill="black"))


VARIANTS = {
    "half": half,
    "double": double,
    "quality50": quality50,
    "grayscale": grayscale,
    "crop3": crop3,
    "border1": border1,
}


# The dedup tests' set (build_raw): real COCO photos with measured near duplicates.
VARIED = "000000113488.jpg"  # every variant, its 3% crop included, stays within 4 bits
CROP_FAR = "000000133030.jpg"  # its 3% crop moves the pHash 12 bits: beyond the default radius
CHAIN = "000000069468.jpg"  # 1% and 2% crops: original ~ 1% ~ 2%, original to 2% is 6 bits
TWO_URLS = "000000030752.jpg"


def photo(name: str) -> bytes:
    """A bundled COCO photo's bytes."""
    return (COCO_IMAGES / name).read_bytes()


def crop(data: bytes, fraction: float) -> bytes:
    """`fraction` of each side cut off."""
    image = load(data)
    dx, dy = round(image.width * fraction), round(image.height * fraction)
    return encode(image.crop((dx, dy, image.width - dx, image.height - dy)))


def sample(name: str, data: bytes, caption: str | None = None) -> RawSample:
    """A row named `name` on 127.0.0.1."""
    return RawSample(f"http://127.0.0.1/{name}", caption or f"a photo {name}", data)


def build_raw(folder) -> dict[str, RawSample]:
    """Two raw shards: every COCO photo once, plus near duplicates, chains and failures."""
    named = {}
    varied = photo(VARIED)
    named["varied"] = sample("varied.jpg", varied)
    for variant, make in VARIANTS.items():
        named[f"varied_{variant}"] = sample(f"varied_{variant}.jpg", make(varied))
    named["two_urls_a"] = sample("copy-a.jpg", photo(TWO_URLS))
    named["two_urls_b"] = sample("copy-b.jpg", photo(TWO_URLS))
    shard0 = list(named.values()) + [RawFailure("http://127.0.0.1/gone.jpg", "gone")]

    others = {}
    for path in sorted(COCO_IMAGES.glob("*.jpg")):
        if path.name not in (VARIED, TWO_URLS):
            others[path.name] = sample(path.name, path.read_bytes())
    others["chain_1"] = sample("chain_1.jpg", crop(photo(CHAIN), 0.01))
    others["chain_2"] = sample("chain_2.jpg", crop(photo(CHAIN), 0.02))
    others["crop_far"] = sample("crop_far.jpg", crop3(photo(CROP_FAR)))
    shard1 = list(others.values()) + [RawFailure("http://127.0.0.1/slow.jpg", "slow", "timeout")]
    write_raw_shard(str(folder), 0, shard0)
    write_raw_shard(str(folder), 1, shard1)
    return {**named, **others}
