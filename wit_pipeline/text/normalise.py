"""Caption normalisation: what every caption goes through before it is filtered, hashed or matched.

HTML entities are unescaped (alt text often arrives as `&amp;` or `&#39;`), mojibake is repaired
and the text put in Unicode NFC by ftfy, control and format characters become spaces, and runs of
whitespace collapse to one space. The uid is computed from the normalised caption, so two spellings
of the same text are one pair.
"""

from __future__ import annotations

import html
import re
import unicodedata

import ftfy

_WHITESPACE = re.compile(r"\s+")
# ftfy's own HTML handling is off: it skips text that contains '<', and we unescape every caption.
_FTFY_CONFIG = ftfy.TextFixerConfig(unescape_html=False, normalization="NFC", explain=False)


def normalise_caption(text: str) -> str:
    """The caption with entities unescaped, mojibake fixed, NFC, no control characters, one-spaced."""
    text = html.unescape(text)
    text = ftfy.fix_text(text, config=_FTFY_CONFIG)
    text = "".join(_CONTROL_REPLACEMENT.get(unicodedata.category(ch), ch) for ch in text)
    return _WHITESPACE.sub(" ", text).strip()


# Cc (C0/C1 controls, tabs and newlines included) separate words, so they become spaces; Cf
# (soft hyphens, zero-width and direction marks) sit inside words, so they are deleted.
_CONTROL_REPLACEMENT = {"Cc": " ", "Cf": ""}


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
