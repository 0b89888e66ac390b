"""The evaluate job: a model's restoration quality (PSNR/SSIM vs sharp, gain over the blurry input)
on the held-out synthetic test set or a folder of real pairs, plus its latency; written as a run
(kind ``evaluate``) with a per-image table.

>>> outcome = evaluate(model="mssnet", weights="synthetic", device="cpu")  # doctest: +SKIP
>>> outcome.metrics["gain_db"]  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psutil
from torch import Tensor, nn

from effprof import schema as S
from effprof.api.given import job_options
from effprof.api.run import Run
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
from effprof.measure.finite import check_outputs
from effprof.measure.latency import LatencySpec, measure_latency
from effprof.measure.precision import num_threads
from effprof.models import (
    PadToMultiple,
    borrowed,
    check_variant,
    get_entry,
    load_state_dict_strict,
    load_subject,
    pad_to_multiple,
    padded_size,
    read_state_dict,
)
from effprof.models.weights_origin import (
    FILE,
    MODULE,
    RANDOM,
    WeightsOrigin,
    file_sha256,
    state_dict_sha256,
)
from effprof.results import EffprofError, Missing
from effprof.runs import RunWriter, check_writable, read_record
from effprof.training import EvalResult, evaluate_pairs

METRIC_NOTE = (
    f"PSNR/SSIM on RGB floats in [0, 1] (data range {DATA_RANGE:g}), model outputs clipped to [0, 1], "
    f"no border crop; PSNR capped at {PSNR_CAP_DB:g} dB; SSIM as scikit-image (Gaussian window, sigma 1.5)"
)


@dataclass(frozen=True, eq=False)
class EvaluateOutcome(Run):
    """A finished evaluation run (a :class:`~effprof.api.run.Run`) and its per-image quality."""

    quality: EvalResult | None = None


def _dataset(config: EvaluateConfig) -> tuple[Sequence[ImagePair] | FolderPairs, str]:
    """The pairs to score and a one-line description (folder problems raise before any work)."""
    if config.data == "synthetic":
        _check_memory(config.count, config.size)
        kernel = TEST_BLUR.kernel
        description = (
            f"synthetic held-out test set: {config.count} crops of {config.size} px from the test images, "
            f"seed {TEST_SEED}, camera-shake/linear blur {kernel.min_length_px:g}-{kernel.max_length_px:g} px, "
            f"noise sigma <= {TEST_BLUR.max_noise_sigma:g}, 8-bit"
        )
        return heldout_pairs(config.count, config.size), description
    pairs = FolderPairs.open(config.data)
    return pairs, f"folder {config.data!r}: {len(pairs)} blurry/sharp pairs"


def _check_memory(count: int, size: int) -> None:
    """The test crops are made at once: refuse a request that cannot fit in memory."""
    need = count * 3 * (size + 64) ** 2 * 4 * 3  # source, blurry and sharp crops in float32
    free = psutil.virtual_memory().available
    if need > free // 2:
        raise EffprofError(
            f"--count {count} crops of --size {size} px need about {need / 2**30:,.1f} GiB at once; "
            f"{free / 2**30:,.1f} GiB are free: ask for fewer or smaller crops"
        )


def _require_finite(model: nn.Module, x: Tensor) -> None:
    """Quality of NaN or infinite outputs means nothing: refuse, naming where they start."""
    check = check_outputs(model, lambda: ((x,), {}))
    if not isinstance(check, Missing) and not check.ok:
        raise EffprofError(f"cannot score quality: {check.describe()} (first image)")


def evaluate(
    model: nn.Module | str | EvaluateConfig | None = None, /, **options: Any
) -> EvaluateOutcome:
    """Score a model's restoration quality (PSNR/SSIM against sharp, gain over the blurry input)
    and latency; write a run. ``model`` is an ``nn.Module``, a registered name, a factory string
    or an :class:`EvaluateConfig`; ``options`` are the config's fields (``data="synthetic"``,
    ``count=24``...).

    >>> import torch
    >>> identity = torch.nn.Identity()  # returns the blurry input: a gain of 0 dB
    >>> run = evaluate(identity, count=2, size=16, repeat=2, warmup=0, out=tmp)
    >>> run.metrics["images"], round(run.metrics["gain_db"], 6)
    (2, 0.0)
    """
    data, module = job_options(model, options)
    config = validate(EvaluateConfig, data, "evaluate options")
    device = resolve_device(config.device)
    if module is not None:
        variant, multiple = None, 1
    else:
        variant = check_variant(config.model, config.variant)
        multiple = get_entry(config.model).input_multiple
    if config.weights == RANDOM and module is not None:
        raise EffprofError("--weights random re-initialises a registered model, not a module")
    pairs, description = _dataset(config)
    check_writable(config.out)

    lent = borrowed(module, device) if module is not None else contextlib.nullcontext()
    with num_threads(config.threads), lent as given:  # a caller's module is given back as it came
        env = collect_environment(device)  # inside: the record names the threads that measured
        if given is not None:
            model = given
            origin = WeightsOrigin(MODULE, type(model).__name__, state_dict_sha256(model))
            if config.weights is not None:  # into a copy: the caller's module keeps its weights
                model = copy.deepcopy(given)
                load_state_dict_strict(model, read_state_dict(config.weights), config.weights)
                origin = WeightsOrigin(FILE, config.weights, file_sha256(config.weights))
        else:
            subject = load_subject(config.model, variant, weights=config.weights, device=device)
            model, origin = subject.model, subject.weights
        _require_finite(model, pad_to_multiple(pairs[0].blurry[None].to(device), multiple)[0])
        quality = evaluate_pairs(model, pairs, device, multiple, config.batch)
        nan = quality.per_image.loc[quality.per_image["psnr_db"].isna(), "name"].tolist()
        if nan:
            raise EffprofError(
                f"cannot score quality: NaN outputs on {len(nan)} images ({nan[0]}, ...)"
            )
        first = quality.per_image.iloc[0]
        height, width = int(first["height"]), int(first["width"])
        latency: Any = Missing("latency not requested (--no-latency)")
        if config.latency:
            spec = LatencySpec(
                device=device, warmup=config.warmup, repeat=config.repeat, threads=config.threads
            )
            latency = measure_latency(PadToMultiple(model, multiple), (1, 3, height, width), spec)

    metrics: dict[str, Any] = dict(quality.summary())
    metrics[S.PARAM_COUNT] = sum(p.numel() for p in model.parameters())
    notes = [description, METRIC_NOTE]
    padded = padded_size(height, width, multiple)
    if isinstance(latency, Missing):
        metrics[S.LATENCY.median_ms] = latency
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
    assert origin is not None
    notes.insert(0, origin.note())
    params = {**config.model_dump(mode="json"), **origin.summary()}
    writer = RunWriter(config.out, "evaluate", config.model, variant, params=params).start()
    try:
        writer.add_table("images", quality.per_image)
        if not isinstance(latency, Missing):
            writer.add_table("latency", latency.to_frame())
        run_dir = writer.finish(metrics, env, notes)
    except BaseException:
        writer.abandon()
        raise
    return EvaluateOutcome(run_dir, read_record(run_dir), quality)


__all__ = ["EvaluateOutcome", "evaluate"]
