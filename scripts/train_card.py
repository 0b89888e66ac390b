"""Write the model card of weights trained by ``effprof train`` from its stored run (numbers are read,
never typed): ``python scripts/train_card.py RUN_DIR --command "scripts/train_weights.sh" > MODEL_CARD.md``.

RUN_DIR is the last run of a training; earlier phases are found through ``params.resume``.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import pandas as pd

from effprof.data import CALIBRATION_IMAGES, TEST_BLUR, TEST_IMAGES, TEST_SEED, TRAIN_IMAGES
from effprof.runs import read_record, read_table

BUCKETS_PX = (0.0, 8.0, 14.0, 1e9)  # exposed blur path length bins of the per-image table


def phases(run_dir: Path) -> list[Path]:
    """The run and the runs it resumed from, oldest first."""
    chain = [run_dir]
    while (resume := read_record(chain[0]).params.get("resume")) is not None:
        chain.insert(0, Path(resume).parent)
    return chain


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


def card(run_dir: Path, command: str, weights: Path | None) -> str:
    record = read_record(run_dir)
    m, p, env = record.metrics, record.params, record.env
    chain = phases(run_dir)
    steps = [read_record(r).params["steps"] for r in chain]
    images = read_table(run_dir, "test_images")
    digest = (
        hashlib.sha256(weights.read_bytes()).hexdigest()
        if weights
        else m.get("weights_fp16_sha256")
    )
    kernel = TEST_BLUR.kernel
    hours = m["train_s"] / 3600
    curriculum = (
        f"Curriculum: the longest blur ramps from 35% to 100% over the first {p['curriculum_steps']} steps."
        if p.get("curriculum_steps")
        else "No curriculum."
    )
    hardware = f"{env.get('device_name')} ({env.get('device')}), {p.get('threads') or env.get('torch_threads')} torch thread(s)"
    return f"""# MSSNet-small weights trained by effprof on synthetic blur

`load_model("mssnet", "small", weights="synthetic")` / `effprof evaluate --model mssnet --weights synthetic`.
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

By blur length (per-crop means):

{by_blur(images)}

## Data

* Sharp images: only those bundled inside scikit-image (no download), split by source image and
  never mixed: train ({len(TRAIN_IMAGES)}) {", ".join(TRAIN_IMAGES)}; calibration (for compression,
  also the periodic validation during training) {", ".join(CALIBRATION_IMAGES)}; test
  {", ".join(TEST_IMAGES)}. Gray images repeated on RGB, RGBA composited on white.
* Training crops: {p["crop"]}x{p["crop"]}, batch {p["batch"]}, random flips and 90-degree rotations;
  images sampled in proportion to their area capped at 512x512; small images mirror-padded.
* Blur: camera-shake trajectories (Boracchi & Foi-style random walk with inertia, centripetal pull
  and abrupt shakes, exposure fraction 0.5-1) and {kernel.linear_fraction:.0%} straight lines, path
  length {p["min_blur_px"]:g}-{p["max_blur_px"]:g} px, kernels centred on their centroid and summing to
  1, applied as a true convolution (FFT) to a larger source crop; Gaussian noise sigma uniform in
  [0, {p["noise"]:g}]; 8-bit rounding; {"JPEG " + str(p["jpeg"]) if p.get("jpeg") else "no JPEG"}.
  {curriculum}

## Training

* Loss: the paper's, L1 + 0.1 x L1 of the 2-D FFT, summed over MSSNet's six outputs against the
  sharp target (half resolution for res1_1, bilinear, align_corners=True as the official trainer).
* Adam (0.9, 0.999), peak learning rate {p["lr"]:g} after {p["warmup_steps"]} warm-up steps, cosine
  decay to {p["min_lr"]:g}, gradient-norm clip {p["grad_clip"]}, fp32, PyTorch's default initialisation, seed {p["seed"]}.
* Phases (total steps; each later phase resumes the previous checkpoint with a longer cosine):
  {" -> ".join(str(s) for s in steps)}; {m["steps_done"]:,} steps in all.
* Time: {m["train_s"]:,.0f} s ({hours:.1f} h) of training on {hardware}, on a CPU shared with other
  jobs (median {m["step_median_s"]:.2f} s per step in the last phase).
* Software: torch {env.get("torch_version")}, effprof {env.get("effprof_version")} at git
  {str(env.get("git_commit"))[:12]}.

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
    args = parser.parse_args()
    print(card(args.run_dir, args.command, args.weights), end="")


if __name__ == "__main__":
    main()
