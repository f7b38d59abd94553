"""Per-image checks and resizing: our guards first, then one of two resizers.

Order matters for cost: the cheap structural checks (format sniffing, end-of-image marker, the
declared size and pixel count read from the header alone) run before any decode, so a truncated
file or a decompression bomb never reaches a decoder.

Two resizers share img2dataset's semantics (every resize mode, `resize_only_if_bigger`, minimum
size, maximum area and aspect ratio, alpha matted on white, encode format and quality):

- `FastResizer` (the default) plans the geometry from the header's size, then decodes a JPEG
  once, with libjpeg-turbo's DCT scaling (OpenCV's IMREAD_REDUCED_*), at the smallest of 1/2,
  1/4, 1/8 that still leaves `margin` times the target size, and finishes with the same
  antialiased area resize to exactly img2dataset's output size. Skipping the full-size decode is
  where the time goes on large photos; the margin keeps the quality (bench/README.md measures it
  against a full decode + Lanczos reference: at margin 2.5 the SSIM stays within 0.01 of
  img2dataset's own).
  Other formats, and JPEGs with no room for a reduced decode, take img2dataset's exact path, so
  their bytes equal img2dataset's. It keeps the pixels it encoded, so the pHash needs no second
  decode, and it takes no lock: OpenCV releases the GIL, threads decode concurrently.
- `Img2datasetResizer` (`--resizer img2dataset`) is img2dataset's own Resizer, for users who need
  its exact bytes. It silences libjpeg by swapping file descriptors 1 and 2, which is
  process-wide, so it runs under a per-process lock, as img2dataset itself resizes in one thread.
"""

from __future__ import annotations

import io
import math
import re
import threading
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image

from wit_pipeline.config import ResizeConfig

# We enforce the pixel limit ourselves (FetchConfig.max_pixels) and record it as a status; Pillow's
# warning for the same condition would only be noise on stderr.
warnings.simplefilter("ignore", Image.DecompressionBombWarning)

# Reduced JPEG decoding keeps at least this many times the resize target on each side (see the
# module docstring; bench/resize.py measures 1, 1.5, 2, 2.5 and 3: at 2, 1% of photos lose more
# than 0.01 SSIM against img2dataset; at 2.5, none).
DEFAULT_MARGIN = 2.5


class ImageError(Exception):
    def __init__(self, status: str, message: str):
        super().__init__(message)
        self.status = status


@dataclass
class ResizedImage:
    """An encoded, stored image; `pixels` (BGR or grey, as OpenCV holds them) when the resizer kept them."""

    data: bytes
    width: int
    height: int
    original_width: int
    original_height: int
    pixels: np.ndarray | None = None


@dataclass(frozen=True)
class ImageHeader:
    """What the header alone says: container format, size and Pillow's mode (L for grey JPEGs)."""

    format: str
    width: int
    height: int
    mode: str


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


def check_header(data: bytes, max_pixels: int) -> tuple[int, int, str]:
    """Read only the header: raise decode_error for undecodable data, decompression_bomb for huge images."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            mode = image.mode
    except Image.DecompressionBombError as err:
        # Pillow's own limit fired before ours could: report ours, the one the user sets.
        declared = re.search(r"\((\d+) pixels\)", str(err))
        pixels = int(declared.group(1)) if declared else None
        if pixels is not None and pixels <= max_pixels:  # allowed by ours, above Pillow's own hard stop
            hard_limit = 2 * (Image.MAX_IMAGE_PIXELS or 0)
            message = f"{pixels} pixels exceeds Pillow's hard limit of {hard_limit}, which caps --max-pixels"
            raise ImageError("decompression_bomb", message) from None
        raise ImageError("decompression_bomb", f"{pixels or 'more'} pixels exceeds --max-pixels {max_pixels}") from None
    except (OSError, ValueError, SyntaxError) as err:
        raise ImageError("decode_error", f"not a decodable image: {err}") from None
    if width * height > max_pixels:
        raise ImageError(
            "decompression_bomb", f"{width}x{height} = {width * height} pixels exceeds --max-pixels {max_pixels}"
        )
    return width, height, mode


def check_image(data: bytes, max_pixels: int) -> ImageHeader:
    """All checks that run before decoding: format, completeness, header, pixel count."""
    fmt = sniff_format(data)
    if fmt is None:
        raise ImageError("decode_error", f"unrecognised image format (first bytes {data[:8].hex()})")
    check_complete(data, fmt)
    width, height, mode = check_header(data, max_pixels)
    return ImageHeader(fmt, width, height, mode)


def make_resizer(config: ResizeConfig):
    """The resizer `config.resizer` names: `fast` (default) or `img2dataset`."""
    return Img2datasetResizer(config) if config.resizer == "img2dataset" else FastResizer(config)


# --- the fast resizer --------------------------------------------------------------------------


@dataclass(frozen=True)
class ResizePlan:
    """img2dataset's geometry for one image, worked out from its original size alone.

    `size` is the (width, height) the image is resized to (None: not resized), `downscale` picks
    the interpolation, then `crop` (x0, y0, x1, y1) or `pad` (top, bottom, left, right) in white.
    """

    size: tuple[int, int] | None
    downscale: bool
    crop: tuple[int, int, int, int] | None = None
    pad: tuple[int, int, int, int] | None = None


def plan_resize(width: int, height: int, config: ResizeConfig) -> ResizePlan:
    """The geometry img2dataset 1.47.0 applies (albumentations' SmallestMaxSize, LongestMaxSize,
    CenterCrop, PadIfNeeded), with their exact rounding, so the output size is the same."""
    mode, target = config.resize_mode, config.image_size
    if mode == "no":
        return ResizePlan(None, False)
    smallest = mode in ("keep_ratio", "center_crop")
    side = min(width, height) if smallest else max(width, height)
    downscale = side > target
    if config.resize_only_if_bigger and not downscale:
        return ResizePlan(None, False)
    scale = target / side
    new_width, new_height = max(1, round(width * scale)), max(1, round(height * scale))
    size = None if (new_width, new_height) == (width, height) else (new_width, new_height)
    if mode == "center_crop":
        x0, y0 = (new_width - target) // 2, (new_height - target) // 2
        return ResizePlan(size, downscale, crop=(x0, y0, x0 + target, y0 + target))
    if mode == "border":
        top, left = int(max(0, target - new_height) / 2.0), int(max(0, target - new_width) / 2.0)
        pad = (top, max(0, target - new_height) - top, left, max(0, target - new_width) - left)
        return ResizePlan(size, downscale, pad=pad if any(pad) else None)
    return ResizePlan(size, downscale)


def jpeg_scale(width: int, height: int, target: tuple[int, int], margin: float) -> int:
    """The largest libjpeg DCT scale denominator (8, 4, 2, else 1) whose decoded size keeps
    `margin` times the target on both sides (libjpeg rounds scaled sizes up)."""
    for denominator in (8, 4, 2):
        if (
            math.ceil(width / denominator) >= margin * target[0]
            and math.ceil(height / denominator) >= margin * target[1]
        ):
            return denominator
    return 1


class FastResizer:
    """Reduced-size JPEG decoding, one decode per image, img2dataset's geometry; no lock."""

    def __init__(self, config: ResizeConfig, margin: float = DEFAULT_MARGIN):
        import cv2  # heavy import: once per worker

        # As img2dataset: OpenCV's own thread pool would only compete with our download threads.
        cv2.setNumThreads(1)
        self._cv2 = cv2
        self.config = config
        self.margin = margin
        interpolations = {
            "nearest": cv2.INTER_NEAREST,
            "linear": cv2.INTER_LINEAR,
            "bilinear": cv2.INTER_LINEAR,
            "cubic": cv2.INTER_CUBIC,
            "bicubic": cv2.INTER_CUBIC,
            "area": cv2.INTER_AREA,
            "lanczos": cv2.INTER_LANCZOS4,
            "lanczos4": cv2.INTER_LANCZOS4,
        }
        self._upscale = interpolations[config.upscale_interpolation.lower()]
        self._downscale = interpolations[config.downscale_interpolation.lower()]
        quality_flag = {
            "jpg": cv2.IMWRITE_JPEG_QUALITY,
            "png": cv2.IMWRITE_PNG_COMPRESSION,
            "webp": cv2.IMWRITE_WEBP_QUALITY,
        }[config.encode_format]
        self._encode_params = [int(quality_flag), config.encode_quality]
        self._reduced = {
            (2, False): cv2.IMREAD_REDUCED_COLOR_2,
            (4, False): cv2.IMREAD_REDUCED_COLOR_4,
            (8, False): cv2.IMREAD_REDUCED_COLOR_8,
            (2, True): cv2.IMREAD_REDUCED_GRAYSCALE_2,
            (4, True): cv2.IMREAD_REDUCED_GRAYSCALE_4,
            (8, True): cv2.IMREAD_REDUCED_GRAYSCALE_8,
        }

    def __call__(self, data: bytes, header: ImageHeader | None = None) -> ResizedImage:
        header = header or check_image(data, max_pixels=2**63)
        width, height = header.width, header.height
        self._check_limits(width, height)
        plan = plan_resize(width, height, self.config)
        pixels = self.decode(data, header, plan)
        if plan.size is not None and (pixels.shape[1], pixels.shape[0]) != plan.size:
            interpolation = self._downscale if plan.downscale else self._upscale
            pixels = self._cv2.resize(pixels, plan.size, interpolation=interpolation)
        if plan.crop is not None:
            x0, y0, x1, y1 = plan.crop
            pixels = pixels[y0:y1, x0:x1]
        if plan.pad is not None:
            top, bottom, left, right = plan.pad
            pixels = self._cv2.copyMakeBorder(
                pixels, top, bottom, left, right, self._cv2.BORDER_CONSTANT, value=(255, 255, 255)
            )
        ok, encoded = self._cv2.imencode(f".{self.config.encode_format}", pixels, params=self._encode_params)
        if not ok:
            raise ImageError("resize_error", f"cannot encode a {pixels.shape} {pixels.dtype} image")
        return ResizedImage(encoded.tobytes(), pixels.shape[1], pixels.shape[0], width, height, pixels)

    def _check_limits(self, width: int, height: int) -> None:
        # img2dataset's checks and messages, in its order, on the original size.
        config = self.config
        if min(width, height) < config.min_image_size:
            raise ImageError("too_small", "image too small")
        if width * height > config.max_image_area:
            raise ImageError("too_large_area", "image area too large")
        if max(width, height) / max(1, min(width, height)) > config.max_aspect_ratio:
            raise ImageError("bad_aspect_ratio", "aspect ratio too large")

    def decode(self, data: bytes, header: ImageHeader, plan: ResizePlan) -> np.ndarray:
        """The image's pixels, decoded once: a JPEG being shrunk at the coarsest DCT scale that
        keeps the margin, anything else at full size exactly as img2dataset decodes it."""
        cv2 = self._cv2
        buffer = np.frombuffer(data, np.uint8)
        scale = 1
        if header.format == "jpeg" and plan.size is not None and plan.downscale:
            scale = jpeg_scale(header.width, header.height, plan.size, self.margin)
        if scale > 1:
            # Reduced modes would apply EXIF rotation; img2dataset's IMREAD_UNCHANGED does not.
            flags = self._reduced[(scale, header.mode == "L")] | cv2.IMREAD_IGNORE_ORIENTATION
            pixels = cv2.imdecode(buffer, flags)
        else:
            pixels = decode_unchanged(buffer)
        if pixels is None:
            raise ImageError("decode_error", "Image decoding error")
        return pixels


def decode_unchanged(buffer: np.ndarray) -> np.ndarray | None:
    """img2dataset's full decode: IMREAD_UNCHANGED, alpha matted on white with its exact arithmetic."""
    import cv2

    pixels = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
    if pixels is not None and pixels.ndim == 3 and pixels.shape[-1] == 4:
        alpha = pixels[:, :, 3, np.newaxis]
        matted = alpha / 255 * pixels[..., :3] + 255 - alpha
        pixels = np.rint(matted.clip(min=0, max=255)).astype(np.uint8)
    return pixels


# --- img2dataset's own resizer -----------------------------------------------------------------

# img2dataset's error strings, mapped to our statuses.
_RESIZER_ERRORS = {
    "image too small": "too_small",
    "image area too large": "too_large_area",
    "aspect ratio too large": "bad_aspect_ratio",
    "Image decoding error": "decode_error",
}


class Img2datasetResizer:
    """img2dataset's Resizer, made safe to share between threads (see the module docstring)."""

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

    def __call__(self, data: bytes, header: ImageHeader | None = None) -> ResizedImage:
        with self._lock:
            out, width, height, original_width, original_height, error = self._resizer(io.BytesIO(data))
        if error is not None:
            raise ImageError(_RESIZER_ERRORS.get(error, "resize_error"), error)
        return ResizedImage(out, width, height, original_width, original_height)
