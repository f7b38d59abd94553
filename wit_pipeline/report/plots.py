"""The report's charts: matplotlib figures from aggregated counts, embedded as PNG data URIs.

Only counts reach matplotlib (never one point per row), so a chart costs the same for any run.
The Agg backend draws without a display; figures are closed as soon as they are encoded.
"""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402

WIDTH, HEIGHT, DPI = 6.0, 2.8, 80
KEPT, DROPPED, BEFORE, AFTER = "#2a7ab0", "#c8553d", "#8a8a8a", "#2a7ab0"
# A series keeps its colour on every chart: what came in grey, what was kept blue, dropped red.
SERIES_COLORS = {"original": BEFORE, "stored": KEPT, "kept": KEPT, "dropped": DROPPED}


def to_data_uri(figure) -> str:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=DPI)
    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure(title: str):
    figure, axes = plt.subplots(figsize=(WIDTH, HEIGHT))
    axes.set_title(title, fontsize=10)
    axes.tick_params(labelsize=8)
    return figure, axes


def funnel_chart(funnel: dict) -> str:
    """Rows in and kept per stage, dropped stacked on kept so each bar's height is rows in."""
    stages = [name for name, stats in funnel.items() if stats]
    kept = np.array([funnel[s]["kept"] for s in stages])
    rows_in = np.array([funnel[s]["rows_in"] for s in stages])
    figure, axes = _figure("rows kept and dropped per stage")
    axes.bar(stages, kept, color=KEPT, label="kept")
    axes.bar(stages, np.maximum(rows_in - kept, 0), bottom=kept, color=DROPPED, label="dropped")
    axes.legend(fontsize=8)
    return to_data_uri(figure)


def bar_chart(title: str, labels: list[str], counts: list[int], color: str = KEPT) -> str:
    figure, axes = _figure(title)
    axes.barh(labels[::-1], counts[::-1], color=color)
    return to_data_uri(figure)


def histograms(title: str, named: list[tuple[str, dict]], log_x: bool = False, xlabel: str = "") -> str:
    """Step outlines of one or more histograms ({edges, counts}) on shared axes."""
    figure, axes = _figure(title)
    for label, hist in named:
        axes.stairs(
            hist["counts"],
            np.asarray(hist["edges"]),
            label=f"{label} ({hist['n']:,})",
            color=SERIES_COLORS.get(label, KEPT),
            fill=len(named) == 1,
        )
    if log_x:
        axes.set_xscale("log")
        axes.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:g}"))
        axes.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    axes.set_xlabel(xlabel, fontsize=8)
    axes.legend(fontsize=8)
    return to_data_uri(figure)


def entry_curves(before: dict, after: dict, t: int | None) -> str:
    """Count by rank on log-log axes (left) and the head's cumulative share of pairs (right)."""
    figure, (counts, share) = plt.subplots(1, 2, figsize=(WIDTH * 1.6, HEIGHT))
    for curve, label, color in ((before, "before balance", BEFORE), (after, "after balance", AFTER)):
        if curve["ranks"]:
            counts.loglog(curve["ranks"], curve["counts"], label=label, color=color)
            share.semilogx(curve["ranks"], curve["share"], label=label, color=color)
    if t:
        counts.axhline(t, linestyle=":", color=DROPPED, label=f"t = {t:,}")
    counts.set(xlabel="entry rank", ylabel="pairs matched")
    share.set(xlabel="top-k entries", ylabel="share of all matches", ylim=(0, 1.02))
    for axes, title in ((counts, "entry counts (log-log)"), (share, "cumulative share held by the head")):
        axes.set_title(title, fontsize=10)
        axes.tick_params(labelsize=8)
        axes.legend(fontsize=8)
    return to_data_uri(figure)


def throughput_chart(seconds: list[float], images: list[int]) -> str:
    figure, axes = _figure("images stored over time")
    axes.step(seconds, images, where="post", color=KEPT)
    axes.set(xlabel="seconds since the first shard started", ylabel="images stored")
    return to_data_uri(figure)


def cluster_sizes(size_counts: list[tuple[int, int]]) -> str:
    figure, axes = _figure("duplicate clusters by size")
    sizes = [size for size, _ in size_counts]
    axes.bar([str(s) for s in sizes], [count for _, count in size_counts], color=KEPT)
    axes.set(xlabel="images in the cluster", ylabel="clusters")
    return to_data_uri(figure)
