import json

import pytest
from helpers.paths import TEST_DATA

from wit_pipeline import cli
from wit_pipeline.text import metadata

WORDNET = TEST_DATA / "text" / "wordnet"  # real WordNet 3.0 lines (Debian wordnet-base)


def test_wordnet_lemmas_from_real_lines():
    lemmas = metadata.wordnet_lemmas(str(WORDNET))
    assert lemmas[:15] == [
        "dog",
        "domestic dog",
        "Canis familiaris",
        "frank",
        "frankfurter",
        "hotdog",
        "hot dog",
        "wiener",
        "wienerwurst",
        "weenie",  # 'dog' again: deduplicated
        "New York",
        "New York State",
        "Empire State",
        "NY",
        "scat",  # data.verb comes before data.adj
    ]
    assert "run away" in lemmas and "take to the woods" in lemmas
    assert lemmas[-4:] == ["abounding", "galore", "handy", "ready to hand"]  # (ip), (p) markers gone


def test_counts_unigrams_and_pmi_bigrams(tmp_path):
    unigrams = tmp_path / "unigrams.txt"
    unigrams.write_text("a;10\nb\t10\nc;80\nrare;99\n;5\n")
    bigrams = tmp_path / "bigrams.txt"
    bigrams.write_text("a b\t5\na c\t5\n")
    counts = metadata.read_counts(str(unigrams))
    assert counts == {"a": 10, "b": 10, "c": 80, "rare": 99}
    assert metadata.frequent_unigrams(counts, 10) == ["rare", "c", "a", "b"]
    # P(a b) = 5/10; P(a) P(b) = 0.05 * 0.05 (total 199): ratio 200 >= 30. P(a c): 0.5 / (0.05 * 0.40) = 25 < 30.
    assert metadata.pmi_bigrams(metadata.read_counts(str(bigrams)), counts, 30) == ["a b"]
    assert metadata.pmi_bigrams(metadata.read_counts(str(bigrams)), counts, 20) == ["a b", "a c"]


def test_bad_count_line_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("a;1\nno count here\n")
    with pytest.raises(ValueError, match="bad.txt:2"):
        metadata.read_counts(str(bad))


def test_merge_dedups_across_parts_and_caps():
    entries, added = metadata.merge({"wordnet": ["dog", "cat"], "unigrams": ["cat", "the", "a"]}, 3)
    assert entries == ["dog", "cat", "the"] and added == {"wordnet": 2, "unigrams": 1}


def test_cli_build(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli, "COMMANDS", ["wit_pipeline.commands.metadata"])
    titles = tmp_path / "titles.txt"
    titles.write_text("Hot dog\nThe Starry Night\n\ndog\n")
    out = tmp_path / "entries.json"
    code = cli.main(
        ["metadata", "build", "--no-discover", "--wordnet", str(WORDNET), "--titles", str(titles), "--output", str(out)]
    )
    assert code == 0
    entries = json.loads(out.read_text())
    assert entries[0] == "dog" and entries[-2:] == ["Hot dog", "The Starry Night"]
    printed = capsys.readouterr().out
    assert "wordnet:" in printed and "titles: 3 candidates, 2 new entries" in printed
    assert cli.main(["metadata", "build", "--no-discover", "--output", str(out)]) == 2
