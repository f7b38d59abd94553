"""Common Crawl WARC and WAT sources on real crawl files (tests/data/commoncrawl).

Counts verified by reading the files: iana.warc.gz has 48 responses, 20 of them HTML (four are
302 redirects with no <img>); its 32 <img> tags include 16 with a non-empty alt: "Homepage" (the
header logo) on 15 pages (all but the home page, whose only <img> has no alt) and "Map of RIRs"
on /numbers. whirlwind.warc.gz is one Aragonese
Wikipedia page with 13 <img>, 7 with non-empty alt, 5 of them protocol-relative //upload... URLs.
"""

from __future__ import annotations

import gzip
import io
import json

from helpers.paths import TEST_DATA
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from wit_pipeline.sources.warc import WarcConfig, WarcSource, largest_srcset_candidate, resolve_image_url
from wit_pipeline.sources.wat import WatSource

CC = TEST_DATA / "commoncrawl"
IANA_WARC = CC / "iana.warc.gz"
IANA_WAT = CC / "iana-numbers.warc.wat.gz"
WHIRLWIND_WARC = CC / "whirlwind.warc.gz"
WHIRLWIND_WAT = CC / "whirlwind.warc.wat.gz"
ESCOPETE = "https://an.wikipedia.org/wiki/Escopete"


def read_all(source) -> list[dict]:
    return [record for shard in source.shards() for record in source.read(shard)]


def test_iana_warc_gives_16_pairs():
    records = read_all(WarcSource(str(IANA_WARC)))
    assert len(records) == 16 and {r["status"] for r in records} == {"ok"}
    pairs = [(r["url"], r["caption"]) for r in records]
    assert pairs.count(("http://www.iana.org/_img/2013.1/iana-logo-header.svg", "Homepage")) == 14
    # https://www.iana.org/dnssec was fetched over https: its relative src resolves to https.
    assert pairs.count(("https://www.iana.org/_img/2013.1/iana-logo-header.svg", "Homepage")) == 1
    assert pairs.count(("http://www.iana.org/_img/2013.1/rir-map.svg", "Map of RIRs")) == 1
    assert len({r["page_url"] for r in records}) == 15
    numbers = [r for r in records if r["page_url"] == "http://www.iana.org/numbers"]
    assert [r["caption"] for r in numbers] == ["Homepage", "Map of RIRs"]
    assert {r["source_id"] for r in numbers} == {"<urn:uuid:7bc7f444-1ba9-4b4c-a389-16a7fc4ee004>"}
    assert all(r["source"] == "warc" and r["license"] is None for r in records)


WHIRLWIND_PAIRS = [
    ("https://an.wikipedia.org/static/images/mobile/copyright/wikipedia-wordmark-an.svg", "Biquipedia", None, None),
    (
        "https://an.wikipedia.org/static/images/mobile/copyright/wikipedia-tagline-an.svg",
        "A enciclopedia libre",
        120,
        14,
    ),
    (
        "https://upload.wikimedia.org/wikipedia/commons/thumb/0/0a/Escudo_de_Escopete_%28Guadalajara%29.svg/"
        "70px-Escudo_de_Escopete_%28Guadalajara%29.svg.png",
        "Escudo d'armas",
        70,
        122,
    ),
    (
        "https://upload.wikimedia.org/wikipedia/commons/thumb/9/9c/Castilla-La_Mancha-loc.svg/"
        "250px-Castilla-La_Mancha-loc.svg.png",
        "Escopete ubicada en Castiella-La Mancha",
        250,
        252,
    ),
    (
        "https://upload.wikimedia.org/wikipedia/commons/thumb/d/d2/Map_pointer.svg/12px-Map_pointer.svg.png",
        "Escopete",
        12,
        12,
    ),
    ("https://an.wikipedia.org/static/images/footer/wikimedia-button.png", "Wikimedia Foundation", 88, 31),
    ("https://an.wikipedia.org/static/images/footer/poweredby_mediawiki_88x31.png", "Powered by MediaWiki", 88, 31),
]


def test_whirlwind_warc_resolves_protocol_relative_urls_and_keeps_size_hints():
    records = read_all(WarcSource(str(WHIRLWIND_WARC)))
    assert [(r["url"], r["caption"], r["width_hint"], r["height_hint"]) for r in records] == WHIRLWIND_PAIRS
    assert {r["page_url"] for r in records} == {ESCOPETE}
    assert {r["source_id"] for r in records} == {"<urn:uuid:2aabeff2-67f5-4608-8466-e87c6296e2b6>"}


def test_srcset_largest_picks_the_2x_candidates():
    records = read_all(WarcSource(str(WHIRLWIND_WARC), WarcConfig(srcset="largest")))
    urls = [r["url"] for r in records]
    assert urls[2].endswith("/140px-Escudo_de_Escopete_%28Guadalajara%29.svg.png")
    assert urls[5] == "https://an.wikipedia.org/static/images/footer/wikimedia-button-2x.png"
    assert urls[0] == WHIRLWIND_PAIRS[0][0]  # no srcset: src stays


def test_resolve_image_url():
    page = "https://example.org/a/b.html"
    assert resolve_image_url(page, "//cdn.example.net/x.jpg") == "https://cdn.example.net/x.jpg"
    assert resolve_image_url("http://example.org/", "//cdn.example.net/x.jpg") == "http://cdn.example.net/x.jpg"
    assert resolve_image_url(page, "img/c.png") == "https://example.org/a/img/c.png"
    assert resolve_image_url(page, "/c.png") == "https://example.org/c.png"
    assert resolve_image_url(page, "data:image/png;base64,iVBORw0KGgo=") is None
    assert resolve_image_url(page, "javascript:void(0)") is None
    assert resolve_image_url(page, "ftp://example.org/c.png") is None
    assert resolve_image_url(page, "") is None


def test_largest_srcset_candidate():
    assert largest_srcset_candidate("a.jpg 300w, b.jpg 1200w, c.jpg 800w") == "b.jpg"
    assert largest_srcset_candidate("a.jpg, b.jpg 2x, c.jpg 1.5x") == "b.jpg"
    with_commas = "https://cdn.example/w_300,h_200/a.jpg 1x, https://cdn.example/w_600,h_400/a.jpg 2x"
    assert largest_srcset_candidate(with_commas) == "https://cdn.example/w_600,h_400/a.jpg"
    assert largest_srcset_candidate("a.jpg 2x, b.jpg 100w") == "b.jpg"
    assert largest_srcset_candidate("") is None


def test_page_records_skip_alt_less_images_and_flag_unusable_urls():
    html = b"""<html><head><base href="https://static.example.org/img/"></head><body>
      <img src="a.jpg" alt="A red bicycle" width="640px" height="x">
      <img src="b.jpg">
      <img src="c.jpg" alt="   ">
      <img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=" alt="Pixel">
      <img src="mailto:someone@example.org" alt="Mail">
    </body></html>"""
    records = list(WarcSource([]).page_records(html, "https://example.org/page", "<urn:uuid:1>"))
    assert [(r["url"], r["caption"], r["status"]) for r in records] == [
        ("https://static.example.org/img/a.jpg", "A red bicycle", "ok"),
        (None, "Pixel", "invalid_url"),
        (None, "Mail", "invalid_url"),
    ]
    assert (records[0]["width_hint"], records[0]["height_hint"]) == (640, None)
    assert "data: URI" in records[1]["error"] and "'mailto:someone@example.org'" in records[2]["error"]


def test_truncated_warc_gzip_keeps_earlier_pairs_and_says_where_it_stopped(tmp_path):
    data = IANA_WARC.read_bytes()
    path = tmp_path / "iana.warc.gz"
    path.write_bytes(data[: len(data) // 2])
    records = read_all(WarcSource(str(path)))
    assert [r["status"] for r in records] == ["ok", "ok", "unreadable_input"]
    assert "TruncatedInputError" in records[-1]["error"] and "WARC record" in records[-1]["error"]


def test_warc_bz2_gives_the_same_pairs(tmp_path):
    import bz2

    path = tmp_path / "whirlwind.warc.bz2"
    path.write_bytes(bz2.compress(gzip.decompress(WHIRLWIND_WARC.read_bytes())))
    assert read_all(WarcSource(str(path))) == read_all(WarcSource(str(WHIRLWIND_WARC)))


# -- WAT ------------------------------------------------------------------------------------------


def test_wat_and_warc_routes_give_the_same_pairs_for_iana_numbers():
    wat = read_all(WatSource(str(IANA_WAT)))
    warc = [r for r in read_all(WarcSource(str(IANA_WARC))) if r["page_url"] == "http://www.iana.org/numbers"]
    assert len(wat) == 2
    keys = ("uid", "url", "caption", "page_url", "source_id", "status")
    assert [{k: r[k] for k in keys} for r in wat] == [{k: r[k] for k in keys} for r in warc]
    assert {r["source"] for r in wat} == {"wat"}


def test_whirlwind_wat_holds_only_request_metadata():
    assert read_all(WatSource(str(WHIRLWIND_WAT))) == []


def write_wat(path, payloads: list[bytes]) -> None:
    """A WAT file of `metadata` records with the given payloads, as Common Crawl writes them."""
    with open(path, "wb") as out:
        writer = WARCWriter(out, gzip=True)
        for i, payload in enumerate(payloads):
            headers = StatusAndHeaders(
                "",
                [
                    ("WARC-Type", "metadata"),
                    ("WARC-Target-URI", "http://www.iana.org/numbers"),
                    ("WARC-Date", "2014-01-26T20:06:51Z"),
                    ("WARC-Record-ID", f"<urn:uuid:00000000-0000-0000-0000-00000000000{i}>"),
                    ("Content-Type", "application/json"),
                ],
                protocol="WARC/1.0",
            )
            writer.write_record(
                writer.create_warc_record(
                    "http://www.iana.org/numbers",
                    "metadata",
                    payload=io.BytesIO(payload),
                    length=len(payload),
                    warc_headers=headers,
                )
            )


def test_non_json_wat_record_is_a_malformed_row_and_reading_goes_on(tmp_path):
    good = json.dumps(json.loads((CC / "iana-numbers.wat.json").read_text())).encode()
    path = tmp_path / "bad.warc.wat.gz"
    write_wat(path, [good, b'{"Envelope": {"Payload-Metadata": ', b'["no envelope"]', good])
    records = read_all(WatSource(str(path)))
    assert [r["status"] for r in records] == ["ok", "ok", "malformed_record", "malformed_record", "ok", "ok"]
    assert "WAT record 2 (<urn:uuid:00000000-0000-0000-0000-000000000001>): payload is not JSON" in records[2]["error"]
    assert records[3]["error"].endswith("JSON has no Envelope object")
    assert records[2]["page_url"] == "http://www.iana.org/numbers"


def test_wat_base_href_and_protocol_relative_links(tmp_path):
    document = json.loads((CC / "iana-numbers.wat.json").read_text())
    html = document["Envelope"]["Payload-Metadata"]["HTTP-Response-Metadata"]["HTML-Metadata"]
    html["Head"]["Base"] = "https://static.example.org/img/"
    html["Links"] = [
        {"path": "IMG@/src", "url": "a.jpg", "alt": "A red bicycle"},
        {"path": "IMG@/src", "url": "//upload.example.org/b.jpg", "alt": "A blue car"},
        {"path": "A@/href", "url": "c.jpg", "text": "not an image"},
        {"path": "IMG@/src", "url": "d.jpg", "alt": ""},
    ]
    path = tmp_path / "base.warc.wat.gz"
    write_wat(path, [json.dumps(document).encode()])
    assert [r["url"] for r in read_all(WatSource(str(path)))] == [
        "https://static.example.org/img/a.jpg",
        "https://upload.example.org/b.jpg",
    ]


def test_page_charset_from_header_then_meta_then_utf8():
    from wit_pipeline.sources.warc import page_charset

    latin = '<html><head><meta charset="iso-8859-1"></head><body><img src="a.jpg" alt="Café déjà vu">'
    body = latin.encode("latin-1")
    assert page_charset("text/html", body) == "iso-8859-1"
    assert page_charset("text/html; charset=windows-1252", body) == "windows-1252"
    assert page_charset("text/html; charset=nonsense", b"<p>") == "utf-8"
    records = list(WarcSource([]).page_records(body, "http://example.org/", "<urn:uuid:2>", page_charset(None, body)))
    assert records[0]["caption"] == "Café déjà vu"
