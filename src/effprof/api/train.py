"""The train job: build a model, train it on synthetic blur, evaluate it on the held-out test set,
and write a run (kind ``train``) with the loss curve, the checkpoint and fp16 weights.

>>> outcome = train(model="mssnet", variant="small", steps=200, device="cpu")  # doctest: +SKIP
>>> outcome.metrics["test_gain_db"]  # doctest: +SKIP
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from effprof import schema as S
from effprof.api.given import job_options
from effprof.api.run import Run
from effprof.config import validate
from effprof.config.train import TrainConfig
from effprof.data import (
    TEST_SEED,
    BlurSpec,
    KernelSpec,
    SyntheticBlur,
    SyntheticSpec,
    heldout_pairs,
    synthetic_pairs,
)
from effprof.measure.environment import collect_environment, resolve_device
from effprof.measure.precision import num_threads
from effprof.models import (
    ModelEntry,
    build_model,
    check_variant,
    get_entry,
    load_state_dict_strict,
    module_entry,
    read_state_dict,
    resolve_weights,
    weights_origin,
)
from effprof.models.weights_origin import (
    MODULE,
    RANDOM,
    WeightsOrigin,
    file_sha256,
    state_dict_sha256,
)
from effprof.results import EffprofError
from effprof.runs import RunWriter, check_writable, read_record
from effprof.training import (
    EvalResult,
    PlainLines,
    Progress,
    ReconstructionLoss,
    RichBar,
    Silent,
    TrainResult,
    TrainSpec,
    evaluate_pairs,
)
from effprof.training import train as train_loop
from effprof.training.loop import check_resumable, read_training_checkpoint

EVAL_SEED = 7  # the periodic-evaluation crops (calibration images), distinct from TEST_SEED
CHECKPOINT_FILE = "checkpoint.pt"
WEIGHTS_FILE = "weights-fp16.pt"


@dataclass(frozen=True, eq=False)
class TrainOutcome(Run):
    """A finished training run (a :class:`~effprof.api.run.Run`), the loop's result and the
    held-out test evaluation (None when ``test=False``)."""

    result: TrainResult | None = None
    test: EvalResult | None = None


def blur_spec(config: TrainConfig) -> BlurSpec:
    """The training blur described by a config."""
    kernel = KernelSpec(
        min_length_px=config.min_blur_px,
        max_length_px=config.max_blur_px,
        linear_fraction=config.linear_fraction,
    )
    return BlurSpec(kernel=kernel, max_noise_sigma=config.noise, jpeg_quality=config.jpeg)


def _progress(mode: str) -> Progress:
    if mode == "auto":
        mode = "bar" if sys.stderr.isatty() else "lines"
    return {"bar": RichBar, "lines": PlainLines, "none": Silent}[mode]()


def _check(config: TrainConfig, module: nn.Module | None) -> tuple[str, str | None, ModelEntry]:
    """Everything that can be wrong with the input, checked before anything is written."""
    if module is not None:
        variant, entry = None, module_entry(module)
    else:
        variant = check_variant(config.model, config.variant)
        entry = get_entry(config.model)
    device = resolve_device(config.device)
    if config.precision == "tf32" and device != "cuda":
        raise EffprofError("--precision tf32 needs --device cuda")
    multiple = entry.input_multiple
    for name, size in (
        ("crop", config.crop),
        ("eval_size", config.eval_size),
        ("test_size", config.test_size),
    ):
        if size % multiple:
            raise EffprofError(
                f"--{name.replace('_', '-')} {size} must be a multiple of {multiple} for {config.model}"
            )
    if config.resume is not None and not Path(config.resume).is_file():
        raise EffprofError(f"--resume {config.resume!r} does not exist or is not a file")
    if config.zero_tail and config.weights in (None, RANDOM) and entry.start_as_identity is None:
        raise EffprofError(
            f"--zero-tail: {config.model} declares no way to start as the identity (its registry "
            "entry's start_as_identity)"
        )
    check_writable(config.out)
    return device, variant, entry


def train(model: nn.Module | str | TrainConfig | None = None, /, **options: Any) -> TrainOutcome:
    """Train a model on synthetic blur and write a train run; ``model`` is an ``nn.Module``
    (trained in place), a registered name, a factory string or a :class:`TrainConfig`;
    ``options`` are the config's fields (``steps=200``, ``crop=64``...).

    >>> import torch
    >>> net = torch.nn.Conv2d(3, 3, 3, padding=1)
    >>> run = train(net, steps=2, crop=16, batch=1, eval_every=0, test_count=1, test_size=16,
    ...             eval_count=1, eval_size=16, out=tmp, progress="none")
    >>> run.kind, run.metrics["steps_done"], run.metrics["test_images"]
    ('train', 2, 1)
    """
    data, module = job_options(model, options)
    config = validate(TrainConfig, data, "train options")
    device, variant, entry = _check(config, module)
    name = config.model
    multiple = entry.input_multiple
    if module is not None:
        model = module
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)  # the initial weights are part of the recipe too
            model = build_model(name, variant)
    notes: list[str] = []
    wanted = config.weights if config.weights != RANDOM else None
    path = None
    if wanted is not None:
        path = resolve_weights(name, variant, wanted) if module is None else Path(wanted)
        load_state_dict_strict(model, read_state_dict(path), wanted)
    origin = (
        weights_origin(entry, wanted, path, model, seed=config.seed)
        if module is None or path is not None
        else WeightsOrigin(MODULE, type(model).__name__, state_dict_sha256(model))
    )
    notes.append(f"weights: started from {origin.describe()}")
    if (
        wanted is None
        and config.zero_tail
        and config.resume is None
        and entry.start_as_identity is not None
    ):
        zeroed = entry.start_as_identity(model)
        notes.append(
            f"zero-initialised {zeroed} output-head convolutions: the untrained network returns its input"
        )
    resume = None  # read and checked before anything is written
    if config.resume is not None:
        resume = read_training_checkpoint(config.resume)
        check_resumable(model, resume, config.resume)
        notes.append(f"resumed from {config.resume!r} at step {resume['all_step']}")
    model = model.to(device)

    spec = SyntheticSpec(
        split="train",
        crop_px=config.crop,
        batch=config.batch,
        blur=blur_spec(config),
        seed=config.seed,
        curriculum_steps=config.curriculum_steps,
        zoom=config.zoom,
    )
    loop_spec = TrainSpec(
        steps=config.steps,
        lr=config.lr,
        min_lr=config.min_lr,
        warmup_steps=config.warmup_steps,
        grad_clip=config.grad_clip,
        eval_every=config.eval_every,
        checkpoint_every=config.checkpoint_every,
        log_every=config.log_every,
        precision=config.precision,
        channels_last=config.channels_last,
        time_budget_s=config.max_minutes * 60 if config.max_minutes else None,
        ema_decay=config.ema_decay,
    )
    params = {**config.model_dump(mode="json"), **origin.summary()}  # where it started
    writer = RunWriter(config.out, "train", name, variant, params=params)
    with num_threads(config.threads):
        source = SyntheticBlur.load(spec, device)
        validation = synthetic_pairs(
            "calibration", config.eval_count, config.eval_size, EVAL_SEED, spec.blur
        )

        def evaluate(net: nn.Module) -> dict[str, float]:
            summary = evaluate_pairs(net, validation, device, multiple).summary()
            return {"psnr_db": summary["psnr_db"], "gain_db": summary["gain_db"]}

        env = collect_environment(device)  # at the start: the code and threads that train
        writer.start()
        try:
            result = train_loop(
                model,
                source,
                loop_spec,
                loss_fn=ReconstructionLoss(forward_kwargs=entry.forward_all_kwargs()),
                evaluate=evaluate,
                checkpoint=writer.keep_for_resume(CHECKPOINT_FILE),
                resume=resume,
                progress=_progress(config.progress),
            )
            test = None
            if config.test:
                test = evaluate_pairs(
                    model, heldout_pairs(config.test_count, config.test_size), device, multiple
                )
                writer.add_table("test_images", test.per_image)
        except BaseException:
            if not writer.file_path(CHECKPOINT_FILE).is_file():
                writer.abandon()
            raise
        weights_path = writer.file_path(WEIGHTS_FILE)
        torch.save(
            {k: v.detach().to("cpu", torch.float16) for k, v in model.state_dict().items()},
            weights_path,
        )
        writer.add_table("loss", result.history)
        if not result.evals.empty:
            writer.add_table("evals", result.evals)

    metrics = _metrics(model, result, test)
    metrics[S.WEIGHTS_FP16_SHA256] = file_sha256(weights_path)
    notes += [
        f"stopped: {result.stopped} after {result.steps_done} steps",
        f"data: synthetic, train split ({len(source.names)} scikit-image images), seed {config.seed}",
        f"periodic evaluation: {config.eval_count} crops of {config.eval_size} px from the calibration images, seed {EVAL_SEED}",
    ]
    if test is not None:
        notes.append(
            f"test: {config.test_count} crops of {config.test_size} px from the held-out test images, seed {TEST_SEED}"
        )
    run_dir = writer.finish(metrics, env, notes)
    return TrainOutcome(run_dir, read_record(run_dir), result, test)


def _metrics(model: nn.Module, result: TrainResult, test: EvalResult | None) -> dict[str, Any]:
    history = result.history
    metrics: dict[str, Any] = {
        S.PARAM_COUNT: sum(p.numel() for p in model.parameters()),
        S.STEPS_DONE: result.steps_done,
        S.TRAIN_S: result.seconds,
        S.FINAL_LOSS: float(history["loss"].iloc[-1]) if not history.empty else None,
        S.STEP_MEDIAN_S: float(history["step_s"].median()) if not history.empty else None,
    }
    if test is not None:
        metrics.update({S.HELD_OUT[k]: v for k, v in test.summary().items()})
    return metrics


__all__ = ["TrainOutcome", "train"]
