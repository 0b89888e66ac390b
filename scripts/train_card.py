"""Write the model card of weights trained by ``effprof train`` from its stored run (numbers are read,
never typed): ``python scripts/train_card.py RUN_DIR --command "scripts/train_weights.sh" > MODEL_CARD.md``.

RUN_DIR is the last run of a training; earlier phases are found through ``params.resume`` (a longer
cosine on the same optimizer) or ``params.weights`` pointing into a run folder (a new phase started
from those weights with a fresh optimizer).
"""

from __future__ import annotations

import argparse
import hashlib
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from effprof.data import CALIBRATION_IMAGES, TEST_BLUR, TEST_IMAGES, TEST_SEED, TRAIN_IMAGES
from effprof.results import EffprofError
from effprof.runs import read_record, read_table

BUCKETS_PX = (0.0, 8.0, 14.0, 1e9)  # exposed blur path length bins of the per-image table


def _parent(run_dir: Path) -> Path | None:
    params = read_record(run_dir).params
    source = params.get("resume") or params.get("weights")
    if source is None or not (Path(source).parent / "run.json").is_file():
        return None
    return Path(source).parent


def phases(run_dir: Path, earlier: list[Path]) -> list[Path]:
    """The run and the runs it resumed or started from, oldest first, after ``earlier``: phases
    the chain cannot reach (a resumed run whose first part was interrupted has no run.json)."""
    chain = [run_dir]
    while (parent := _parent(chain[0])) is not None:
        chain.insert(0, parent)
    return [*earlier, *chain]


def _start(p: dict, parent_known: bool) -> str:
    if p.get("resume"):
        return (
            "resuming the previous phase (same optimizer, longer cosine)"
            if parent_known
            else "resuming its own interrupted run (same optimizer and schedule; steps and time of "
            "both parts counted here)"
        )
    return (
        "from the previous phase's weights, fresh optimizer" if p.get("weights") else "from scratch"
    )


def phase_line(number: int, run_dir: Path, parent_known: bool) -> str:
    record = read_record(run_dir)
    p, m, env = record.params, record.metrics, record.env
    start = _start(p, parent_known)
    ema = (
        f", moving average of the weights (decay {p['ema_decay']:g}) evaluated and saved"
        if p.get("ema_decay")
        else ""
    )
    stopped = next(
        (n.removeprefix("stopped: ") for n in record.notes if n.startswith("stopped: ")), ""
    )
    budget = f" ({stopped})" if stopped.startswith("time budget") else ""
    zoom = p.get("zoom") or (1.0, 1.0)
    rescaled = f", rescaled x{zoom[0]:g}-{zoom[1]:g}" if tuple(zoom) != (1.0, 1.0) else ""
    return (
        f"{number}. `{run_dir.name}`: {start}; {m['steps_done']:,} steps{budget}, "
        f"{p.get('precision', 'fp32')}{' channels_last' if p.get('channels_last') else ''}{ema}; "
        f"peak lr {p['lr']:g} after {p['warmup_steps']} warm-up steps, cosine to {p['min_lr']:g}, "
        f"clip {p['grad_clip']}, crops {p['crop']} px x {p['batch']}{rescaled}, seed {p['seed']}; "
        f"{m['train_s'] / 60:,.1f} min on {_hardware(record)} at a median "
        f"{m['step_median_s']:.2f} s/step, git {_git(env)}; test gain "
        f"{m.get('test_gain_db', float('nan')):+.2f} dB."
    )


def _git(env: dict) -> str:
    commit = env.get("git_commit")
    return str(commit)[:12] if commit else "not recorded (no repository on that machine)"


def _hardware(record) -> str:
    env, p = record.env, record.params
    if env.get("device") == "cuda":
        return str(env.get("device_name"))
    threads = p.get("threads") or env.get("torch_threads")
    return f"the CPU ({env.get('cpu_model')}), {threads} thread(s)"


def by_blur(images: pd.DataFrame) -> str:
    if "blur_px" not in images:
        return ""
    labels = ["< 8 px", "8-14 px", ">= 14 px"]
    groups = images.groupby(
        pd.cut(images["blur_px"], BUCKETS_PX, right=False, labels=labels), observed=True
    )
    rows = [
        "| exposed blur length | crops | blurry PSNR dB | model PSNR dB | gain dB |",
        "|---|---|---|---|---|",
    ]
    for label, group in groups:
        rows.append(
            f"| {label} | {len(group)} | {group['blurry_psnr_db'].mean():.2f} | {group['psnr_db'].mean():.2f} "
            f"| {group['gain_db'].mean():+.2f} |"
        )
    return "\n".join(rows)


def validation(run_dir: Path) -> str:
    """The periodic validation of the last phase: where it ended and where it peaked."""
    try:
        evals = read_table(run_dir, "evals")
    except EffprofError:
        return "No periodic validation was stored."
    last, best = evals.iloc[-1], evals.loc[evals["eval_gain_db"].idxmax()]
    blurry = last["eval_psnr_db"] - last["eval_gain_db"]
    p = read_record(run_dir).params
    return (
        f"Periodic validation of the last phase ({p.get('eval_count')} crops of "
        f"{p.get('eval_size')} px from the calibration images, blurry PSNR {blurry:.2f} dB: "
        f"nearly sharp, smooth images): gain {last['eval_gain_db']:+.2f} dB "
        f"at step {int(last['step']):,}, best {best['eval_gain_db']:+.2f} dB at step {int(best['step']):,}."
    )


def card(
    run_dir: Path,
    command: str,
    weights: Path | None,
    note: str = "",
    earlier: Sequence[Path] = (),
    name: str = "synthetic",
) -> str:
    record = read_record(run_dir)
    m, p, env = record.metrics, record.params, record.env
    chain = phases(run_dir, earlier)
    records = [read_record(r) for r in chain]
    # a resumed run's steps and seconds include its parent's: count them once
    known = [
        bool(r.params.get("resume")) and i > 0 and _parent(chain[i]) == chain[i - 1]
        for i, r in enumerate(records)
    ]
    steps_total = sum(
        r.metrics["steps_done"] - (records[i - 1].metrics["steps_done"] if known[i] else 0)
        for i, r in enumerate(records)
    )
    own_seconds = [
        r.metrics["train_s"] - (records[i - 1].metrics["train_s"] if known[i] else 0.0)
        for i, r in enumerate(records)
    ]
    seconds_total = sum(own_seconds)
    images = read_table(run_dir, "test_images")
    digest = (
        hashlib.sha256(weights.read_bytes()).hexdigest()
        if weights
        else m.get("weights_fp16_sha256")
    )
    kernel = TEST_BLUR.kernel
    hours = seconds_total / 3600
    curriculum = (
        f"Curriculum: the longest blur ramps from 35% to 100% over the first {p['curriculum_steps']} steps."
        if p.get("curriculum_steps")
        else "No curriculum."
    )
    by_hardware: dict[str, float] = {}
    for r, own in zip(records, own_seconds, strict=True):
        by_hardware[_hardware(r)] = by_hardware.get(_hardware(r), 0.0) + own
    hardware = "; ".join(f"{s / 60:,.1f} min on {h}" for h, s in by_hardware.items())
    return f"""# MSSNet-small weights trained by effprof on synthetic blur

`load_model("mssnet", "small", weights="{name}")` / `effprof evaluate --model mssnet --weights {name}`.
A state dict of {m["param_count"]:,} parameters stored in fp16 (sha256 `{digest}`), trained from
scratch by effprof; not the authors' checkpoint. Quality numbers measured with it are about
synthetic camera-shake blur on a handful of images, not GoPro or RealBlur.

## Result on the held-out synthetic test set

{m["test_images"]} crops of 256x256 from the test images ({", ".join(TEST_IMAGES)}), seed {TEST_SEED},
blur as in training (below). PSNR/SSIM on RGB in [0, 1] (data range 1), outputs clipped to [0, 1],
no border crop; SSIM as scikit-image (Gaussian window, sigma 1.5).

| | PSNR dB | SSIM |
|---|---|---|
| blurry input | {m["test_blurry_psnr_db"]:.2f} | {m["test_blurry_ssim"]:.4f} |
| MSSNet-small (these weights, fp32 at evaluation) | {m["test_psnr_db"]:.2f} | {m["test_ssim"]:.4f} |
| gain | **{m["test_gain_db"]:+.2f}** | {m["test_ssim_gain"]:+.4f} |

{validation(run_dir)}

By blur length (per-crop means):

{by_blur(images)}

## Data

* Sharp images: only those bundled inside scikit-image (no download), split by source image and
  never mixed: train ({len(TRAIN_IMAGES)}) {", ".join(TRAIN_IMAGES)}; calibration (for compression,
  also the periodic validation during training) {", ".join(CALIBRATION_IMAGES)}; test
  {", ".join(TEST_IMAGES)}. Gray images repeated on RGB, RGBA composited on white.
* Training crops: size and batch per phase (below), random flips and 90-degree rotations;
  images sampled in proportion to their area capped at 512x512; small images mirror-padded.
  Where a phase says "rescaled", each sharp crop was first resized by a factor drawn
  log-uniformly from that range (antialiased bilinear; > 1 enlarges), before it was blurred.
* Blur: camera-shake trajectories (Boracchi & Foi-style random walk with inertia, centripetal pull
  and abrupt shakes, exposure fraction 0.5-1) and {kernel.linear_fraction:.0%} straight lines, path
  length {p["min_blur_px"]:g}-{p["max_blur_px"]:g} px, kernels centred on their centroid and summing to
  1, applied as a true convolution (FFT) to a larger source crop; Gaussian noise sigma uniform in
  [0, {p["noise"]:g}]; 8-bit rounding; {"JPEG " + str(p["jpeg"]) if p.get("jpeg") else "no JPEG"}.
  {curriculum}

## Training

* Loss: the paper's, L1 + 0.1 x L1 of the 2-D FFT, summed over MSSNet's six outputs against the
  sharp target (half resolution for res1_1, bilinear, align_corners=True as the official trainer).
* Adam (0.9, 0.999) with linear warm-up and cosine decay, gradient-norm clipping, PyTorch's default
  initialisation. Phases:

{chr(10).join("  " + phase_line(i + 1, r, known[i]) for i, r in enumerate(chain))}

{note}
* In all: {steps_total:,} steps, {seconds_total:,.0f} s ({hours:.1f} h) of training: {hardware}
  (the CPU was shared with other jobs).
* Software of the last phase: torch {env.get("torch_version")}, effprof source at git {_git(env)}.

## Reproduce

```
{command}
```

The run folder holds the loss curve (`loss.parquet`), periodic validation (`evals.parquet`), the
per-crop test table (`test_images.parquet`), the official-format checkpoint and the fp16 weights.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--command", default="scripts/train_weights.sh")
    parser.add_argument(
        "--weights", type=Path, default=None, help="the shipped file, for its sha256"
    )
    parser.add_argument("--note", default="", help="a remark added under the phases")
    parser.add_argument("--name", default="synthetic", help="the shipped weights name")
    parser.add_argument(
        "--earlier", type=Path, action="append", default=[], help="an earlier phase's run folder"
    )
    args = parser.parse_args()
    note = f"* {args.note}\n" if args.note else ""
    print(card(args.run_dir, args.command, args.weights, note, args.earlier, args.name), end="")


if __name__ == "__main__":
    main()
