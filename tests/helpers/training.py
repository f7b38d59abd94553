"""Real image-caption pairs for the trainer's tests."""

from __future__ import annotations

import json

from helpers.paths import TEST_DATA


def coco_pairs():
    """The 24 real COCO images of tests/data with their first real caption each."""
    annotations = json.loads((TEST_DATA / "coco" / "captions_train2017.json").read_text())
    files = {image["id"]: image["file_name"] for image in annotations["images"]}
    pairs, seen = [], set()
    for annotation in annotations["annotations"]:
        path = TEST_DATA / "coco" / "images" / files[annotation["image_id"]]
        if path.exists() and annotation["image_id"] not in seen:
            seen.add(annotation["image_id"])
            pairs.append((path.read_bytes(), annotation["caption"], {"image_id": annotation["image_id"]}))
    return pairs
