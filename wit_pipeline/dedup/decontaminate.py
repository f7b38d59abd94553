"""pHashes of an evaluation set, for decontamination.

An evaluation set is given as a folder: either of our shards (any folder of `*.parquet` sidecars
with a `phash` column, such as `OUT/final` or `OUT/raw` of another run; their `ok` rows count),
or of image files (searched recursively). An image file is hashed twice: as it is, and as the
download stage would store it (the same resizer and settings, read from the raw shards'
`config.json`), both through `hashing.phash_pixels`, the function the download stage hashes with,
because the training rows' pHashes describe their stored, resized images: with
the default `border` mode the padding alone moves a pHash by 10 to 30 bits, so the file's own hash
would miss most copies.
"""

from __future__ import annotations

import numpy as np
import pyarrow.compute as pc

from wit_pipeline import io, schema
from wit_pipeline.config import ConfigError, ResizeConfig, from_mapping
from wit_pipeline.download.hashing import phash_hex, phash_stored, phash_to_int

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")


def stored_image_resize(raw_folder: str) -> ResizeConfig | None:
    """The resize settings the download stage recorded in `raw_folder/config.json`, if any."""
    found = io.read_json(io.join(raw_folder, "config.json"))
    if found is None:
        return None
    try:
        return from_mapping(ResizeConfig, found["download"]["resize"])
    except (KeyError, TypeError, ValueError, ConfigError):
        return None


def eval_hashes(path: str, resize: ResizeConfig | None = None) -> np.ndarray:
    """Distinct uint64 pHashes of the evaluation set at `path` (sorted).

    With `resize`, each image file also contributes the pHash of its resized, re-encoded form.

    Raises ValueError when the folder holds neither sidecars nor images, or an image file does
    not decode: a broken evaluation set must not pass as a clean one.
    """
    fs, root = io.fs_path(path)
    if not fs.isdir(root):
        raise io.InputError(f"evaluation set {path} is not a folder")
    files = sorted(fs.find(root))
    sidecars = [f for f in files if f.endswith(".parquet")]
    if sidecars:
        return _hashes_from_sidecars(fs, sidecars)
    images = [f for f in files if f.lower().endswith(IMAGE_SUFFIXES)]
    if not images:
        raise io.InputError(f"evaluation set {path} holds no Parquet sidecars and no image files")
    resizer = None
    if resize is not None:
        from wit_pipeline.download.image import make_resizer

        resizer = make_resizer(resize)
    values = []
    for image in images:
        with fs.open(image, "rb") as f:
            data = f.read()
        try:
            values.append(phash_to_int(phash_hex(data)))
        except OSError as err:  # PIL's UnidentifiedImageError is an OSError
            raise io.InputError(f"evaluation image {image} does not decode: {err}") from err
        if resizer is not None:
            values.append(phash_to_int(_stored_form_phash(resizer, data, image)))
    return np.unique(np.array(values, dtype=np.uint64))


def _stored_form_phash(resizer, data: bytes, image: str) -> str:
    """The pHash the download stage would record for this file: the same resize, the same hash."""
    from wit_pipeline.download.image import ImageError

    try:
        return phash_stored(resizer(data))
    except ImageError as err:
        raise io.InputError(f"evaluation image {image} cannot be resized as stored images are: {err}") from err


def _hashes_from_sidecars(fs, sidecars: list[str]) -> np.ndarray:
    parts: list[int] = []
    for sidecar in sidecars:
        protocol = fs.protocol[0] if isinstance(fs.protocol, tuple) else fs.protocol
        url = sidecar if protocol in ("file", "local") else f"{protocol}://{sidecar}"
        table = io.read_parquet(url, columns=["status", "phash"])
        table = table.filter(pc.and_(pc.equal(table["status"], schema.OK), pc.is_valid(table["phash"])))
        parts.extend(phash_to_int(value) for value in table["phash"].to_pylist())
    if not parts:
        raise io.InputError(f"the sidecars under {sidecars[0].rsplit('/', 1)[0]} hold no ok rows with a pHash")
    return np.unique(np.array(parts, dtype=np.uint64))
