import html

from wit_pipeline import schema
from wit_pipeline.text.normalise import normalise_caption, normalise_record


def test_html_entities_are_unescaped():
    # Real LAION alt texts (rows 95 and 86 of tests/data/text/laion_3000.parquet).
    assert normalise_caption("&quot;Keep Calm&quot; - Blue Canvas") == '"Keep Calm" - Blue Canvas'
    assert normalise_caption("muntjac (&lt;i&gt;Truong Son&lt;/i&gt;) / &copy;: WWF-UK") == (
        "muntjac (<i>Truong Son</i>) / ©: WWF-UK"
    )


def test_mojibake_is_repaired_and_text_is_nfc():
    assert normalise_caption("cafÃ© au lait") == "café au lait"
    decomposed = "Cafe\u0301 Procope"
    assert normalise_caption(decomposed) == "Caf\u00e9 Procope"


def test_control_characters_and_whitespace():
    assert normalise_caption("  a dog\ton the\n\nbeach \r\n") == "a dog on the beach"
    assert normalise_caption("infor\u00admation\u200b") == "information"  # soft hyphen, zero-width space
    assert normalise_caption("x\x00\x07y") == "x y"


def test_record_keeps_original_only_when_changed_and_rehashes_uid():
    record = {
        "uid": schema.uid("http://a/b.jpg", "Tom &amp; Jerry"),
        "url": "http://a/b.jpg",
        "caption": "Tom &amp; Jerry",
    }
    normalise_record(record)
    assert record["caption"] == "Tom & Jerry"
    assert record["caption_original"] == "Tom &amp; Jerry"
    assert record["uid"] == schema.uid("http://a/b.jpg", "Tom & Jerry")

    clean = {"uid": "x", "url": "u", "caption": "A man riding a horse."}
    normalise_record(clean)
    assert "caption_original" not in clean and clean["uid"] == "x"


def _reference(text):
    """The definition, without the fast paths: unescape, ftfy always, per-character categories."""
    import unicodedata

    import ftfy

    text = ftfy.fix_text(html.unescape(text), unescape_html=False, remove_control_chars=False, normalization="NFC")
    replace = {"Cc": " ", "Cf": ""}
    text = "".join(replace.get(unicodedata.category(ch), ch) for ch in text)
    return " ".join(text.split())


def test_fast_paths_equal_the_definition_on_real_captions():
    from helpers.text import coco_captions, laion_captions

    tricky = ["a\u200bb\u00adc", "x\x85y", "caf\u00c3\u00a9 &amp; more", "\x1fhello\x7f", "Ａｂｃ full width"]
    for caption in laion_captions() + coco_captions() + tricky:
        assert normalise_caption(caption) == _reference(caption), caption
