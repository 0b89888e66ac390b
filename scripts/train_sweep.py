"""Compare training recipes for MSSNet on synthetic blur (how the shipped recipe was chosen).

Each recipe trains a fresh network and is scored on validation crops cut from the calibration
images (never the test images: the held-out test set only reports the final model). Prints one
line per evaluation and writes ``sweep.csv``. Uses effprof's data and training layers directly
(no run store), so it runs wherever torch and scikit-image are installed:

    PYTHONPATH=src python scripts/train_sweep.py --device cuda --recipes base,lr1e3,noinit --out /tmp/sweep
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from effprof.data import BlurSpec, KernelSpec, SyntheticBlur, SyntheticSpec, synthetic_pairs
from effprof.models import build_model, get_entry
from effprof.training import PlainLines, TrainSpec, evaluate_pairs, train


@dataclass(frozen=True)
class Recipe:
    steps: int = 1000
    batch: int = 4
    crop: int = 96
    lr: float = 5e-4
    warmup: int = 20
    zero_tail: bool = True
    max_blur: float = 24.0
    curriculum: int = 0
    precision: str = "fp32"
    grad_clip: float | None = None


BASE = Recipe()
CLIPPED = Recipe(lr=3e-4, grad_clip=5.0)
RECIPES = {
    "base": BASE,
    "clip3e4": CLIPPED,
    "clip3e4b8c64": replace(CLIPPED, batch=8, crop=64),
    "clip3e4noinit": replace(CLIPPED, zero_tail=False),  # configs/train-mssnet-small-cpu.yaml
    "lr1e3": replace(BASE, lr=1e-3),
    "lr2e4": replace(BASE, lr=2e-4),
    "noinit": replace(BASE, zero_tail=False),
    "crop64b8": replace(BASE, crop=64, batch=8),
    "crop128b2": replace(BASE, crop=128, batch=2),
    "curric": replace(BASE, curriculum=500),
    "long": replace(BASE, steps=3000),
    # configs/train-mssnet-small-cuda.yaml (bf16 autocast diverged on an H200; tf32 trains)
    "gpu": Recipe(
        steps=100_000,
        batch=16,
        crop=192,
        lr=4e-4,
        warmup=300,
        precision="tf32",
        grad_clip=5.0,
        zero_tail=False,
    ),
}


def run(
    name: str, recipe: Recipe, device: str, minutes: float | None, log: PlainLines
) -> list[dict]:
    torch.manual_seed(0)
    model = build_model("mssnet", "small")
    if recipe.zero_tail:
        get_entry("mssnet").start_as_identity(model)  # the entry's hook: zeroed output heads
    model = model.to(device)
    blur = BlurSpec(kernel=KernelSpec(max_length_px=recipe.max_blur))
    spec = SyntheticSpec(
        crop_px=recipe.crop, batch=recipe.batch, blur=blur, curriculum_steps=recipe.curriculum
    )
    source = SyntheticBlur.load(spec, device)
    validation = synthetic_pairs("calibration", 24, 256, seed=7)

    def evaluate(net: nn.Module) -> dict[str, float]:
        summary = evaluate_pairs(net, validation, device, 16, batch=8).summary()
        return {"psnr_db": summary["psnr_db"], "gain_db": summary["gain_db"]}

    every = max(recipe.steps // 4, 1) if minutes is None else 1000
    train_spec = TrainSpec(
        steps=recipe.steps,
        lr=recipe.lr,
        warmup_steps=recipe.warmup,
        grad_clip=recipe.grad_clip,
        eval_every=every,
        log_every=50,
        precision=recipe.precision,  # type: ignore[arg-type]
        time_budget_s=minutes * 60 if minutes else None,
    )
    started = time.perf_counter()
    result = train(model, source, train_spec, evaluate=evaluate, progress=log)
    rows = result.evals.assign(
        recipe=name, seconds=time.perf_counter() - started, **recipe.__dict__
    )
    step_s = float(result.history["step_s"].median())
    print(
        f"{name}: {result.steps_done} steps, {step_s * 1e3:.1f} ms/step, final {rows.iloc[-1].to_dict()}",
        flush=True,
    )
    return rows.assign(step_s=step_s).to_dict("records")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--recipes", default="base,lr1e3,noinit", help=f"comma list of {', '.join(RECIPES)}"
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=None, help="override every recipe's steps")
    parser.add_argument("--minutes", type=float, default=None, help="time budget per recipe")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=Path("."))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows: list[dict] = []
    log = PlainLines()
    for name in args.recipes.split(","):
        recipe = RECIPES[name] if args.steps is None else replace(RECIPES[name], steps=args.steps)
        rows += run(name, recipe, args.device, args.minutes, log)
        args.out.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows).to_csv(args.out / "sweep.csv", index=False)


if __name__ == "__main__":
    main()
