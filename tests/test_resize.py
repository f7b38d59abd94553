"""The two resizers against img2dataset's own, on real COCO photos and upscaled copies of them.

`--resizer img2dataset` must give img2dataset's exact bytes. The fast path must give the same
output size in every resize mode and a quality no worse than img2dataset's: SSIM (luma) against a
full-decode + LANCZOS reference at most 0.01 below img2dataset's own on >= 99% of images, median
at most 0.005 below, and a pHash within 2 bits of img2dataset's output's on >= 99%.
"""

from __future__ import annotations

import concurrent.futures
import io
import statistics

import cv2
import numpy as np
import pytest
from helpers.paths import COCO_IMAGES
from img2dataset.resizer import Resizer

from wit_pipeline.config import ResizeConfig
from wit_pipeline.download.hashing import phash_hex, phash_pixels
from wit_pipeline.download.image import (
    DEFAULT_MARGIN,
    FastResizer,
    ImageError,
    Img2datasetResizer,
    check_image,
    jpeg_scale,
    make_resizer,
    plan_resize,
)
from wit_pipeline.testing.image_quality import output_luma, reference_luma, ssim, upscaled_copy

MODES = ["no", "border", "keep_ratio", "keep_ratio_largest", "center_crop"]


def _photos() -> list[bytes]:
    return [path.read_bytes() for path in sorted(COCO_IMAGES.glob("*.jpg"))]


PHOTOS = _photos()
# Large photos, as the web has them: every COCO test photo upscaled to 1,000-2,000 px, and two
# of them in grey (a one-channel JPEG decodes to one channel, as in img2dataset).
LARGE = [upscaled_copy(data, 1000 + 1000 * i // (len(PHOTOS) - 1)) for i, data in enumerate(PHOTOS)]
GREY = [
    cv2.imencode(".jpg", cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE))[1].tobytes()
    for data in LARGE[-2:]
]


def _img2dataset(config: ResizeConfig, data: bytes):
    resizer = Resizer(
        image_size=config.image_size,
        resize_mode=config.resize_mode,
        resize_only_if_bigger=config.resize_only_if_bigger,
        encode_quality=config.encode_quality,
        encode_format=config.encode_format,
        min_image_size=config.min_image_size,
        max_image_area=config.max_image_area,
        max_aspect_ratio=config.max_aspect_ratio,
    )
    return resizer(io.BytesIO(data))


def _hamming(a: str, b: str) -> int:
    return bin(int(a, 16) ^ int(b, 16)).count("1")


@pytest.mark.parametrize("mode", MODES)
def test_img2dataset_resizer_gives_img2dataset_bytes(mode):
    config = ResizeConfig(resize_mode=mode, resizer="img2dataset")
    resizer = make_resizer(config)
    assert isinstance(resizer, Img2datasetResizer)
    for data in PHOTOS[:6] + LARGE[-2:]:
        out, width, height, original_width, original_height, _ = _img2dataset(config, data)
        ours = resizer(data)
        assert (ours.data, ours.width, ours.height) == (out, width, height)
        assert (ours.original_width, ours.original_height) == (original_width, original_height)


@pytest.mark.parametrize("mode", MODES)
def test_fast_path_is_img2dataset_byte_for_byte_when_no_reduced_decode_applies(mode):
    # 640 px COCO photos to 256 px leave no 2.5x margin at half scale: the fast path then decodes at
    # full size, so its geometry (sizes, rounding, crop offsets, padding) must reproduce
    # img2dataset's exactly, down to the encoded bytes.
    config = ResizeConfig(resize_mode=mode)
    resizer = FastResizer(config)
    for data in PHOTOS:
        header = check_image(data, 2**40)
        plan = plan_resize(header.width, header.height, config)
        assert plan.size is None or jpeg_scale(header.width, header.height, plan.size, DEFAULT_MARGIN) == 1
        assert resizer(data, header).data == _img2dataset(config, data)[0]


# Mode "no" keeps every photo at full size (up to 2,000 px): its SSIM sweep is the slow one.
@pytest.mark.parametrize("mode", [pytest.param("no", marks=pytest.mark.slow), *MODES[1:]])
def test_fast_path_quality_is_img2datasets_in_every_mode(mode):
    config = ResizeConfig(resize_mode=mode)
    resizer = make_resizer(config)
    assert isinstance(resizer, FastResizer)  # the default
    deficits, phash_bits, reduced = [], [], 0
    for data in PHOTOS + LARGE + GREY:
        out, width, height, original_width, original_height, error = _img2dataset(config, data)
        ours = resizer(data)
        assert error is None
        assert (ours.width, ours.height, ours.original_width, ours.original_height) == (
            width,
            height,
            original_width,
            original_height,
        )
        assert ours.pixels.shape == cv2.imdecode(np.frombuffer(out, np.uint8), cv2.IMREAD_UNCHANGED).shape
        reference = reference_luma(data, config)
        theirs = ssim(output_luma(out, original_width, original_height, config), reference)
        deficits.append(theirs - ssim(output_luma(ours.data, original_width, original_height, config), reference))
        phash_bits.append(_hamming(phash_hex(ours.data), phash_hex(out)))
        plan = plan_resize(original_width, original_height, config)
        reduced += (
            plan.size is not None
            and plan.downscale
            and jpeg_scale(original_width, original_height, plan.size, DEFAULT_MARGIN) > 1
        )
    count = len(deficits)
    assert sum(d <= 0.01 for d in deficits) >= 0.99 * count, sorted(deficits)[-5:]
    assert statistics.median(deficits) <= 0.005
    assert sum(b <= 2 for b in phash_bits) >= 0.99 * count, phash_bits
    # The test is about reduced decoding: a good share of the large photos must actually take it.
    assert reduced >= (len(LARGE) // 4 if mode != "no" else 0)


@pytest.mark.parametrize(
    "changes, status",
    [
        ({"min_image_size": 500}, "too_small"),
        ({"max_image_area": 300_000}, "too_large_area"),
        ({"max_aspect_ratio": 1.2}, "bad_aspect_ratio"),
    ],
)
def test_limits_reject_as_img2dataset_does(changes, status):
    config = ResizeConfig(**changes)
    for data in PHOTOS[:8]:
        error = _img2dataset(config, data)[5]
        if error is None:
            assert FastResizer(config)(data).data
        else:
            with pytest.raises(ImageError) as caught:
                FastResizer(config)(data)
            assert caught.value.status == status


@pytest.mark.parametrize("mode", ["border", "keep_ratio", "center_crop"])
def test_resize_only_if_bigger_keeps_small_images_as_img2dataset_does(mode):
    config = ResizeConfig(resize_mode=mode, image_size=1200, resize_only_if_bigger=True)
    for data in PHOTOS[:4] + LARGE[-4:]:
        out, width, height, *_ = _img2dataset(config, data)
        ours = FastResizer(config)(data)
        assert (ours.width, ours.height) == (width, height)


def test_png_with_alpha_is_matted_on_white_exactly_as_img2dataset():
    pixels = cv2.imdecode(np.frombuffer(PHOTOS[0], np.uint8), cv2.IMREAD_COLOR)
    alpha = np.tile(np.linspace(0, 255, pixels.shape[1], dtype=np.uint8), (pixels.shape[0], 1))
    png = cv2.imencode(".png", np.dstack([pixels, alpha]))[1].tobytes()
    for mode in MODES:
        config = ResizeConfig(resize_mode=mode)
        assert FastResizer(config)(png).data == _img2dataset(config, png)[0]


def test_threads_resize_concurrently_with_the_same_output():
    # No lock: many threads in one resizer at once give what one thread gives.
    resizer = FastResizer(ResizeConfig())
    images = LARGE + PHOTOS
    alone = [resizer(data).data for data in images]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        assert list(pool.map(lambda data: resizer(data).data, images)) == alone


def test_phash_of_kept_pixels_is_the_stored_images():
    # The pHash comes from the pixels the resizer encoded; the written file, decoded, gives the
    # same hash or one within 2 bits (the encoder's loss).
    resizer = FastResizer(ResizeConfig())
    bits = [_hamming(phash_pixels(out.pixels), phash_hex(out.data)) for out in map(resizer, PHOTOS + LARGE)]
    assert max(bits) <= 2
    assert sum(b == 0 for b in bits) >= 0.9 * len(bits)


def test_phash_pixels_is_imagehashs_dct_and_median_on_the_area_reduced_image():
    # The DCT step (cv2.dct, rescaled) splits the same 64 coefficients as imagehash's scipy DCT.
    import cv2
    import imagehash
    import scipy.fftpack

    resizer = FastResizer(ResizeConfig(resize_mode="center_crop"))  # a crop: pixels not contiguous
    for data in PHOTOS + LARGE[-3:] + GREY:
        pixels = resizer(data).pixels
        grey = cv2.cvtColor(pixels, cv2.COLOR_BGR2GRAY) if pixels.ndim == 3 else pixels
        small = cv2.resize(grey, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float64)
        dct = scipy.fftpack.dct(scipy.fftpack.dct(small, axis=0), axis=1)[:8, :8]
        assert phash_pixels(pixels) == str(imagehash.ImageHash(dct > np.median(dct)))


def test_phash_pixels_agrees_with_imagehash_phash_on_most_photos():
    # Only the 32 x 32 reduction differs (area average, not Lanczos): most hashes are identical,
    # none is far (bench/README.md reports the figures on the COCO set).
    import imagehash
    from PIL import Image

    bits = []
    for data in PHOTOS + LARGE + GREY:
        pixels = FastResizer(ResizeConfig())(data).pixels
        rgb = pixels[:, :, ::-1] if pixels.ndim == 3 else pixels
        bits.append(_hamming(phash_pixels(pixels), str(imagehash.phash(Image.fromarray(np.ascontiguousarray(rgb))))))
    assert sum(b == 0 for b in bits) >= 0.6 * len(bits), bits
    assert max(bits) <= 6, bits
