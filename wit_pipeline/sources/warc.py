"""Common Crawl WARC files: every `<img>` with a non-empty `alt` on an HTML response is a pair.

Records are read with warcio and pages parsed with selectolax's lexbor engine (a real HTML5
parser, ~10x faster than BeautifulSoup). `src` is resolved against the page URL (or the page's
`<base href>`), protocol-relative `//host/...` included; with `srcset="largest"` the largest
`srcset` candidate replaces `src`. A `data:` URI or a non-HTTP scheme gives an `invalid_url` row.
The `width`/`height` attributes are kept as hints; the page URL is `page_url` and the response's
WARC-Record-ID is `source_id`, the same id the WAT route reports for that page.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urljoin

from selectolax.lexbor import LexborHTMLParser
from warcio.archiveiterator import ArchiveIterator
from warcio.exceptions import ArchiveLoadFailed

from wit_pipeline.config import require_choice
from wit_pipeline.sources.base import SourceShard, make_record
from wit_pipeline.sources.files import (
    READ_ERRORS,
    FileSource,
    http_url_or_none,
    open_input,
    unreadable_input_record,
)

NAME = "warc"
_HTML_TYPES = ("text/html", "application/xhtml+xml")
_WARC_ERRORS = READ_ERRORS + (ArchiveLoadFailed,)
# <meta charset="x"> and <meta http-equiv="Content-Type" content="text/html; charset=x">: a byte
# scan of the page's head, as the HTML spec's encoding prescan does before any parsing.
_META_CHARSET = re.compile(rb"<meta[^>]+charset\s*=\s*[\"']?\s*([a-zA-Z0-9_.:-]+)", re.IGNORECASE)


@dataclass(frozen=True)
class WarcConfig:
    """How to turn the HTML responses of a WARC file into (img src, alt) pairs."""

    # src: the <img src>; largest: the largest srcset candidate (by w, else x descriptor), src if none.
    srcset: str = "src"

    def __post_init__(self):
        require_choice("srcset", self.srcset, ("src", "largest"))


def read_archive(path: str, source_name: str, kind: str, records_of) -> Iterator[dict]:
    """Stream the WARC-format archive at `path`, yielding `records_of(number, record)` for each
    record; a read error ends the file with one `unreadable_input` row naming where it stopped."""
    number = 0
    with open_input(path) as f:
        try:
            head = f.peek(8)[:8]
            if head and not head.startswith((b"WARC/", b"filedesc", b"\x1f\x8b")):
                # Not an archive at all (a Parquet file given to --source warc): say so in one row,
                # before warcio prints the file's bytes to stderr as an "invalid record" warning.
                yield unreadable_input_record(
                    source_name,
                    path,
                    f"the start: not a WARC file (first bytes {head!r})",
                    ArchiveLoadFailed("no WARC/ header"),
                )
                return
            for number, record in enumerate(ArchiveIterator(f), start=1):
                yield from records_of(number, record)
        except _WARC_ERRORS as err:
            yield unreadable_input_record(source_name, path, f"{kind} record {number + 1}", err)


class WarcSource(FileSource):
    """The Common Crawl WARC source (`--source warc`)."""

    name = NAME
    default_config = WarcConfig()
    config: WarcConfig

    def read(self, shard: SourceShard) -> Iterator[dict]:
        """The pairs of every HTML response in one WARC file, in file and document order."""
        return read_archive(shard.path, NAME, "WARC", self._response_records)

    def _response_records(self, number: int, record) -> Iterator[dict]:
        if _is_html_response(record):
            body = record.content_stream().read()
            yield from self.page_records(
                body,
                record.rec_headers.get_header("WARC-Target-URI"),
                record.rec_headers.get_header("WARC-Record-ID"),
                page_charset(record.http_headers.get_header("Content-Type"), body),
            )

    def page_records(self, body: bytes, page_url: str, record_id: str, charset: str = "utf-8") -> Iterator[dict]:
        """The pair records of one HTML page."""
        tree = LexborHTMLParser(body.decode(charset, errors="replace"))
        base_url = page_base_url(page_url, tree)
        for img in tree.css("img"):
            attributes = img.attributes
            alt = " ".join((attributes.get("alt") or "").split())
            if not alt:
                continue
            src = (attributes.get("src") or "").strip()
            if self.config.srcset == "largest":
                src = largest_srcset_candidate(attributes.get("srcset") or "") or src
            yield pair_record(
                NAME,
                base_url,
                src,
                alt,
                page_url,
                record_id,
                _dimension(attributes.get("width")),
                _dimension(attributes.get("height")),
            )


def pair_record(
    source: str,
    base_url: str | None,
    src: str,
    alt: str,
    page_url: str | None,
    record_id: str | None,
    width_hint: int | None = None,
    height_hint: int | None = None,
) -> dict:
    """The record of one (image URL, alt text) found on a page, or an `invalid_url` row saying why not."""
    url = resolve_image_url(base_url, src)
    status, error = "ok", None
    if url is None:
        if not src:
            what = "empty"
        elif src.lower().startswith("data:"):
            what = "a data: URI"
        else:
            what = f"{src[:80]!r}, not an http(s) URL"
        status, error = "invalid_url", f"{page_url} ({record_id}): <img> src is {what}"
    return make_record(
        url,
        alt,
        source,
        source_id=record_id,
        page_url=page_url,
        status=status,
        error=error,
        width_hint=width_hint,
        height_hint=height_hint,
    )


def resolve_image_url(base_url: str | None, src: str) -> str | None:
    """`src` made absolute against the page (`//host/x` takes the page's scheme); None if not http(s)."""
    if not src or src.lower().startswith("data:"):
        return None
    try:
        return http_url_or_none(urljoin(base_url or "", src))
    except ValueError:  # urljoin rejects some malformed hosts (an unbalanced IPv6 bracket)
        return None


def page_base_url(page_url: str, tree: LexborHTMLParser) -> str:
    """The URL that relative links resolve against: the page's `<base href>` if any, else its URL."""
    base = tree.css_first("base[href]")
    href = (base.attributes.get("href") or "").strip() if base is not None else ""
    return urljoin(page_url, href) if href else page_url


def largest_srcset_candidate(srcset: str) -> str | None:
    """The URL of the largest `srcset` candidate: the widest `w`, else the densest `x` (no descriptor is 1x).

    Parsed as the HTML spec's candidate list: a URL is a run of non-space characters (commas inside
    it are allowed), and a comma after its descriptors separates candidates.
    """
    best_url, best_key = None, None
    for url, descriptor in _srcset_candidates(srcset):
        key = _candidate_size(descriptor)
        if key is not None and (best_key is None or key > best_key):
            best_url, best_key = url, key
    return best_url


def _srcset_candidates(srcset: str) -> Iterator[tuple[str, str]]:
    position, length = 0, len(srcset)
    while position < length:
        while position < length and (srcset[position].isspace() or srcset[position] == ","):
            position += 1
        start = position
        while position < length and not srcset[position].isspace():
            position += 1
        url = srcset[start:position]
        if not url:
            return
        if url.endswith(","):
            yield url.rstrip(","), ""
            continue
        comma = srcset.find(",", position)
        end = length if comma < 0 else comma
        yield url, srcset[position:end].strip()
        position = end + 1


def _candidate_size(descriptor: str) -> tuple[int, float] | None:
    """A sort key: width descriptors beat density ones, then the number; None for a bad descriptor."""
    descriptor = descriptor.strip().lower() or "1x"
    try:
        if descriptor.endswith("w"):
            return (1, float(descriptor[:-1]))
        if descriptor.endswith("x"):
            return (0, float(descriptor[:-1]))
    except ValueError:
        return None
    return None


def _is_html_response(record) -> bool:
    if record.rec_type != "response" or record.http_headers is None:
        return False
    content_type = (record.http_headers.get_header("Content-Type") or "").lower()
    return content_type.startswith(_HTML_TYPES)


def page_charset(content_type: str | None, body: bytes) -> str:
    """The page's encoding: the HTTP Content-Type charset, else a <meta> charset, else UTF-8.

    The <meta> scan looks at the first 1024 bytes, the window of the HTML spec's prescan. A charset
    name that Python does not know is passed over.
    """
    charset = _header_charset(content_type)
    if not (charset and _known_codec(charset)):
        charset = _meta_charset(body[:1024])
    return charset if charset and _known_codec(charset) else "utf-8"


def _header_charset(content_type: str | None) -> str | None:
    for part in (content_type or "").split(";")[1:]:
        name, _, value = part.strip().partition("=")
        if name.lower() == "charset":
            return value.strip().strip("\"'")
    return None


def _meta_charset(head: bytes) -> str | None:
    match = _META_CHARSET.search(head)
    return match.group(1).decode("ascii") if match else None


def _known_codec(name: str) -> bool:
    try:
        codecs.lookup(name)
    except LookupError:
        return False
    return True


def _dimension(value: str | None) -> int | None:
    """An `<img>` width/height attribute as a whole number of pixels; None if absent or not a number."""
    text = (value or "").strip().lower().removesuffix("px")
    if not text.isdigit() or len(text) > 9:
        return None
    return int(text)
