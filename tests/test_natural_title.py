"""CLIP's natural-language rule for YFCC titles: its precision on the hand-labelled sample."""

from __future__ import annotations

import pytest
from helpers.paths import TEST_DATA

from wit_pipeline.filters.natural_title import natural_title, why_not_natural

LABELS = TEST_DATA / "yfcc" / "natural_title_labels.tsv"


def labelled(part: str) -> list[tuple[bool, str]]:
    rows = []
    for line in LABELS.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            continue
        label, which, text = line.split("\t", 2)
        if which == part:
            rows.append((label == "1", text))
    return rows


@pytest.mark.parametrize("part, size", [("dev", 80), ("heldout", 24)])
def test_precision_and_recall_on_the_hand_labelled_sample(part, size):
    rows = labelled(part)
    assert len(rows) == size
    kept = [is_natural for is_natural, text in rows if why_not_natural(text) is None]
    true_positives = sum(kept)
    precision = true_positives / len(kept)
    recall = true_positives / sum(is_natural for is_natural, _ in rows)
    # The figures quoted in natural_title's docstring.
    assert precision == 1.0
    assert recall == 1.0


@pytest.mark.parametrize(
    "text, reason",
    [
        ("IMG_1234", "camera_file_name"),
        ("DSC01234.JPG", "camera_file_name"),
        ("P1010001", "camera_file_name"),
        ("Picture 023", "camera_file_name"),
        ("2008-06-12 14:33:01", "date_or_digits"),
        ("0012345", "date_or_digits"),
        ("", "empty"),
        ("#sunset #beach", "tags_only"),
        ("sunset, beach, ocean, california", "tags_only"),
        ("Sunset", "too_few_words"),
        ("Copy of IMG_2231", "too_few_words"),
        ("Golden Gate Bridge at sunset", None),
    ],
)
def test_reasons(text, reason):
    assert why_not_natural(text) == reason


def test_filter_signature_reads_the_caption():
    assert natural_title({"caption": "IMG_1234"}) == "not_natural_language"
    assert natural_title({"caption": "My dog playing in the snow"}) is None
    assert natural_title({"caption": None}) == "not_natural_language"


def test_registered_filter_applies_to_yfcc_captions_only():
    from wit_pipeline.config import FilterConfig
    from wit_pipeline.filters import FILTERS, apply_filters

    assert FILTERS["natural_title"] is natural_title
    config = FilterConfig(min_words=0, min_chars=0)
    assert apply_filters({"caption": "Copy of IMG_2231 edit", "source": "yfcc"}, config) == "not_natural_language"
    assert apply_filters({"caption": "Copy of IMG_2231 edit", "source": "urls"}, config) is None
    assert apply_filters({"caption": "My dog on the beach at sunset", "source": "yfcc"}, config) is None
