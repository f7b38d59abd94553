"""Per-image checks and resizing: our guards first, then img2dataset's own Resizer.

Order matters for cost: the cheap structural checks (format sniffing, end-of-image marker, the
declared pixel count read from the header alone) run before the full decode that the resizer
does, so a truncated file or a decompression bomb never reaches it.
"""

from __future__ import annotations

import io
import re
import threading
import warnings
from dataclasses import dataclass

from PIL import Image

from wit_pipeline.config import ResizeConfig

# We enforce the pixel limit ourselves (FetchConfig.max_pixels) and record it as a status; Pillow's
# warning for the same condition would only be noise on stderr.
warnings.simplefilter("ignore", Image.DecompressionBombWarning)


class ImageError(Exception):
    def __init__(self, status: str, message: str):
        super().__init__(message)
        self.status = status


@dataclass
class ResizedImage:
    data: bytes
    width: int
    height: int
    original_width: int
    original_height: int


def sniff_format(data: bytes) -> str | None:
    """The container format from its magic bytes, or None when it is not an image we know."""
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:2] == b"BM":
        return "bmp"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    return None


def check_complete(data: bytes, fmt: str) -> None:
    """Raise truncated_image when the data stops before its format's end marker.

    A server that closes early without a Content-Length, or a file cut on disk, still decodes
    into a half-grey image; the end marker is the cheap, exact test.
    """
    tail = data[-64:].rstrip(b"\x00\r\n\t ")
    complete = {
        "jpeg": lambda: tail.endswith(b"\xff\xd9"),
        "png": lambda: b"IEND" in tail,
        "gif": lambda: tail.endswith(b"\x3b"),
        "webp": lambda: int.from_bytes(data[4:8], "little") + 8 <= len(data),
    }.get(fmt)
    if complete is not None and not complete():
        raise ImageError("truncated_image", f"{fmt} data of {len(data)} bytes ends before its end marker")


def check_header(data: bytes, max_pixels: int) -> tuple[int, int]:
    """Read only the header: raise decode_error for undecodable data, decompression_bomb for huge images."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except Image.DecompressionBombError as err:
        # Pillow's own limit fired before ours could: report ours, the one the user sets.
        declared = re.search(r"\((\d+) pixels\)", str(err))
        pixels = int(declared.group(1)) if declared else None
        if pixels is not None and pixels <= max_pixels:  # allowed by ours, above Pillow's own hard stop
            raise ImageError("decompression_bomb", f"{pixels} pixels exceeds Pillow's hard limit of "
                                                   f"{2 * Image.MAX_IMAGE_PIXELS}, which caps --max-pixels") from None
        raise ImageError("decompression_bomb", f"{pixels or 'more'} pixels exceeds --max-pixels {max_pixels}") from None
    except (OSError, ValueError, SyntaxError) as err:
        raise ImageError("decode_error", f"not a decodable image: {err}") from None
    if width * height > max_pixels:
        raise ImageError("decompression_bomb", f"{width}x{height} = {width * height} pixels exceeds --max-pixels {max_pixels}")
    return width, height


def check_image(data: bytes, max_pixels: int) -> None:
    """All checks that run before decoding: format, completeness, header, pixel count."""
    fmt = sniff_format(data)
    if fmt is None:
        raise ImageError("decode_error", f"unrecognised image format (first bytes {data[:8].hex()})")
    check_complete(data, fmt)
    check_header(data, max_pixels)


# img2dataset's error strings, mapped to our statuses.
_RESIZER_ERRORS = {
    "image too small": "too_small",
    "image area too large": "too_large_area",
    "aspect ratio too large": "bad_aspect_ratio",
    "Image decoding error": "decode_error",
}


class ImageResizer:
    """img2dataset's Resizer, made safe to share between threads.

    Its __call__ silences libjpeg by swapping file descriptors 1 and 2, which is process-wide:
    two threads inside it at once could leave stdout pointing at /dev/null. img2dataset only
    resizes in one thread per process; the lock gives the same guarantee to our thread pool.
    """

    def __init__(self, config: ResizeConfig):
        from img2dataset.resizer import Resizer  # heavy import (albumentations, cv2): once per worker

        self._resizer = Resizer(
            image_size=config.image_size,
            resize_mode=config.resize_mode,
            resize_only_if_bigger=config.resize_only_if_bigger,
            upscale_interpolation=config.upscale_interpolation,
            downscale_interpolation=config.downscale_interpolation,
            encode_quality=config.encode_quality,
            encode_format=config.encode_format,
            min_image_size=config.min_image_size,
            max_image_area=config.max_image_area,
            max_aspect_ratio=config.max_aspect_ratio,
        )
        self._lock = threading.Lock()

    def __call__(self, data: bytes) -> ResizedImage:
        with self._lock:
            out, width, height, original_width, original_height, error = self._resizer(io.BytesIO(data))
        if error is not None:
            raise ImageError(_RESIZER_ERRORS.get(error, "resize_error"), error)
        return ResizedImage(out, width, height, original_width, original_height)
