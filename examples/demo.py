"""`make demo`: the pipeline end to end on the repository's bundled real data, with no network.

Runs `wit curate examples/coco-subset.toml` (real COCO captions, the 24 real COCO images the
repository keeps in `tests/data/coco/images`, read from disk) into the demo folder, printing each
stage's funnel, then trains the tiny CLIP a few steps on the final shards and evaluates retrieval
on them. A script of the repository, not a module of the package: it needs the checkout's example
config and data, so `make demo` works from a clean clone and an installed wheel carries no demo.

    python examples/demo.py [--output demo-out] [--engine local|beam|spark] [--train-steps 40]
"""

from __future__ import annotations

import argparse
import pathlib
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "coco-subset.toml"


def demo_config(output: pathlib.Path) -> pathlib.Path:
    """The COCO example with the demo's output folder (the example's paths are from the repo root)."""
    text = EXAMPLE.read_text().replace('output = "out/coco-subset"', f"output = {str(output.resolve())!r}")
    path = output / "coco-subset.toml"
    path.write_text(text)
    return path


def wit(*args: str) -> None:
    """Run one `wit` command as a user would, from the repository root, stopping if it fails."""
    print(f"\n$ wit {' '.join(args)}", flush=True)
    subprocess.run([sys.executable, "-m", "wit_pipeline", *args], check=True, cwd=ROOT)


def main() -> int:
    parser = argparse.ArgumentParser(description="Run wit end to end on bundled real COCO data.")
    parser.add_argument("--output", default="demo-out", help="output folder (recreated)")
    parser.add_argument("--engine", choices=("local", "beam", "spark"), default="local")
    parser.add_argument("--train-steps", type=int, default=40, help="steps of the tiny CLIP at the end (0: skip)")
    args = parser.parse_args()
    out = pathlib.Path(args.output).resolve()
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    config = demo_config(out)
    wit("curate", str(config), "--engine", args.engine)
    if args.train_steps:
        wit(
            "train",
            "--shards",
            str(out / "final"),
            "--output",
            str(out / "run"),
            "--preset",
            "tiny",
            "--steps",
            str(args.train_steps),
            "--batch-size",
            "8",
            "--lr",
            "5e-4",
            "--image-size",
            "64",
            "--no-progress",
        )
        wit(
            "eval",
            "--checkpoint",
            str(out / "run"),
            "--retrieval",
            str(out / "final"),
            "--json",
            str(out / "run" / "metrics.json"),
        )
    from wit_pipeline.commands.curate import print_report

    print(f"\nfinal shards in {out / 'final'}; the run in {out / 'run'}")
    # Last, so the demo ends with the run's funnel in one line and the page that shows it all.
    print_report(str(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
