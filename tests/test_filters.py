import pytest

from wit_pipeline import schema
from wit_pipeline.config import FilterConfig
from wit_pipeline.filters import FILTERS, apply_filters
from wit_pipeline.filters.blocklist import load_blocklist

DEFAULT = FilterConfig()

# (filter name, caption, expected reason) - kept and dropped cases for every filter; the captions
# are real LAION or COCO text unless they test an edge.
CASES = [
    ("url_only", "http://www.mytowntutors.com/2013/01/119-connected-educators-to-follow-in-2013/", "url_only"),
    ("url_only", "www.example.org/cats", "url_only"),
    ("url_only", "Visit http://nymetroparents.com for details", None),
    ("filename_only", "shaker-heritage-barn-wedding-day007.jpg", "filename_only"),
    ("filename_only", "VANESSA-BELETIC-GREY-SUEDE-FETISH-NECKLACE-LOS-ANGELES.JPG", "filename_only"),
    ("filename_only", "DSC_0042", "filename_only"),
    ("filename_only", "IMG_20190704_120159.jpg", "filename_only"),
    ("filename_only", "Tavern Brawl by velinov", None),
    ("filename_only", "Coffee Table with Tray Top Color: Gray", None),
    ("digits_only", "2019", "digits_only"),
    ("digits_only", "12/05/2018 - 14:30", "digits_only"),
    ("digits_only", "Peugeot 108", None),
    ("digits_only", "...", None),
    ("min_chars", "A cat", "too_short"),  # 5 characters: DataComp keeps > 5
    ("min_chars", "A cats", None),  # 6 characters
    ("min_words", "Hogsmeade Station", "too_few_words"),
    ("min_words", "Inherent Vice", "too_few_words"),
    ("min_words", "A man riding a horse.", None),
    ("min_words", "two big words", None),  # 3 words: DataComp keeps > 2
    ("max_chars", "x " * 501, "too_long"),
    ("max_chars", "x " * 500, None),
]


@pytest.mark.parametrize("name, caption, expected", CASES)
def test_each_filter_keeps_and_drops(name, caption, expected):
    assert FILTERS[name]({"caption": caption}, DEFAULT) == expected


def test_blocklist_is_whole_word_and_case_insensitive():
    config = FilterConfig(blocklist=("ass", "bad phrase", "c++"))
    drop = lambda caption: FILTERS["blocklist"]({"caption": caption}, config)  # noqa: E731
    assert drop("Kiss my ASS goodbye") == "blocklisted"
    assert drop("a Bad Phrase here") == "blocklisted"
    assert drop("learn C++ today") == "blocklisted"
    assert drop("a glass of water in Assam") is None
    assert drop("a bad word phrase") is None


def test_blocklist_is_empty_by_default():
    assert FILTERS["blocklist"]({"caption": "anything at all"}, DEFAULT) is None


def test_blocklist_file(tmp_path):
    path = tmp_path / "block.txt"
    path.write_text("# words we never want\nfoo\n\n  Bar Baz  \n")
    assert load_blocklist(str(path)) == ("foo", "Bar Baz")


def test_most_specific_reason_wins():
    assert apply_filters({"caption": "https://example.com/a.jpg"}, DEFAULT) == "url_only"
    assert apply_filters({"caption": "wrapping_paper_6up.jpg"}, DEFAULT) == "filename_only"
    assert apply_filters({"caption": "1938"}, DEFAULT) == "digits_only"
    assert apply_filters({"caption": "A black Honda motorcycle parked in front of a garage."}, DEFAULT) is None


def test_every_filter_reason_is_a_registered_status():
    probes = [case[1] for case in CASES] + ["Kiss my ass"]
    config = FilterConfig(blocklist=("ass",))
    reasons = {f({"caption": c}, config) for f in FILTERS.values() for c in probes} - {None}
    assert reasons == {
        "url_only",
        "filename_only",
        "digits_only",
        "too_short",
        "too_few_words",
        "too_long",
        "blocklisted",
    }
    for reason in reasons:
        assert schema.check_status(reason) == reason
