"""Per-image cost and quality of the resizers: wit's fast path (at several margins) against
img2dataset's Resizer and the other decoders we considered, on real photos.

For each candidate: milliseconds per image on one core (decode + resize + encode, the best of
--repeat passes), SSIM (luma) against the high-quality reference (full decode + Pillow LANCZOS to
the same geometry; wit_pipeline/testing/image_quality.py), the SSIM deficit against img2dataset's own output on
the same image, and the pHash distance to img2dataset's output. Also the pHash path: hashing the
kept pixels against imagehash.phash of the stored file (speed; share identical; max bits apart).

    python bench/resize.py --images ../shared/data/coco-mini/val2017 --large 40
"""

from __future__ import annotations

import argparse
import io
import os
import pathlib
import statistics
import time

import cv2
import imagehash
import numpy as np
from PIL import Image

from wit_pipeline.config import ResizeConfig
from wit_pipeline.download.hashing import phash_pixels
from wit_pipeline.download.image import (
    FastResizer,
    Img2datasetResizer,
    ResizedImage,
    check_image,
    plan_resize,
)
from wit_pipeline.testing.image_quality import output_luma, reference_luma, ssim, upscaled_copy

REPO = pathlib.Path(__file__).resolve().parents[1]
# img2dataset, imported when its resizer first runs, would otherwise ask the package index for
# albumentations' latest version.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")


class PillowDraft:
    """Pillow's JPEG draft mode (DCT scaling to >= the requested size) + Pillow's area-like reduce."""

    def __init__(self, config: ResizeConfig, margin: float):
        self.config, self.margin = config, margin

    def __call__(self, data: bytes, header=None) -> ResizedImage:
        image = Image.open(io.BytesIO(data))
        width, height = image.size
        plan = plan_resize(width, height, self.config)
        if plan.size:
            image.draft("RGB", (int(plan.size[0] * self.margin), int(plan.size[1] * self.margin)))
        pixels = np.asarray(image.convert("RGB"))[:, :, ::-1]
        return _finish(pixels, plan, width, height, self.config)


class SimpleJpeg:
    """simplejpeg (libjpeg-turbo) decode with min_width/min_height = margin x target, then area resize."""

    def __init__(self, config: ResizeConfig, margin: float):
        import simplejpeg

        self.simplejpeg, self.config, self.margin = simplejpeg, config, margin

    def __call__(self, data: bytes, header=None) -> ResizedImage:
        height, width, _, _ = self.simplejpeg.decode_jpeg_header(data)
        plan = plan_resize(width, height, self.config)
        target = plan.size or (width, height)
        pixels = self.simplejpeg.decode_jpeg(
            data, colorspace="BGR", min_width=int(target[0] * self.margin), min_height=int(target[1] * self.margin)
        )
        return _finish(pixels, plan, width, height, self.config)


def _finish(pixels, plan, width, height, config) -> ResizedImage:
    if plan.size and (pixels.shape[1], pixels.shape[0]) != plan.size:
        pixels = cv2.resize(pixels, plan.size, interpolation=cv2.INTER_AREA if plan.downscale else cv2.INTER_LANCZOS4)
    if plan.crop:
        x0, y0, x1, y1 = plan.crop
        pixels = pixels[y0:y1, x0:x1]
    if plan.pad:
        pixels = cv2.copyMakeBorder(pixels, *plan.pad, cv2.BORDER_CONSTANT, value=(255, 255, 255))
    data = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, config.encode_quality])[1].tobytes()
    return ResizedImage(data, pixels.shape[1], pixels.shape[0], width, height, pixels)


def load_photos(folder: str, large: int) -> list[tuple[str, bytes]]:
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith((".jpg", ".jpeg")))
    photos = [(n, pathlib.Path(folder, n).read_bytes()) for n in names]
    # Upscaled copies, 1,000 to 2,000 px on the longer side: the large-photo case of the web.
    big = [
        (f"{n}@{1000 + 1000 * i // max(1, large - 1)}", upscaled_copy(d, 1000 + 1000 * i // max(1, large - 1)))
        for i, (n, d) in enumerate(photos[:large])
    ]
    return photos + big


def per_image_ms(resizer, photos, repeat: int) -> float:
    headers = [check_image(data, 2**40) for _, data in photos]
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for (_, data), header in zip(photos, headers, strict=True):
            resizer(data, header)
        best = min(best, time.perf_counter() - started)
    return best / len(photos) * 1000


def hamming(a: str, b: str) -> int:
    return bin(int(a, 16) ^ int(b, 16)).count("1")


def quality(resizer, baseline_outputs, photos, config, references):
    ssims, deficits, bits = [], [], []
    for (_, data), base, reference in zip(photos, baseline_outputs, references, strict=True):
        out = resizer(data)
        assert (out.width, out.height) == (base.width, base.height)
        score = ssim(output_luma(out.data, out.original_width, out.original_height, config), reference)
        base_score = ssim(output_luma(base.data, base.original_width, base.original_height, config), reference)
        ssims.append(score)
        deficits.append(base_score - score)
        bits.append(
            hamming(
                phash_pixels(cv2.imdecode(np.frombuffer(out.data, np.uint8), cv2.IMREAD_UNCHANGED)),
                phash_pixels(cv2.imdecode(np.frombuffer(base.data, np.uint8), cv2.IMREAD_UNCHANGED)),
            )
        )
    return ssims, deficits, bits


def report_phash(photos, config, repeat):
    outputs = [FastResizer(config)(data) for _, data in photos]
    files = [o.data for o in outputs]
    ours = [phash_pixels(o.pixels) for o in outputs]
    theirs = [str(imagehash.phash(Image.open(io.BytesIO(d)))) for d in files]
    distances = [hamming(a, b) for a, b in zip(ours, theirs, strict=True)]

    # Interleaved, best of `repeat` each: the machine may be shared.
    ours_s = theirs_s = float("inf")
    for _ in range(repeat + 1):  # one more: the first pass imports scipy
        started = time.perf_counter()
        [phash_pixels(o.pixels) for o in outputs]
        ours_s = min(ours_s, time.perf_counter() - started)
        started = time.perf_counter()
        [imagehash.phash(Image.open(io.BytesIO(d))) for d in files]
        theirs_s = min(theirs_s, time.perf_counter() - started)
    print(
        f"\npHash of the kept pixels: {ours_s / len(files) * 1000:.3f} ms/image; imagehash.phash of the stored "
        f"file: {theirs_s / len(files) * 1000:.3f} ms/image; ratio {theirs_s / ours_s:.2f}x"
    )
    print(
        f"  identical to imagehash.phash(stored file): {sum(d == 0 for d in distances)}/{len(distances)}; "
        f"max {max(distances)} bits apart"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", default=str(REPO / "tests" / "data" / "coco" / "images"))
    parser.add_argument("--large", type=int, default=40, help="photos upscaled to 1,000-2,000 px (default 40)")
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--modes", default="border,keep_ratio,center_crop,keep_ratio_largest,no")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    photos = load_photos(args.images, args.large)
    small, large = photos[: len(photos) - args.large], photos[len(photos) - args.large :]
    print(
        f"{len(small)} photos of {args.images} and {len(large)} upscaled to 1,000-2,000 px; "
        f"target {args.image_size} px; one core; ms/image best of {args.repeat}"
    )
    for mode in args.modes.split(","):
        config = ResizeConfig(image_size=args.image_size, resize_mode=mode)
        candidates = {"img2dataset Resizer (full decode, area)": Img2datasetResizer(config)}
        for margin in (1.0, 1.5, 2.0, 2.5, 3.0):
            candidates[f"wit fast: cv2 IMREAD_REDUCED, margin {margin:g}"] = FastResizer(config, margin)
        candidates["Pillow draft, margin 2"] = PillowDraft(config, 2.0)
        try:
            candidates["simplejpeg min size, margin 2"] = SimpleJpeg(config, 2.0)
        except ImportError:
            print("  (simplejpeg not installed: skipped)")
        print(f"\nresize_mode={mode}")
        print(
            f"  {'candidate':44s} {'ms 640px':>9s} {'ms large':>9s} {'SSIM med':>9s} {'worst':>6s} "
            f"{'deficit med':>11s} {'p99':>6s} {'>0.01':>6s} {'pHash<=2':>9s}"
        )
        baseline = [candidates["img2dataset Resizer (full decode, area)"](d) for _, d in photos]
        references = [reference_luma(d, config) for _, d in photos]
        for name, resizer in candidates.items():
            ms_small = per_image_ms(resizer, small, args.repeat)
            ms_large = per_image_ms(resizer, large, args.repeat) if large else float("nan")
            ssims, deficits, bits = quality(resizer, baseline, photos, config, references)
            p99 = sorted(deficits)[int(0.99 * (len(deficits) - 1))]
            print(
                f"  {name:44s} {ms_small:9.2f} {ms_large:9.2f} {statistics.median(ssims):9.4f} {min(ssims):6.3f} "
                f"{statistics.median(deficits):11.4f} {p99:6.3f} {sum(d > 0.01 for d in deficits):6d} "
                f"{sum(b <= 2 for b in bits) / len(bits):9.1%}"
            )
    report_phash(photos, ResizeConfig(image_size=args.image_size), args.repeat)


if __name__ == "__main__":
    main()
