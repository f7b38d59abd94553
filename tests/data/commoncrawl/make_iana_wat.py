"""Rebuild iana-numbers.warc.wat.gz from the hand-written iana-numbers.wat.json.

The JSON is a WAT record in Common Crawl's published layout (Container / Envelope /
Payload-Metadata / HTTP-Response-Metadata / HTML-Metadata), written by hand for the response record
of http://www.iana.org/numbers in iana.warc.gz. All three <img> links of the page are there, in
document order; the anchors are abbreviated (14 of the page's 61). This script only wraps it, as
compact JSON, in a WARC `metadata` record after a `warcinfo` record, as a WAT file holds them.

    python tests/data/commoncrawl/make_iana_wat.py
"""

import io
import json
import pathlib

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

HERE = pathlib.Path(__file__).parent


def main():
    envelope = json.loads((HERE / "iana-numbers.wat.json").read_text(encoding="utf-8"))
    payload = json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    with open(HERE / "iana-numbers.warc.wat.gz", "wb") as out:
        writer = WARCWriter(out, gzip=True)
        info = writer.create_warcinfo_record(
            "iana-numbers.warc.wat.gz", {"software": "hand-written for wit's tests", "format": "WARC File Format 1.0"}
        )
        info.rec_headers.replace_header("WARC-Date", "2014-01-26T20:06:51Z")
        info.rec_headers.replace_header("WARC-Record-ID", "<urn:uuid:0b8d9b3e-2a51-4f0c-9e61-3f4f3b7c1a01>")
        writer.write_record(info)
        headers = StatusAndHeaders("", [
            ("WARC-Type", "metadata"),
            ("WARC-Target-URI", "http://www.iana.org/numbers"),
            ("WARC-Date", "2014-01-26T20:06:51Z"),
            ("WARC-Record-ID", "<urn:uuid:0b8d9b3e-2a51-4f0c-9e61-3f4f3b7c1a02>"),
            ("WARC-Refers-To", "<urn:uuid:7bc7f444-1ba9-4b4c-a389-16a7fc4ee004>"),
            ("Content-Type", "application/json"),
        ], protocol="WARC/1.0")
        record = writer.create_warc_record(
            "http://www.iana.org/numbers", "metadata", payload=io.BytesIO(payload),
            length=len(payload), warc_headers=headers,
        )
        writer.write_record(record)


if __name__ == "__main__":
    main()
