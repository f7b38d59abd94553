"""YFCC100M metadata: the tab-separated `yfcc100m_dataset` file, one photo or video per line.

Two layouts are read, told apart per line by the field count:
- 23 fields, the official Webscope layout: photo id, user NSID, user nickname, date taken, date
  uploaded, capture device, title, description, user tags, machine tags, longitude, latitude,
  accuracy, page URL, download URL, license name, license URL, server id, farm id, secret,
  original secret, original extension, photo/video marker (0 photo, 1 video);
- 25 fields: a line number and the photo hash around the photo id (line number, photo id, hash,
  then the 22 fields after the photo id), the layout whose first three columns CLIP's
  `yfcc100m_subset_data.tsv` lists.
Text fields are URL-encoded with `+` for spaces; descriptions may hold HTML. Videos become
`not_an_image` rows, so they are counted, not silently skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import unquote_plus

from selectolax.lexbor import LexborHTMLParser

from wit_pipeline.config import require_choice
from wit_pipeline.filters.natural_title import why_not_natural
from wit_pipeline.sources.base import SourceShard, make_record
from wit_pipeline.sources.files import (
    FileSource,
    format_license,
    http_url_or_none,
    iter_lines,
    unreadable_input_record,
)

NAME = "yfcc"

# Field positions in the 23-field layout; the 25-field layout shifts every field after the photo
# id by one (the hash sits between the id and the user NSID) and puts a line number first.
FIELDS_23 = (
    "photo_id", "user_nsid", "user_nickname", "date_taken", "date_uploaded", "capture_device",
    "title", "description", "user_tags", "machine_tags", "longitude", "latitude", "accuracy",
    "page_url", "download_url", "license_name", "license_url", "server_id", "farm_id", "secret",
    "original_secret", "original_extension", "marker",
)  # fmt: skip
FIELDS_25 = ("line_number", "photo_id", "photo_hash") + FIELDS_23[1:]
_LAYOUTS = {len(FIELDS_23): FIELDS_23, len(FIELDS_25): FIELDS_25}


@dataclass(frozen=True)
class YfccConfig:
    """How to read YFCC100M metadata (23-field official TSV, or the 25-field line-number + hash variant)."""

    # title | description | both. `both` leaves out a part that is not natural language (a camera
    # file name, a date) and joins the rest: CLIP kept "titles and/or descriptions".
    caption: str = "both"

    def __post_init__(self):
        require_choice("yfcc caption", self.caption, ("title", "description", "both"))


class YfccSource(FileSource):
    """The YFCC100M metadata source (`--source yfcc`)."""

    name = NAME
    default_config = YfccConfig()
    config: YfccConfig

    def read(self, shard: SourceShard) -> Iterator[dict]:
        """One record per line: a photo, a video (`not_an_image`) or a malformed line."""
        for line_number, line in iter_lines(shard.path):
            if isinstance(line, Exception):
                yield unreadable_input_record(NAME, shard.path, f"line {line_number}", line)
                return
            yield self.line_record(line, f"{shard.path} line {line_number}")

    def line_record(self, line: bytes, where: str) -> dict:
        """The record of one metadata line; `where` names the line in errors."""
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as err:
            return _malformed(f"{where}: not UTF-8 ({err})")
        values = text.split("\t")
        layout = _LAYOUTS.get(len(values))
        if layout is None:
            return _malformed(f"{where}: expected 23 or 25 tab-separated fields, found {len(values)}")
        row = dict(zip(layout, values, strict=True))
        if row["marker"] not in ("0", "1"):
            return _malformed(f"{where}: photo/video marker is {row['marker']!r}, not 0 or 1", row["photo_id"])
        caption = self.caption(row)
        status, error = "ok", None
        url = http_url_or_none(row["download_url"])
        if row["marker"] == "1":
            status, error = "not_an_image", f"{where}: photo {row['photo_id']} is a video"
        elif url is None:
            status, error = "invalid_url", f"{where}: download URL {row['download_url']!r} is not http(s)"
        elif caption is None:
            wanted = "title or description" if self.config.caption == "both" else self.config.caption
            status, error = "missing_caption", f"{where}: the {wanted} is empty"
        return make_record(
            url or row["download_url"] or None,
            caption,
            NAME,
            source_id=row["photo_id"],
            page_url=row["page_url"] or None,
            license=format_license(unquote_plus(row["license_name"]), row["license_url"]),
            status=status,
            error=error,
        )

    def caption(self, row: dict) -> str | None:
        """Title, description or both, decoded and stripped of HTML; None when there is no text.

        `both` leaves out a part that is not natural language (a camera file name as title) and
        joins the rest with a full stop, so "IMG_1234" + "My dog" gives "My dog".
        """
        title, description = decode_text(row["title"]), decode_text(row["description"])
        if self.config.caption == "title":
            return title or None
        if self.config.caption == "description":
            return description or None
        parts = [part for part in (title, description) if part]
        natural = [part for part in parts if why_not_natural(part) is None]
        return join_parts(natural or parts) or None


def decode_text(value: str) -> str:
    """A YFCC text field as a person wrote it: URL-decoded (+ is a space), HTML stripped, one line."""
    text = unquote_plus(value)
    if "<" in text or "&" in text:
        text = strip_html(text)
    return " ".join(text.split())


def strip_html(text: str) -> str:
    """The visible text of an HTML fragment (tags dropped, entities decoded) by a real HTML parser."""
    body = LexborHTMLParser(text).body
    return body.text(separator=" ") if body is not None else text


def join_parts(parts: list[str]) -> str:
    """Title and description as one caption: the title gets a full stop unless it has its own."""
    return " ".join(
        part if i == len(parts) - 1 or part.endswith((".", "!", "?", ":")) else part + "."
        for i, part in enumerate(parts)
    )


def _malformed(error: str, photo_id=None) -> dict:
    return make_record(None, None, NAME, source_id=photo_id, status="malformed_record", error=error)
