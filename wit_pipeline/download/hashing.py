"""Hashes of a stored image: sha256 of its bytes and a 64-bit pHash as 16 hex chars.

Which pixels the pHash describes: the stored image's. `phash_pixels` is the one function every
pHash goes through (downloaded images, evaluation images for decontamination, tests). The fast
resizer hands over the pixels it has just encoded, so hashing costs no second decode; those are
the stored image up to the encoder's loss. Bytes with no pixels at hand (img2dataset's resizer,
an evaluation file as it is) are decoded once (a large JPEG at a reduced DCT scale, see
`phash_hex`) and hashed by the same function.

The algorithm is imagehash's pHash (grey levels, 32 x 32, DCT-II on both axes, the top-left 8 x 8
against their median, bits row by row), computed with OpenCV: the 32 x 32 reduction is an area
average (cv2.INTER_AREA) where imagehash uses Pillow's LANCZOS, which is most of imagehash's cost.
The bits are therefore not always imagehash's: on COCO photos about three in four hashes are
identical and the rest differ by at most a few bits (bench/README.md gives the figures;
tests/test_resize.py bounds them). Near-duplicate detection only compares hashes made by this
function, so it is consistent with itself, which is what dedup and decontamination need.
"""

from __future__ import annotations

import hashlib
import io

import numpy as np
from PIL import Image

# cv2.dct is orthonormal: its first row and column are scaled by 1/sqrt(2) against the others,
# where scipy's unnormalised DCT-II (imagehash's) scales every coefficient alike. Undo that, so
# the median splits the same 64 values.
_FIRST_ROW_AND_COLUMN = np.sqrt(2.0).astype(np.float32)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def phash_pixels(pixels: np.ndarray) -> str:
    """The pHash of a BGR (or grey) uint8 image, as 16 lowercase hex characters (see the module
    docstring): grey levels (OpenCV's BT.601 weights, as Pillow's RGB->L), area average to
    32 x 32, DCT, the top-left 8 x 8 against their median."""
    import cv2

    grey = cv2.cvtColor(pixels, cv2.COLOR_BGR2GRAY) if pixels.ndim == 3 else pixels
    small = cv2.resize(grey, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)
    dct = cv2.dct(small)[:8, :8]
    dct[0, :] *= _FIRST_ROW_AND_COLUMN
    dct[:, 0] *= _FIRST_ROW_AND_COLUMN
    return np.packbits(dct > np.median(dct)).tobytes().hex()


# A JPEG is decoded for its pHash at the coarsest libjpeg DCT scale that keeps this many times
# the 32 x 32 reduction on each side (bench/README.md: at 4, hashes stay within 2 bits of the
# full decode's, at 2.5 within 4).
PHASH_DECODE_MARGIN = 4.0


def phash_hex(data: bytes) -> str:
    """The pHash of encoded image `data`, through `phash_pixels`.

    A JPEG is decoded in grey at a reduced DCT scale when it is large enough (see
    PHASH_DECODE_MARGIN): the pHash only keeps 32 x 32 averages, and decoding a 640 px photo at
    1/4 scale costs a fraction of the full decode. Anything else is decoded as img2dataset
    decodes (alpha matted on white). Raises OSError (Pillow's UnidentifiedImageError) for data no
    decoder reads."""
    import cv2

    from wit_pipeline.download.image import decode_unchanged, jpeg_scale, sniff_format

    buffer = np.frombuffer(data, np.uint8)
    if sniff_format(data) == "jpeg":
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
        scale = jpeg_scale(width, height, (32, 32), PHASH_DECODE_MARGIN)
        if scale > 1:
            # Orientation ignored, as img2dataset's IMREAD_UNCHANGED ignores it.
            flags = {2: cv2.IMREAD_REDUCED_GRAYSCALE_2, 4: cv2.IMREAD_REDUCED_GRAYSCALE_4}.get(
                scale, cv2.IMREAD_REDUCED_GRAYSCALE_8
            )
            pixels = cv2.imdecode(buffer, flags | cv2.IMREAD_IGNORE_ORIENTATION)
            if pixels is not None:
                return phash_pixels(pixels)
    pixels = decode_unchanged(buffer)
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
