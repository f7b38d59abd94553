"""Hashes of a stored image: sha256 of its bytes and imagehash's 64-bit pHash as 16 hex chars.

The pHash is computed by imagehash itself on the stored bytes (already in memory: no second
download), so it equals `imagehash.phash(Image.open(path))` on the written file, bit for bit.
"""

from __future__ import annotations

import hashlib
import io

import imagehash
from PIL import Image


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def phash_hex(data: bytes) -> str:
    """imagehash.phash of the encoded image `data`, as 16 lowercase hex characters."""
    with Image.open(io.BytesIO(data)) as image:
        return str(imagehash.phash(image))


def phash_to_int(value: str) -> int:
    """The unsigned 64-bit integer of a stored pHash (it can exceed 2**63: never store as int64)."""
    return int(value, 16)
