"""Hashes of a stored image: sha256 of its bytes and imagehash's 64-bit pHash as 16 hex chars.

Which pixels the pHash describes: the stored image's. `phash_pixels` is the one function every
pHash goes through (downloaded images, evaluation images for decontamination, tests): imagehash's
pHash of a uint8 BGR or grey array as OpenCV holds it. The fast resizer hands over the pixels it
has just encoded, so hashing costs no second decode; those are the stored image up to the
encoder's loss, and their pHash is within a few bits of `imagehash.phash` of the written file
(bench/README.md reports the share identical and the largest difference). Bytes with no pixels at
hand (img2dataset's resizer, an evaluation file as it is) are decoded once as img2dataset decodes
them and hashed by the same function.
"""

from __future__ import annotations

import hashlib
import io

import imagehash
import numpy as np
from PIL import Image


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def phash_pixels(pixels: np.ndarray) -> str:
    """imagehash.phash of a BGR (or grey) uint8 image, as 16 lowercase hex characters.

    imagehash's algorithm step by step (Pillow's RGB->L conversion, Pillow's LANCZOS to 32 x 32,
    scipy's DCT-II on both axes, the top-left 8 x 8 against their median), with the BGR pixels
    handed to Pillow without a copy: equal to `imagehash.phash(Image.fromarray(rgb))`, bit for bit.
    """
    import scipy.fftpack

    pixels = np.ascontiguousarray(pixels)
    height, width = pixels.shape[:2]
    if pixels.ndim == 3:
        image = Image.frombuffer("RGB", (width, height), pixels, "raw", "BGR", 0, 1).convert("L")
    else:
        image = Image.frombuffer("L", (width, height), pixels, "raw", "L", 0, 1)
    small = np.asarray(image.resize((32, 32), Image.LANCZOS), dtype=np.float64)
    dct = scipy.fftpack.dct(scipy.fftpack.dct(small, axis=0), axis=1)[:8, :8]
    return str(imagehash.ImageHash(dct > np.median(dct)))


def phash_hex(data: bytes) -> str:
    """The pHash of encoded image `data`: decoded as img2dataset decodes, then `phash_pixels`.

    Raises OSError (Pillow's UnidentifiedImageError) for data no decoder reads."""
    from wit_pipeline.download.image import decode_unchanged

    pixels = decode_unchanged(np.frombuffer(data, np.uint8))
    if pixels is None:
        # A format OpenCV does not read (an evaluation set's GIF): Pillow's decode, as BGR.
        with Image.open(io.BytesIO(data)) as image:
            pixels = np.asarray(image.convert("RGB"))[:, :, ::-1]
    return phash_pixels(_as_uint8(pixels))


def phash_stored(image) -> str:
    """The pHash of a resizer's output (`image.ResizedImage`): from its kept pixels when it has them."""
    return phash_pixels(image.pixels) if image.pixels is not None else phash_hex(image.data)


def _as_uint8(pixels: np.ndarray) -> np.ndarray:
    # A 16-bit PNG decodes to uint16; the pHash is defined on 8-bit levels.
    return pixels if pixels.dtype == np.uint8 else (pixels >> 8).astype(np.uint8)


def phash_to_int(value: str) -> int:
    """The unsigned 64-bit integer of a stored pHash (it can exceed 2**63: never store as int64)."""
    return int(value, 16)
