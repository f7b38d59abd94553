"""Image quality measures shared by the resizer tests and bench/resize.py.

The reference for a resized image is the high-quality one the issue names: a full Pillow decode,
resized with Pillow's antialiased LANCZOS to the same geometry (img2dataset's size, crop and
padding). SSIM is computed on luma, over the image content (padding, identical in every output,
is left out so it cannot flatter a score).
"""

from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image
from skimage.metrics import structural_similarity

from wit_pipeline.config import ResizeConfig
from wit_pipeline.download.image import plan_resize


def upscaled_copy(data: bytes, longer_side: int, quality: int = 90) -> bytes:
    """A real photo made large (1,000-2,000 px), as the large-image case of the web."""
    pixels = _decode(data, cv2.IMREAD_COLOR)
    scale = longer_side / max(pixels.shape[:2])
    size = (round(pixels.shape[1] * scale), round(pixels.shape[0] * scale))
    return cv2.imencode(
        ".jpg", cv2.resize(pixels, size, interpolation=cv2.INTER_LANCZOS4), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )[1].tobytes()


def content_box(width: int, height: int, config: ResizeConfig) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of the image content inside img2dataset's output (the padding left out)."""
    plan = plan_resize(width, height, config)
    out_w, out_h = plan.size or (width, height)
    if plan.crop is not None:
        return 0, 0, plan.crop[2] - plan.crop[0], plan.crop[3] - plan.crop[1]
    if plan.pad is not None:
        top, _, left, _ = plan.pad
        return left, top, left + out_w, top + out_h
    return 0, 0, out_w, out_h


def reference_luma(data: bytes, config: ResizeConfig) -> np.ndarray:
    """Luma of the high-quality reference: full decode, Pillow LANCZOS to the planned size, crop."""
    with Image.open(io.BytesIO(data)) as opened:
        image = opened.convert("RGB")
    plan = plan_resize(image.width, image.height, config)
    if plan.size is not None:
        image = image.resize(plan.size, Image.Resampling.LANCZOS)
    if plan.crop is not None:
        image = image.crop(plan.crop)
    return luma(np.asarray(image)[:, :, ::-1])


def luma(pixels: np.ndarray) -> np.ndarray:
    """BT.601 luma of a BGR (or grey) image, as float64."""
    if pixels.ndim == 2:
        return pixels.astype(np.float64)
    b, g, r = (pixels[:, :, i].astype(np.float64) for i in range(3))
    return 0.299 * r + 0.587 * g + 0.114 * b


def output_luma(encoded: bytes, width: int, height: int, config: ResizeConfig) -> np.ndarray:
    """Luma of a resizer's stored output, its padding cut off."""
    pixels = _decode(encoded, cv2.IMREAD_UNCHANGED)
    x0, y0, x1, y1 = content_box(width, height, config)
    return luma(pixels[y0:y1, x0:x1])


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two luma images on the 0-255 scale (Gaussian window, as Wang et al.)."""
    return float(
        structural_similarity(a, b, data_range=255.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    )


def _decode(data: bytes, flags: int) -> np.ndarray:
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if pixels is None:
        raise ValueError("not a decodable image")
    return pixels
