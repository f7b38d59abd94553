"""Caption normalisation: what every caption goes through before it is filtered, hashed or matched.

HTML entities are unescaped (alt text often arrives as `&amp;` or `&#39;`), mojibake is repaired
and the text put in Unicode NFC by ftfy, control characters become spaces and invisible format
characters are deleted, and runs of whitespace collapse to one space. The uid is computed from the
normalised caption, so two spellings of the same text are one pair.
"""

from __future__ import annotations

import functools
import html
import re
import sys
import unicodedata

import ftfy

_WHITESPACE = re.compile(r"\s+")
# Cc: C0 and C1 controls (tabs and newlines included). They separate words, so they become spaces.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
# ftfy's HTML and control-character handling are off: we unescape every caption (ftfy skips text
# containing "<") and apply one control-character rule to every caption, ASCII or not.
_FTFY_CONFIG = ftfy.TextFixerConfig(unescape_html=False, remove_control_chars=False, normalization="NFC", explain=False)


@functools.lru_cache(maxsize=1)
def _format_chars() -> re.Pattern:
    # Cf: soft hyphens, zero-width and direction marks. They sit inside words, so they are deleted.
    chars = "".join(chr(c) for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) == "Cf")
    return re.compile(f"[{re.escape(chars)}]")


def normalise_caption(text: str) -> str:
    """The caption with entities unescaped, mojibake fixed, NFC, no control characters, one-spaced."""
    if "&" in text:
        text = html.unescape(text)
    # Printable ASCII has no mojibake, nothing to compose and no format characters: ftfy would
    # return it unchanged, at a third of the stage's cost.
    if not text.isascii():
        text = ftfy.fix_text(text, config=_FTFY_CONFIG)
        text = _format_chars().sub("", text)
    text = _CONTROL.sub(" ", text)
    return _WHITESPACE.sub(" ", text).strip()


def normalise_record(record: dict) -> dict:
    """Normalise `record['caption']` in place, keeping the original in `caption_original` if it differs.

    The uid is recomputed from the normalised caption. A record without a caption is left as it is.
    """
    from wit_pipeline import schema

    caption = record.get("caption")
    if caption is None:
        return record
    normal = normalise_caption(caption)
    if normal != caption:
        record["caption_original"] = caption
        record["caption"] = normal
        record["uid"] = schema.uid(record.get("url"), normal)
    return record
