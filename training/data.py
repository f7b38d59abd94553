"""WebDataset input pipeline: tar shards in, batches of (uint8 images, token ids) out.

Reads our shards (`<uid>.jpg|.txt|.json`) and img2dataset or open_clip shards (same member names;
`.png`, `.webp`, `.jpeg` images and `.caption` text are accepted too) from local paths, brace
patterns or any fsspec URL.

Each data-loader worker of each rank reads its own *stream*: a seeded, endless sequence of shards
(drawn with replacement, or each epoch's shuffled list split between streams), expanded into
samples, shuffled in a buffer, decoded and batched. Everything random in a stream is seeded by
(seed, stream, sample index), so a stream is a pure function of the config. That is what makes
resuming exact: a checkpoint records how many raw samples each stream had handed over, and a
resumed stream skips that many without decoding them.

A sample that cannot be used (undecodable image, missing or non-UTF-8 caption) is skipped and
counted; the counts travel with every batch so the trainer can log and checkpoint them.
"""

from __future__ import annotations

import hashlib
import io
import math
import random
import tarfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from wit_pipeline.io import exists, expand, fs_path, open_parquet

IMAGE_KEYS = ("jpg", "jpeg", "png", "webp")
TEXT_KEYS = ("txt", "caption", "text")
# CLIP's normalisation constants (ImageNet-like, measured on its training images).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
# Errors that mean "this sample's bytes are bad", as opposed to a bug in our code.
DECODE_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError, UnicodeDecodeError)


def expand_shards(pattern: str) -> list[str]:
    """Shard URLs from a brace pattern (`out/final/{00000..00012}.tar`), a glob (`out/*.tar`) or
    a folder (its `*.tar`, sorted); several patterns may be joined with '::'. A `.tar` URL is
    taken as given, without a request to its store."""
    return expand(
        pattern,
        recursive=False,
        accept=lambda name: name.endswith(".tar"),
        braces=True,
        check=False,
        missing="no shards in {!r}",
    )


def _seed(*parts) -> int:
    """A stable 64-bit seed from any parts (Python's hash() differs between processes)."""
    return int.from_bytes(hashlib.blake2b(repr(parts).encode(), digest_size=8).digest(), "little")


# --- image transforms (PIL + torch; torchvision does not install beside this torch) -------------


def random_resized_crop_box(width: int, height: int, rng: random.Random, scale=(0.9, 1.0), ratio=(3 / 4, 4 / 3)):
    """torchvision's RandomResizedCrop box (left, top, right, bottom): a random area and aspect.

    open_clip trains CLIP with scale (0.9, 1.0): mostly the whole image, a little jitter.
    """
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        w = round(math.sqrt(target_area * aspect))
        h = round(math.sqrt(target_area / aspect))
        if 0 < w <= width and 0 < h <= height:
            left = rng.randint(0, width - w)
            top = rng.randint(0, height - h)
            return left, top, left + w, top + h
    # Fallback, as torchvision: the centre crop with the aspect clamped into `ratio`.
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, round(width / ratio[0])
    elif in_ratio > ratio[1]:
        w, h = round(height * ratio[1]), height
    else:
        w, h = width, height
    left, top = (width - w) // 2, (height - h) // 2
    return left, top, left + w, top + h


def center_crop_box(width: int, height: int):
    """The largest centred square: resize-shorter-side-then-centre-crop in one resampling."""
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return left, top, left + side, top + side


def load_image(data: bytes, image_size: int, rng: random.Random | None) -> torch.Tensor:
    """Decode image bytes to a `[3, S, S]` uint8 tensor: random resized crop when `rng` is given
    (training), else resize + centre crop (evaluation)."""
    with Image.open(io.BytesIO(data)) as encoded:
        # JPEG can decode at 1/2, 1/4 or 1/8 scale for free; draft keeps both sides >= the target.
        encoded.draft("RGB", (image_size, image_size))
        img = encoded.convert("RGB")
    width, height = img.size
    box = random_resized_crop_box(width, height, rng) if rng is not None else center_crop_box(width, height)
    img = img.resize((image_size, image_size), Image.Resampling.BICUBIC, box=box)
    return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)


def normalise_images(images: torch.Tensor) -> torch.Tensor:
    """uint8 `[B, 3, S, S]` to CLIP-normalised floats; done on the device, after the copy, since
    uint8 is a quarter of the bytes to move."""
    mean = torch.tensor(CLIP_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=images.device).view(1, 3, 1, 1)
    return (images.float() / 255.0 - mean) / std


def decode_sample(sample: dict, image_size: int, rng: random.Random | None):
    """(image tensor, caption, None) of a raw tar sample, or (None, None, reason) when it cannot
    be used; the reason is the counter it is skipped under."""
    image_key = next((k for k in IMAGE_KEYS if k in sample), None)
    text_key = next((k for k in TEXT_KEYS if k in sample), None)
    if image_key is None:
        return None, None, "missing_image"
    if text_key is None:
        return None, None, "missing_caption"
    try:
        caption = sample[text_key].decode("utf-8").strip()
    except UnicodeDecodeError:
        return None, None, "caption_not_utf8"
    if not caption:
        return None, None, "empty_caption"
    try:
        image = load_image(sample[image_key], image_size, rng)
    except DECODE_ERRORS:
        return None, None, "decode_error"
    return image, caption, None


# --- raw sample streams -----------------------------------------------------------------------


def open_shard(url: str):
    fs, path = fs_path(url)
    return fs.open(path, "rb")


def shard_order(urls: list[str], seed: int, stream: int, num_streams: int, resample: bool):
    """The endless shard sequence of one stream.

    Resampled: shards drawn with replacement from a per-stream generator, so every rank and worker
    reads different data and epochs need no bookkeeping (open_clip's --dataset-resampled).
    Not resampled: each epoch the list is shuffled with the same seed everywhere and split between
    streams, so every shard is read exactly once per epoch.
    """
    if resample:
        rng = random.Random(_seed(seed, "shards", stream))
        while True:
            yield rng.choice(urls)
    if len(urls) < num_streams:
        raise ValueError(
            f"{len(urls)} shards cannot be split between {num_streams} ranks x workers; use resampling or fewer workers"
        )
    epoch = 0
    while True:
        order = urls[:]
        random.Random(_seed(seed, "epoch", epoch)).shuffle(order)
        yield from order[stream::num_streams]
        epoch += 1


def raw_samples(urls, counts: Counter, max_barren_shards: int = 1000):
    """Samples ({ext: bytes, '__key__', '__url__'}) of the shards in `urls`, in order.

    A shard that cannot be read (missing file, truncated or corrupt tar) is counted under
    `shard_error` and the stream goes on with the next one. After `max_barren_shards` shards in a
    row without a sample it stops with an error: an endless stream of unreadable shards would
    otherwise hang the run.
    """
    import webdataset as wds

    barren = 0

    def count_and_continue(exn):
        counts["shard_error"] += 1
        return True

    def opened():
        nonlocal barren
        for url in urls:
            barren += 1
            if barren > max_barren_shards:
                raise ValueError(f"{max_barren_shards} shards in a row gave no sample; the last was {url}")
            try:
                yield {"url": url, "stream": open_shard(url)}
            except (OSError, ValueError):
                counts["shard_error"] += 1

    files = wds.tariterators.tar_file_expander(opened(), handler=count_and_continue)
    for sample in wds.tariterators.group_by_keys(files, handler=count_and_continue):
        barren = 0
        yield sample


def shuffled(samples, buffer_size: int, rng: random.Random):
    """Reservoir-style shuffle buffer: emit a random held sample for each new one."""
    if buffer_size <= 1:
        yield from samples
        return
    buffer: list = []
    for sample in samples:
        if len(buffer) < buffer_size:
            buffer.append(sample)
            continue
        index = rng.randrange(buffer_size)
        yield buffer[index]
        buffer[index] = sample
    rng.shuffle(buffer)
    yield from buffer


# --- training stream and loader ---------------------------------------------------------------


@dataclass
class StreamSpec:
    """What one rank's loader needs; a plain object, so it pickles into worker processes."""

    urls: list[str]
    tokenizer: Callable[[list[str]], torch.Tensor]  # a CaptionTokenizer
    image_size: int
    batch_size: int
    seed: int = 0
    rank: int = 0
    world_size: int = 1
    workers: int = 2
    shuffle_buffer: int = 1000
    resample: bool = True
    augment: bool = True
    # Resume state: raw samples already handed over by each stream (index = stream id), and how
    # many batches the loader had returned (which worker's turn it is).
    start_positions: list[int] = field(default_factory=list)
    start_batches: int = 0

    @property
    def streams_per_rank(self) -> int:
        return max(1, self.workers)

    @property
    def num_streams(self) -> int:
        return self.streams_per_rank * self.world_size


def stream_batches(spec: StreamSpec, stream: int):
    """Endless batches of one stream: dicts with `images` (uint8), `tokens`, and the stream's
    `position` (raw samples consumed) and `counts` (samples skipped, by reason) so far."""
    counts: Counter = Counter()
    shards = shard_order(spec.urls, spec.seed, stream, spec.num_streams, spec.resample)
    barren_limit = max(10, 3 * len(spec.urls))
    samples = shuffled(
        raw_samples(shards, counts, barren_limit),
        spec.shuffle_buffer,
        random.Random(_seed(spec.seed, "buffer", stream)),
    )
    skip = spec.start_positions[stream] if stream < len(spec.start_positions) else 0
    images, captions = [], []
    for index, sample in enumerate(samples):
        if index < skip:
            continue  # resuming: these were trained on before; skip them undecoded
        # One generator per sample, so augmentation does not depend on what was skipped.
        rng = random.Random(_seed(spec.seed, "augment", stream, index)) if spec.augment else None
        image, caption, skip_reason = decode_sample(sample, spec.image_size, rng)
        if skip_reason:
            counts[skip_reason] += 1
            continue
        images.append(image)
        captions.append(caption)
        if len(images) == spec.batch_size:
            yield {
                "images": torch.stack(images),
                "tokens": spec.tokenizer(captions),
                "stream": stream,
                "position": index + 1,
                "counts": dict(counts),
            }
            images, captions = [], []


class TrainStream(torch.utils.data.IterableDataset):
    """One rank's batches. With W workers the loader takes batches from workers 0, 1, ... W-1 in
    turn; after a resume at batch B, worker w reads stream (w + B) % W so the turn order, and so
    the batch sequence, carries on where it stopped."""

    def __init__(self, spec: StreamSpec):
        self.spec = spec

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker = info.id if info is not None else 0
        local = (worker + self.spec.start_batches) % self.spec.streams_per_rank
        stream = self.spec.rank * self.spec.streams_per_rank + local
        return stream_batches(self.spec, stream)


def train_loader(spec: StreamSpec) -> torch.utils.data.DataLoader:
    """A DataLoader over one rank's streams; batches are made in the workers (batch_size=None)."""
    return torch.utils.data.DataLoader(
        TrainStream(spec),
        batch_size=None,
        num_workers=spec.workers,
        persistent_workers=False,
        prefetch_factor=4 if spec.workers else None,
        pin_memory=torch.cuda.is_available(),
    )


class LoaderState:
    """What the trainer remembers about the data: per-stream positions and skip counts."""

    def __init__(self, num_streams: int, positions=None, batches: int = 0, skipped=None):
        self.positions = list(positions) if positions else [0] * num_streams
        self.batches = batches
        self.base_skipped = Counter(skipped or {})  # counts restored from a checkpoint
        self.stream_skipped: dict[int, dict] = {}

    def update(self, batch: dict) -> None:
        self.positions[batch["stream"]] = batch["position"]
        self.stream_skipped[batch["stream"]] = batch["counts"]
        self.batches += 1

    def skipped(self) -> dict[str, int]:
        total = Counter(self.base_skipped)
        for counts in self.stream_skipped.values():
            total.update(counts)
        return dict(total)


# --- evaluation and counting ------------------------------------------------------------------


def eval_samples(urls: list[str], image_size: int, counts: Counter):
    """Every usable (image, caption, image_key) of the shards once, in order; centre crops."""
    for sample in raw_samples(urls, counts):
        image, caption, skip_reason = decode_sample(sample, image_size, None)
        if skip_reason:
            counts[skip_reason] += 1
            continue
        image_key = next(k for k in IMAGE_KEYS if k in sample)
        # Samples with the same image bytes (several captions of one photo) are one image.
        yield image, caption, hashlib.sha1(sample[image_key]).hexdigest()


def iter_captions(urls: list[str], limit: int):
    """Up to `limit` captions from the shards, for training the tokenizer.

    A shard's Parquet sidecar (`NNNNN.parquet`, written by our stages and by img2dataset) has a
    `caption` column: reading it costs kilobytes where the tar costs the images' bytes too.
    """
    seen = 0
    for url in urls:
        for text in _shard_captions(url):
            if text:
                yield text
                seen += 1
                if seen >= limit:
                    return


def _shard_captions(url: str):
    try:
        yield from _readable_captions(url)
    except (tarfile.TarError, OSError, EOFError, ValueError):
        # a shard cut short or still being written: its readable captions are enough, as the loader skips the rest
        return


def _readable_captions(url: str):
    sidecar = url[: -len(".tar")] + ".parquet" if url.endswith(".tar") else None
    if sidecar:
        if exists(sidecar):
            with open_parquet(sidecar) as parquet:
                if "caption" in parquet.schema_arrow.names:
                    captions = parquet.read(columns=["caption"]).column(0).to_pylist()
                    yield from (c.strip() for c in captions if c)
                    return
    # Random-access mode: seeks over the images instead of reading them.
    with open_shard(url) as f, tarfile.open(fileobj=f, mode="r:*") as tar:
        for member in tar:
            extracted = tar.extractfile(member) if member.isfile() else None
            if extracted is not None and member.name.rsplit(".", 1)[-1].lower() in TEXT_KEYS:
                yield extracted.read().decode("utf-8", errors="replace").strip()


def count_samples(urls: list[str]) -> int:
    """Samples in the shards: image members counted from the tar headers alone."""
    total = 0
    for url in urls:
        total += _count_images(url)
    return total


def _count_images(url: str) -> int:
    """Image members of one shard; a shard cut short (still being written, or truncated) counts
    the members before the cut, as many as the loader, which skips the rest, will yield."""
    count = 0
    try:
        # Random-access mode: seeks from header to header instead of reading every member.
        with open_shard(url) as f, tarfile.open(fileobj=f, mode="r:*") as tar:
            for member in tar:
                count += member.isfile() and member.name.rsplit(".", 1)[-1].lower() in IMAGE_KEYS
    except (tarfile.TarError, OSError, EOFError):
        pass
    return count
