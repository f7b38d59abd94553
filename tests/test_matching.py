import json

import pytest
from helpers.text import ENTRIES, coco_captions, laion_captions

from wit_pipeline.text.matching import Matcher, load_matcher, naive_match, spacing


def test_spacing_is_metaclips():
    assert spacing("A dog, on the beach.") == " A dog ,  on the beach .  "
    assert spacing("tab\there\nnew") == " tab here new "


def test_hand_checked_matches():
    entries = ["dog", "hot dog", "beach", "U.S.", "New York", "e-mail", "on", "Dog"]
    matcher = Matcher(entries)
    assert matcher.match("A dog on the beach.") == [0, 2, 6]
    assert matcher.match("Hot dog stand in New York!") == [0, 4]  # 'hot dog' is lowercase
    assert matcher.match("dogs, doghouse, hotdog") == []  # whole words only
    assert matcher.match("U.S. flag") == []  # '.' is spaced apart, as in MetaCLIP
    assert matcher.match("send an e-mail:") == [5]
    assert Matcher(entries, case_sensitive=False).match("Hot dog stand") == [0, 1, 7]


def test_duplicate_entries_both_match():
    assert Matcher(["cat", "cat"]).match("a cat") == [0, 1] == naive_match("a cat", ["cat", "cat"])


@pytest.mark.parametrize("case_sensitive", [True, False])
def test_automaton_equals_naive_loop_on_real_captions(case_sensitive):
    entries = json.loads(ENTRIES.read_text())
    captions = laion_captions() + coco_captions()
    assert len(captions) >= 3000 and len(entries) >= 5000
    matcher = Matcher(entries, case_sensitive)
    matched = 0
    for caption in captions:
        expected = naive_match(caption, entries, case_sensitive)
        assert matcher.match(caption) == expected, caption
        matched += bool(expected)
    assert matched > len(captions) * 0.7  # the comparison is not vacuous


def test_matcher_is_cached_per_process():
    assert load_matcher(str(ENTRIES)) is load_matcher(str(ENTRIES))
    assert load_matcher(str(ENTRIES), False) is not load_matcher(str(ENTRIES))
