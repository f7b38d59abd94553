"""Common Crawl WAT files: the link metadata of each HTML response, about a third of the WARC's size.

This is LAION's (cc2dataset) and MetaCLIP's route. A WAT `metadata` record holds one JSON
document; for an HTML response its `Envelope.Payload-Metadata.HTTP-Response-Metadata.HTML-Metadata.
Links` lists every link, and the ones with `"path": "IMG@/src"` and a non-empty `alt` are pairs.
Their `url` is as written in the page, so it is resolved against `Head.Base` or the record's
`WARC-Target-URI` exactly as the WARC route resolves `<img src>`; `source_id` is the WARC-Record-ID
of the response the WAT describes, so both routes give the same records for a page.
Records that describe requests, metadata or non-HTML responses carry no `HTML-Metadata` and give
nothing; a record whose payload is not JSON gives a `malformed_record` row.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import urljoin

from wit_pipeline.sources.base import SourceShard, make_record
from wit_pipeline.sources.files import FileSource
from wit_pipeline.sources.warc import pair_record, read_archive

NAME = "wat"


class WatSource(FileSource):
    """The Common Crawl WAT source (`--source wat`)."""

    name = NAME

    def read(self, shard: SourceShard) -> Iterator[dict]:
        """The image links with alt text of every HTML response described in one WAT file."""

        def metadata_of(number: int, record) -> Iterator[dict]:
            if record.rec_type == "metadata":
                yield from self.metadata_records(
                    record.content_stream().read(),
                    record.rec_headers.get_header("WARC-Target-URI"),
                    f"{shard.path} WAT record {number} ({record.rec_headers.get_header('WARC-Record-ID')})",
                )

        return read_archive(shard.path, NAME, "WAT", metadata_of)

    def metadata_records(self, payload: bytes, target_uri: str | None, where: str) -> Iterator[dict]:
        """The pair records of one WAT JSON document; `where` names the record in errors."""
        try:
            document = json.loads(payload)
        except ValueError as err:  # JSONDecodeError and UnicodeDecodeError are both ValueErrors
            yield _malformed(f"{where}: payload is not JSON ({err})", target_uri)
            return
        envelope = _dig(document, "Envelope")
        if not isinstance(envelope, dict):
            yield _malformed(f"{where}: JSON has no Envelope object", target_uri)
            return
        html = _dig(envelope, "Payload-Metadata", "HTTP-Response-Metadata", "HTML-Metadata")
        if not isinstance(html, dict):
            return
        warc_headers = _dig(envelope, "WARC-Header-Metadata") or {}
        page_url = warc_headers.get("WARC-Target-URI") or target_uri
        record_id = warc_headers.get("WARC-Record-ID")
        links = html.get("Links") or []
        if not isinstance(links, list):
            yield _malformed(f"{where}: HTML-Metadata.Links is not a list", page_url)
            return
        base_url = _base_url(page_url, _dig(html, "Head", "Base"))
        for link in links:
            if not isinstance(link, dict) or link.get("path") != "IMG@/src":
                continue
            alt = " ".join(str(link.get("alt") or "").split())
            if alt:
                yield pair_record(NAME, base_url, str(link.get("url") or "").strip(), alt, page_url, record_id)


def _dig(value, *keys):
    """value[k1][k2]... or None where a level is missing or not an object."""
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _base_url(page_url: str | None, base_href) -> str | None:
    if isinstance(base_href, str) and base_href.strip():
        return urljoin(page_url or "", base_href.strip())
    return page_url


def _malformed(error: str, page_url: str | None) -> dict:
    return make_record(None, None, NAME, page_url=page_url, status="malformed_record", error=error)
