"""``effprof train`` and ``effprof evaluate``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from effprof import schema as S
from effprof.cli import app, console
from effprof.results import EffprofError, is_missing


def _options(**given: Any) -> dict[str, Any]:
    """Options the user actually set (None / unset flags are left to the config file or defaults)."""
    return {k: v for k, v in given.items() if v is not None}


def _range(option: str, text: str | None, kind: type, example: str) -> tuple[Any, Any] | None:
    """``LOW-HIGH`` (or one value) as a (low, high) pair of ``kind``; None when not given."""
    if text is None:
        return None
    low, _, high = text.partition("-")
    try:
        return kind(low), kind(high or low)
    except ValueError:
        raise EffprofError(f"{option} expects LOW-HIGH such as {example}, got {text!r}") from None


@app.command()
def train(
    model: str = typer.Option(None, help="registered name (mssnet) or package.module:callable"),
    variant: str = typer.Option(None, help="model variant, e.g. small | base | large"),
    steps: int = typer.Option(None, help="optimizer steps (default 1000)"),
    batch: int = typer.Option(None, help="crops per step (default 4)"),
    crop: int = typer.Option(
        None, help="crop side in pixels, a multiple of the model's input multiple (default 96)"
    ),
    lr: float = typer.Option(None, help="peak Adam learning rate (default 5e-4), cosine-decayed"),
    warmup_steps: int = typer.Option(None, help="linear warm-up steps (default 20)"),
    device: str = typer.Option(None, help="auto | cpu | cuda"),
    precision: str = typer.Option(
        None,
        help="fp32 | tf32 | bf16 (tf32: cuda only; bf16 autocast on cuda or a cpu with bf16 instructions)",
    ),
    channels_last: bool = typer.Option(
        None, "--channels-last/--no-channels-last", help="train in channels_last memory format"
    ),
    ema_decay: float = typer.Option(
        None, help="keep a moving average of the weights (e.g. 0.999); it is evaluated and saved"
    ),
    max_minutes: float = typer.Option(
        None, help="time budget: decay the learning rate by time and stop, saving, when spent"
    ),
    weights: str = typer.Option(None, help="start from these weights (file or shipped name)"),
    resume: str = typer.Option(None, help="continue from a checkpoint.pt of an earlier train run"),
    max_blur: float = typer.Option(None, help="longest blur trajectory in pixels (default 24)"),
    noise: float = typer.Option(
        None, help="largest noise standard deviation in [0, 1] units (default 0.01)"
    ),
    jpeg: str = typer.Option(None, help="JPEG quality range, e.g. 60-95 (default: no JPEG)"),
    zoom: str = typer.Option(
        None, help="rescale sharp crops by a factor in this range, e.g. 0.75-2 (default: 1-1, off)"
    ),
    curriculum_steps: int = typer.Option(
        None, help="ramp the longest blur up over this many steps"
    ),
    eval_every: int = typer.Option(
        None, help="evaluate on calibration crops every N steps (0: at the end)"
    ),
    checkpoint_every: int = typer.Option(
        None, help="save checkpoint.pt every N steps (0: at the end)"
    ),
    seed: int = typer.Option(None, help="data seed"),
    threads: int = typer.Option(None, help="torch intra-op threads"),
    test: bool = typer.Option(
        None, "--test/--no-test", help="evaluate on the held-out test set at the end"
    ),
    progress: str = typer.Option(None, help="auto | bar | lines | none"),
    out: str = typer.Option(None, help="run store root (default reports/)"),
    config: Path = typer.Option(
        None, help="YAML file of these options (configs/train-*.yaml); flags given here win"
    ),
) -> None:
    """Train a model on synthetic camera-shake blur; write a train run with the loss curve and weights."""
    from effprof.api.train import train as run_train
    from effprof.config import load_config, validate
    from effprof.config.train import TrainConfig

    given = _options(
        model=model, variant=variant, steps=steps, batch=batch, crop=crop, lr=lr,
        warmup_steps=warmup_steps, device=device, precision=precision, max_minutes=max_minutes,
        channels_last=channels_last, ema_decay=ema_decay,
        weights=weights, resume=resume, max_blur_px=max_blur, noise=noise, jpeg=_range("--jpeg", jpeg, int, "60-95"),
        zoom=_range("--zoom", zoom, float, "0.75-2"),
        curriculum_steps=curriculum_steps, eval_every=eval_every, checkpoint_every=checkpoint_every,
        seed=seed, threads=threads, test=test, progress=progress, out=out,
    )  # fmt: skip
    settings = (
        load_config(TrainConfig, config, given)
        if config
        else validate(TrainConfig, given, "options")
    )
    outcome = run_train(settings)
    m = outcome.metrics
    table = Table(title=f"trained {settings.model} {settings.variant or ''}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("steps", f"{m[S.STEPS_DONE]:,}")
    table.add_row("time", f"{m[S.TRAIN_S]:,.0f} s ({m[S.STEP_MEDIAN_S]:.3f} s/step)")
    table.add_row("final loss", f"{m[S.FINAL_LOSS]:.4f}")
    if S.TEST_PSNR in m:
        table.add_row(
            "test PSNR blurry -> model",
            f"{m[S.TEST_BLURRY_PSNR]:.2f} -> {m[S.TEST_PSNR]:.2f} dB",
        )
        table.add_row("test gain", f"{m[S.TEST_GAIN]:+.2f} dB")
        table.add_row(
            "test SSIM blurry -> model", f"{m[S.TEST_BLURRY_SSIM]:.4f} -> {m[S.TEST_SSIM]:.4f}"
        )
    console.print(table)
    for note in outcome.notes:
        console.print(f"note: {note}", markup=False, soft_wrap=True)
    console.print(f"run: {outcome.run_dir}", markup=False)


@app.command()
def evaluate(
    model: str = typer.Option(None, help="registered name (mssnet) or package.module:callable"),
    variant: str = typer.Option(None, help="model variant, e.g. small | base | large"),
    weights: str = typer.Option(
        None, help="checkpoint file, or a shipped name such as 'synthetic'"
    ),
    data: str = typer.Option(
        None, help="'synthetic' (held-out test crops) or a folder with blur/ and sharp/"
    ),
    count: int = typer.Option(None, help="synthetic test crops (default 24)"),
    size: int = typer.Option(None, help="synthetic test crop side in pixels (default 256)"),
    device: str = typer.Option(None, help="auto | cpu | cuda"),
    batch: int = typer.Option(None, help="images per forward when sizes match"),
    latency: bool = typer.Option(None, "--latency/--no-latency", help="also time the model"),
    repeat: int = typer.Option(None, help="timed forwards for latency"),
    threads: int = typer.Option(None, help="torch intra-op threads"),
    out: str = typer.Option(None, help="run store root (default reports/)"),
    config: Path = typer.Option(None, help="YAML file of these options; flags given here win"),
) -> None:
    """Score restoration quality (PSNR/SSIM vs sharp, gain over blurry) and latency; write a run."""
    from effprof.api.evaluate import evaluate as run_evaluate
    from effprof.config import load_config, validate
    from effprof.config.train import EvaluateConfig

    given = _options(
        model=model, variant=variant, weights=weights, data=data, count=count, size=size,
        device=device, batch=batch, latency=latency, repeat=repeat, threads=threads, out=out,
    )  # fmt: skip
    settings = (
        load_config(EvaluateConfig, config, given)
        if config
        else validate(EvaluateConfig, given, "options")
    )
    with console.status("evaluating"):
        outcome = run_evaluate(settings)
    m = outcome.metrics
    table = Table(
        title=f"{settings.model} {settings.variant or ''} weights={settings.weights} on {settings.data}"
    )
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row(S.IMAGES, f"{m[S.IMAGES]}")
    table.add_row("PSNR blurry -> model", f"{m[S.BLURRY_PSNR]:.2f} -> {m[S.PSNR]:.2f} dB")
    table.add_row("gain", f"{m[S.GAIN]:+.2f} dB")
    table.add_row("SSIM blurry -> model", f"{m[S.BLURRY_SSIM]:.4f} -> {m[S.SSIM]:.4f}")
    latency_ms = m.get(S.LATENCY.median_ms)
    table.add_row(
        "latency median", "missing" if is_missing(latency_ms) else f"{latency_ms:,.2f} ms"
    )
    console.print(table)
    for note in outcome.notes:
        console.print(f"note: {note}", markup=False, soft_wrap=True)
    console.print(f"run: {outcome.run_dir}", markup=False)
