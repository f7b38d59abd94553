"""`wit report` opened in real headless Chromium: what a user sees, checked through the page itself.

The run is real (ingest -> reshard over the bundled COCO images served on 127.0.0.1), with the web's
hostile text in it: captions carrying script, event-handler and SVG payloads, a `javascript:` URL
and a failing URL with markup in its query. Every payload would change the page title or open an
alert if it ran; the tests read the title, the dialogs and the DOM back from the browser.
"""

from __future__ import annotations

import io
import json
import os
import pathlib
import shutil

import pytest
from helpers.browser import Browser, chromium_path
from helpers.curate import stage_stats
from helpers.report_runs import STAGES, coco_rows, run_chain
from PIL import Image

from wit_pipeline import cli
from wit_pipeline.report import write_report

# Without a browser these tests are skipped on a developer's machine, never in CI (.ci/run installs it).
pytestmark = pytest.mark.skipif(
    chromium_path() is None and not os.environ.get("WIT_REQUIRE_BROWSER"),
    reason="needs Debian's chromium (apt-get install chromium; .ci/run installs it)",
)

PAYLOADS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=\"document.title='pwned'\">",
    '"><svg onload="document.title=\'pwned\'">',
]
JAVASCRIPT_URL = "javascript:document.title='pwned'"

FUNNEL_FROM_DOM = """[...document.querySelectorAll('#funnel-table tr[data-stage]')].map(tr => ({
  stage: tr.dataset.stage,
  rows_in: tr.querySelector('[data-field=rows_in]')?.textContent ?? null,
  kept: tr.querySelector('[data-field=kept]')?.textContent ?? null,
  dropped: Object.fromEntries([...tr.querySelectorAll('[data-reason]')]
    .map(s => [s.dataset.reason, s.querySelector('b').textContent])),
}))"""

INJECTION_FROM_DOM = """({
  title: document.title,
  scripts: document.scripts.length,
  injected: document.querySelectorAll('svg, img[src="x"], iframe, object, embed, [onerror], [onload]').length,
  links: [...document.querySelectorAll('[href]')].map(e => e.getAttribute('href')),
  captions: [...document.querySelectorAll('.caption')].map(e => e.textContent),
  urls: [...document.querySelectorAll('.url')].map(e => e.textContent),
})"""


def hostile_rows(server_url: str) -> list[dict]:
    rows = coco_rows(server_url)
    for row, payload in zip(rows[-len(PAYLOADS) :], PAYLOADS, strict=True):
        row["caption"] = f"{payload} {row['caption']}"
    # The same image under another caption: exact duplicates for dedup to fold.
    duplicates = [{"url": row["url"], "caption": f"Another photo: {row['caption']}"} for row in rows[:4]]
    return (
        rows
        + duplicates
        + [
            {"url": JAVASCRIPT_URL, "caption": "A red car parked on the side of the street"},
            {
                "url": f"{server_url}/status/404?q=<script>alert(2)</script>",
                "caption": "A bird sitting on a tree branch",
            },
            {"url": f"{server_url}/notimage.jpg", "caption": "A small boat floating on the calm lake"},
            {"url": f"{server_url}/img/x.jpg", "caption": "Un chat noir dort sur le canapé rouge du salon"},
        ]
    )


@pytest.fixture(scope="module")
def run(tmp_path_factory, image_server):
    out = tmp_path_factory.mktemp("report") / "out"
    run_chain(out, hostile_rows(image_server.url))
    assert cli.main(["report", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def browser():
    with Browser() as opened:
        yield opened


def load(browser, path):
    page = browser.load(path.resolve().as_uri())
    assert page.errors() == [], page.errors()
    assert page.dialogs == []
    # Nothing but the page itself and its embedded data: URIs was requested.
    assert [url for url in page.requests if not url.startswith("data:")] == [path.resolve().as_uri()]
    return page


def number(text: str) -> int:
    return int(text.replace(",", ""))


def funnel_shown(browser) -> dict:
    """The funnel as the loaded page shows it: stage -> (rows in, kept, {drop reason: count})."""
    return {
        row["stage"]: (
            number(row["rows_in"]),
            number(row["kept"]),
            {reason: number(count) for reason, count in row["dropped"].items()},
        )
        for row in browser.evaluate(FUNNEL_FROM_DOM)
    }


def expected_funnel(out) -> dict:
    """The funnel as each stage's stats.json records it (read here directly, not through wit), with
    download's totals checked against its per-shard stats and reshard's against the manifest."""

    funnel = {stage: (s["rows_in"], s["kept"], s["dropped"]) for stage, s in stage_stats(out).items()}
    per_shard = [json.loads(p.read_text()) for p in sorted((out / "raw").glob("*_stats.json"))]
    assert funnel["download"][:2] == (sum(s["rows"] for s in per_shard), sum(s["ok"] for s in per_shard))
    manifest = json.loads((out / "final" / "manifest.json").read_text())
    assert funnel["reshard"][1] == manifest["samples"] == funnel["dedup"][1]
    return funnel


def test_funnel_read_back_from_the_page_equals_the_stats_files(run, browser):
    load(browser, run / "report.html")
    shown = funnel_shown(browser)
    expected = expected_funnel(run)
    assert shown == expected
    # The run exercised every kind of drop the funnel shows.
    assert expected["ingest"][2].get("invalid_url") == 1 and expected["ingest"][2].get("lang_not_en") == 1
    assert expected["download"][2].get("http_404") == 1 and sum(expected["download"][2].values()) == 2
    assert expected["dedup"][2] == {"exact_duplicate": 4}
    for section in ("funnel", "text", "download", "images", "dedup", "samples", "configuration"):
        assert browser.evaluate(f"document.getElementById('{section}') !== null"), section
    # Every chart is a decoded image, not a broken one.
    assert browser.evaluate("[...document.images].every(i => i.complete && i.naturalWidth > 0)")
    assert browser.evaluate("document.images.length") >= 10


def test_screenshot_is_not_blank(run, browser):
    load(browser, run / "report.html")
    with Image.open(io.BytesIO(browser.screenshot())) as shot:
        gray = shot.convert("L")
        width, height = gray.size
        inked = sum(count for value, count in enumerate(gray.histogram()) if value < 200)
        colours = len(shot.convert("RGB").getcolors(maxcolors=1 << 20) or [])
    assert width >= 1000 and height >= 3000
    assert inked / (width * height) > 0.03
    assert colours > 500  # thumbnails and charts, not just text on white


def test_hostile_captions_and_urls_are_shown_as_text_and_never_run(run, browser):
    page = load(browser, run / "report.html")
    found = browser.evaluate(INJECTION_FROM_DOM)
    assert found["title"].startswith("wit report") and "pwned" not in found["title"]
    assert found["scripts"] == 0 and found["injected"] == 0
    assert found["links"] == []  # URLs are never links, so a javascript: URL cannot be followed
    captions = "\n".join(found["captions"])
    for payload in PAYLOADS:
        assert payload in captions
    assert JAVASCRIPT_URL in found["urls"]
    assert any("<script>alert(2)</script>" in url for url in found["urls"])
    assert page.dialogs == []


def test_partial_run_names_the_missing_stages(run, browser, tmp_path):
    partial = tmp_path / "partial"
    for stage in ("ingest", "balance"):
        shutil.copytree(run / stage, partial / stage)
    path = write_report(str(partial))
    load(browser, partial / "report.html")
    assert path.endswith("report.html")
    missing = browser.evaluate("document.getElementById('missing-stages').textContent")
    assert "download, dedup, reshard" in missing
    stages = browser.evaluate(
        "[...document.querySelectorAll('#funnel-table tr[data-stage]:not(.muted)')].map(r => r.dataset.stage)"
    )
    assert stages == ["ingest", "balance"]
    assert browser.evaluate("document.querySelector('img[alt=\"entry counts\"]') !== null")
    assert browser.evaluate("document.querySelector('#kept-samples') === null")


def test_report_of_a_folder_without_any_stage_is_a_one_line_error(tmp_path, capsys):
    assert cli.main(["report", str(tmp_path)]) == 2
    assert cli.main(["report", str(tmp_path / "missing")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("wit report: error:") for line in lines)


@pytest.mark.slow
def test_report_of_a_100k_row_run_is_small_and_renders_fast(tmp_path, browser):
    from helpers.large_run import synthesize

    out = synthesize(tmp_path / "large")
    path = pathlib.Path(write_report(str(out)))
    assert path.stat().st_size < 20 * 1024 * 1024
    page = load(browser, path)
    assert page.load_seconds < 5.0
    shown = {row["stage"]: number(row["rows_in"]) for row in browser.evaluate(FUNNEL_FROM_DOM)}
    assert shown["ingest"] == 100_000
    assert browser.evaluate("document.querySelectorAll('#kept-samples img').length") == 24


@pytest.mark.slow
@pytest.mark.parametrize("engines", [dict.fromkeys(STAGES, "beam"), {"download": "spark"}], ids=["beam", "spark"])
def test_each_engines_output_gives_the_same_report_funnel(run, browser, tmp_path, image_server, engines):
    out = run_chain(tmp_path / "out", hostile_rows(image_server.url), engines=engines)
    write_report(str(out))
    load(browser, out / "report.html")
    assert funnel_shown(browser) == expected_funnel(out) == expected_funnel(run)
