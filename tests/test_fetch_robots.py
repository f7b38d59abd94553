"""The X-Robots-Tag check copied from img2dataset gives img2dataset's answers on every header."""

from __future__ import annotations

import http.client
import io

from hypothesis import given, settings
from hypothesis import strategies as st
from img2dataset.downloader import is_disallowed as img2dataset_is_disallowed

from wit_pipeline.download.fetch import is_disallowed

DIRECTIVES = frozenset({"noai", "noimageai", "noindex", "noimageindex"})

_words = st.sampled_from(["noai", "NoImageAI", " noindex ", "nofollow", "all", "none", "", "wit", "otherbot"])
_value = st.builds(
    lambda agent, words: (f"{agent}:" if agent is not None else "") + ",".join(words),
    st.one_of(st.none(), st.sampled_from(["wit", "WIT", "otherbot", " wit", ""])),
    st.lists(_words, min_size=0, max_size=4),
)


def _headers(values: list[str]) -> http.client.HTTPMessage:
    raw = "".join(f"X-Robots-Tag: {v}\r\n" for v in values) + "Content-Type: image/jpeg\r\n\r\n"
    return http.client.parse_headers(io.BytesIO(raw.encode()))


@settings(max_examples=300, deadline=None)
@given(values=st.lists(_value, max_size=3), token=st.sampled_from([None, "wit", "otherbot"]))
def test_the_copy_answers_as_img2dataset_does(values, token):
    headers = _headers(values)
    assert is_disallowed(headers, token, DIRECTIVES) == img2dataset_is_disallowed(headers, token, DIRECTIVES)


def test_examples_that_decide():
    assert is_disallowed(_headers(["noai"]), "wit", DIRECTIVES)
    assert is_disallowed(_headers(["wit: noindex, nofollow"]), "wit", DIRECTIVES)
    assert not is_disallowed(_headers(["otherbot: noai"]), "wit", DIRECTIVES)
    assert not is_disallowed(_headers(["nofollow"]), "wit", DIRECTIVES)
    assert not is_disallowed(_headers([]), "wit", DIRECTIVES)


def test_downloading_does_not_import_img2dataset():
    # Importing img2dataset pulls torch, wandb and pandas: seconds per worker process.
    import subprocess
    import sys

    code = "import sys, wit_pipeline.download.shard; print('img2dataset' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"


def test_checking_a_response_does_not_import_img2dataset():
    # The check must use the copy: an import inside it would cost every worker torch's start-up.
    import subprocess
    import sys

    code = (
        "import sys, email.message\n"
        "from wit_pipeline.download.fetch import _check_headers\n"
        "headers = email.message.Message(); headers['Content-Type'] = 'image/jpeg'\n"
        "headers['X-Robots-Tag'] = 'noindex'\n"
        "_check_headers(headers, 'img2dataset', frozenset({'noai', 'noimageai'}))\n"
        "print('img2dataset' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"
