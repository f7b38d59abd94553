"""The Arrow schemas are defined once and snapshotted; a change must be deliberate."""

from __future__ import annotations

import pytest
from helpers.paths import REPO_ROOT

from wit_pipeline import schema


@pytest.mark.parametrize("name", sorted(schema.SCHEMAS))
def test_schema_matches_its_snapshot(name):
    snapshot = (REPO_ROOT / "schemas" / f"{name}.json").read_text()
    assert schema.schema_to_json(schema.SCHEMAS[name]) == snapshot, (
        f"schema {name!r} drifted from schemas/{name}.json; if intended, bump SCHEMA_VERSION when readers "
        "must change and regenerate with wit_pipeline.schema.write_snapshots('schemas')"
    )


def test_uid_is_a_stable_128_bit_hex_key():
    key = schema.uid("http://example.com/a.jpg", "a dog")
    assert key == schema.uid("http://example.com/a.jpg", "a dog")
    assert len(key) == 32 and int(key, 16) >= 0
    assert key != schema.uid("http://example.com/a.jpg", "a cat")
    # url + tab + caption: moving text across the separator changes the key
    assert schema.uid("a", "b c") != schema.uid("a b", "c")
    # a fixed value pins the hash function: changing it would re-key every published dataset
    assert key == "e84560f23fe29e489116bf9e5ed74178"
    assert schema.uid("", "") == schema.uid(None, None)


def test_phash_column_is_a_string_because_hashes_exceed_int64():
    assert schema.RAW_SCHEMA.field("phash").type == "string"


def test_unknown_status_is_rejected_and_http_codes_are_accepted():
    assert schema.check_status("http_503") == "http_503"
    with pytest.raises(ValueError, match="unknown status"):
        schema.check_status("kinda_broken")
