"""The evaluate job: a model's restoration quality (PSNR/SSIM vs sharp, gain over the blurry input)
on the held-out synthetic test set or a folder of real pairs, plus its latency; written as a run
(kind ``evaluate``) with a per-image table.

>>> outcome = evaluate(model="mssnet", weights="synthetic", device="cpu")  # doctest: +SKIP
>>> outcome.metrics["gain_db"]  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from effprof.api.train import sha256_of
from effprof.config import validate
from effprof.config.train import EvaluateConfig
from effprof.data import (
    DATA_RANGE,
    PSNR_CAP_DB,
    TEST_BLUR,
    TEST_SEED,
    FolderPairs,
    ImagePair,
    heldout_pairs,
)
from effprof.measure.environment import collect_environment, resolve_device
from effprof.measure.latency import LatencySpec, measure_latency
from effprof.measure.precision import num_threads
from effprof.models import (
    PadToMultiple,
    check_variant,
    get_entry,
    load_model,
    padded_size,
    resolve_weights,
)
from effprof.results import Missing
from effprof.runs import RunWriter, check_writable
from effprof.train import EvalResult, evaluate_pairs

METRIC_NOTE = (
    f"PSNR/SSIM on RGB floats in [0, 1] (data range {DATA_RANGE:g}), model outputs clipped to [0, 1], "
    f"no border crop; PSNR capped at {PSNR_CAP_DB:g} dB; SSIM as scikit-image (Gaussian window, sigma 1.5)"
)


@dataclass
class EvaluateOutcome:
    """A finished evaluation run: where it is stored, its metrics and the per-image quality."""

    run_dir: Path
    metrics: dict[str, Any]
    quality: EvalResult
    notes: list[str] = field(default_factory=list)


def _dataset(config: EvaluateConfig) -> tuple[Sequence[ImagePair] | FolderPairs, str]:
    """The pairs to score and a one-line description (folder problems raise before any work)."""
    if config.data == "synthetic":
        kernel = TEST_BLUR.kernel
        description = (
            f"synthetic held-out test set: {config.count} crops of {config.size} px from the test images, "
            f"seed {TEST_SEED}, camera-shake/linear blur {kernel.min_length_px:g}-{kernel.max_length_px:g} px, "
            f"noise sigma <= {TEST_BLUR.max_noise_sigma:g}, 8-bit"
        )
        return heldout_pairs(config.count, config.size), description
    pairs = FolderPairs.open(config.data)
    return pairs, f"folder {config.data!r}: {len(pairs)} blurry/sharp pairs"


def evaluate(config: EvaluateConfig | None = None, /, **options: Any) -> EvaluateOutcome:
    """Score a model's restoration quality and latency per ``config`` (or keyword options); write a run."""
    data = {**(config.model_dump() if config else {}), **options}
    config = validate(EvaluateConfig, data, "evaluate options")
    variant = check_variant(config.model, config.variant)
    device = resolve_device(config.device)
    entry = get_entry(config.model)
    multiple = entry.input_multiple
    weights_path = (
        resolve_weights(config.model, variant, config.weights) if config.weights else None
    )
    pairs, description = _dataset(config)
    check_writable(config.out)

    with num_threads(config.threads):
        env = collect_environment(device)  # inside: the record names the threads that measured
        model = load_model(config.model, variant, weights=config.weights, device=device)
        quality = evaluate_pairs(model, pairs, device, multiple, config.batch)
        first = quality.per_image.iloc[0]
        height, width = int(first["height"]), int(first["width"])
        latency: Any = Missing("latency not requested (--no-latency)")
        if config.latency:
            spec = LatencySpec(
                device=device, warmup=config.warmup, repeat=config.repeat, threads=config.threads
            )
            latency = measure_latency(PadToMultiple(model, multiple), (1, 3, height, width), spec)

    metrics: dict[str, Any] = dict(quality.summary())
    metrics["param_count"] = sum(p.numel() for p in model.parameters())
    notes = [description, METRIC_NOTE]
    padded = padded_size(height, width, multiple)
    if isinstance(latency, Missing):
        metrics["latency_median_ms"] = latency
    else:
        metrics.update(latency.summary())
        pad_note = (
            f", reflect-padded to {padded[0]}x{padded[1]} and cropped back"
            if padded != (height, width)
            else ""
        )
        notes.append(
            f"latency: batch 1 at {height}x{width} (the first image){pad_note}, {latency.timer}"
        )
    if weights_path is not None:
        metrics["weights_sha256"] = sha256_of(weights_path)
    else:
        notes.append(
            "no weights given: the model is randomly initialised, quality numbers are meaningless"
        )

    params = config.model_dump(mode="json")
    params["weights_path"] = str(weights_path) if weights_path is not None else None
    writer = RunWriter(config.out, "evaluate", config.model, variant, params=params).start()
    try:
        writer.add_table("images", quality.per_image)
        if not isinstance(latency, Missing):
            writer.add_table("latency", latency.to_frame())
        run_dir = writer.finish(metrics, env, notes)
    except BaseException:
        writer.abandon()
        raise
    return EvaluateOutcome(run_dir, metrics, quality, notes)


__all__ = ["EvaluateOutcome", "evaluate"]
