"""Drop captions that are only a file name (`photo-12.jpg`) or a camera's default name (`DSC_0042`).

CLIP's YFCC rule: camera file names are not natural language.
"""

from __future__ import annotations

import re

from wit_pipeline.config import FilterConfig

_EXTENSIONS = (
    "jpe?g|jfif|png|gif|webp|bmp|tiff?|heic|heif|avif|svg|ico|raw|cr2|nef|arw|dng"
    "|pdf|docx?|xlsx?|pptx?|zip|mp4|mov|avi|mp3|wav|html?|php|aspx?"
)
# One token (no spaces) ending in a known extension: `IMG_2041.JPG`, `banner-top_2x.png`.
_FILE_NAME = re.compile(rf"[^\s/\\]+\.(?:{_EXTENSIONS})", re.IGNORECASE)
# Cameras' and phones' default names, with or without an extension: `DSC01234`, `IMG_20190704_1201`.
_CAMERA_NAME = re.compile(
    rf"(?:IMG|DSC|DSCN|DSCF|DSC_|PICT|PIC|GOPR|GH01|MVI|SAM|DJI|P|PXL|VID|WP)[_-]?\d[\d_-]*"
    rf"(?:\.(?:{_EXTENSIONS}))?",
    re.IGNORECASE,
)


def filename_only(record: dict, config: FilterConfig) -> str | None:
    caption = record["caption"].strip()
    if _FILE_NAME.fullmatch(caption) or _CAMERA_NAME.fullmatch(caption):
        return "filename_only"
    return None
