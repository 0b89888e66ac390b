"""The training loop: Adam, warm-up + cosine decay, periodic evaluation, resumable checkpoints.

It knows nothing about MSSNet or synthetic data: it takes a model, a batch source
``batches(step) -> (blurry, sharp)``, a loss ``loss_fn(model, blurry, sharp) -> Tensor`` and an
optional ``evaluate(model) -> {name: float}``. Compression's recovery step reuses it with a
distillation term (``ReconstructionLoss(extra=...)``).

Checkpoints use the official MSSNet trainers' format — a dict with ``model_state_dict``,
``optimizer_state_dict``, ``epoch`` and ``all_step`` — plus ``effprof_train`` (the loss history
and seconds trained, plain lists and numbers, so ``torch.load(weights_only=True)`` reads it).
Synthetic data has no epochs: ``epoch`` counts ``STEPS_PER_EPOCH`` steps.

With ``ema_decay`` the loop also keeps an exponential moving average of the weights (Polyak
averaging, ``torch.optim.swa_utils``): evaluations score the average, the trained model handed
back is the average, and a checkpoint stores it as ``model_state_dict`` (what a user loads) with
the raw weights under ``train_state_dict`` so ``resume`` continues exactly.

The learning rate is a function of progress p = step / steps, or, with a time budget, of
max(step / steps, seconds / budget): a time-boxed run still decays to ``min_lr`` and stops cleanly
at the budget, saving its checkpoint.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from effprof.backends import backend_flags
from effprof.models import state_dict_mismatch
from effprof.results import EffprofError
from effprof.training.losses import LossFn, ReconstructionLoss
from effprof.training.progress import Progress, Silent

BatchSource = Callable[[int], tuple[Tensor, Tensor]]
Evaluator = Callable[[nn.Module], dict[str, float]]
TrainPrecision = Literal["fp32", "tf32", "bf16"]
STEPS_PER_EPOCH = 1000
HISTORY_KEY = "effprof_train"
RAW_KEY = "train_state_dict"


@dataclass(frozen=True)
class TrainSpec:
    """How to train: ``steps`` Adam steps at peak ``lr`` after ``warmup_steps`` of linear warm-up,
    cosine-decayed to ``min_lr``; evaluation every ``eval_every`` steps and a checkpoint every
    ``checkpoint_every`` (0 = only at the end); ``time_budget_s`` stops the run gracefully;
    ``ema_decay`` (e.g. 0.999) keeps a moving average of the weights, 0 = off."""

    steps: int
    lr: float = 5e-4
    min_lr: float = 1e-6
    warmup_steps: int = 0
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    grad_clip: float | None = None
    eval_every: int = 0
    checkpoint_every: int = 0
    log_every: int = 10
    precision: TrainPrecision = "fp32"
    channels_last: bool = False
    time_budget_s: float | None = None
    ema_decay: float = 0.0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.lr <= 0 or self.min_lr < 0 or self.log_every < 1:
            raise ValueError("steps and log_every must be >= 1, lr > 0 and min_lr >= 0")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")


@dataclass
class TrainResult:
    """What a training run did: the loss curve (``history``: one row per ``log_every`` steps),
    evaluations (``evals``), the steps done, why it stopped and the seconds spent training."""

    history: pd.DataFrame
    evals: pd.DataFrame
    steps_done: int
    stopped: str
    seconds: float
    checkpoint: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def lr_at(spec: TrainSpec, step: int, progress: float) -> float:
    """Learning rate at ``step`` (linear warm-up) and schedule ``progress`` in [0, 1] (cosine)."""
    if step < spec.warmup_steps:
        return spec.lr * (step + 1) / spec.warmup_steps
    p = min(max(progress, 0.0), 1.0)
    return spec.min_lr + (spec.lr - spec.min_lr) * 0.5 * (1.0 + math.cos(math.pi * p))


@contextlib.contextmanager
def precision_context(precision: TrainPrecision, device: torch.device) -> Iterator[None]:
    """The backend flags measurement uses (:func:`effprof.backends.backend_flags`), plus bf16
    autocast, for the duration of training; every flag restored after.

    ``fp32`` is true fp32 (TF32 off, as when measuring); ``tf32`` allows TF32 for convolutions and
    matmuls; ``bf16`` autocasts to bf16 and allows TF32 for the ops autocast keeps in fp32.
    cudnn.benchmark is on for cuda.
    """
    flags = "tf32" if precision in ("tf32", "bf16") else "fp32"
    with backend_flags(flags, device.type, cudnn_benchmark=device.type == "cuda"):
        if precision == "bf16":
            # One autocast region spans the whole loop, so its weight cache must be off: cached
            # bf16 copies of the parameters would otherwise never see the optimizer's updates.
            with torch.autocast(device.type, dtype=torch.bfloat16, cache_enabled=False):
                yield
        else:
            yield


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    step: int,
    extra: dict[str, Any] | None = None,
    average: nn.Module | None = None,
) -> Path:
    """Write an official-format checkpoint atomically (temporary file, then rename).

    With a weight ``average`` its weights are the ``model_state_dict`` and ``model``'s raw weights
    go under ``train_state_dict`` (read back by :func:`load_checkpoint`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "model_state_dict": (model if average is None else average).state_dict(),
        "optimizer_state_dict": optimizer.state_dict() if optimizer is not None else {},
        "epoch": step // STEPS_PER_EPOCH,
        "all_step": step,
    }
    if average is not None:
        state[RAW_KEY] = model.state_dict()
    if extra:
        state[HISTORY_KEY] = extra
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


RESUME_NEEDS = (
    "--resume needs a checkpoint.pt written by `effprof train` (model_state_dict, "
    "optimizer_state_dict and all_step)"
)


def _load_reason(err: Exception) -> str:
    """Why torch.load refused a file, in a few words (its weights-only errors are paragraphs)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    code = [line for line in lines if "GLOBAL" in line or "Unsupported global" in line]
    if code:
        return f"refused to unpickle it: it names code to run ({code[0][:100]})"
    telling = [line for line in lines if "Unsupported" in line or "error:" in line.lower()]
    text = (telling or lines or [type(err).__name__])[-1]
    return text if telling else f"{type(err).__name__}: {text[:100]}"


def read_training_checkpoint(path: str | Path) -> dict[str, Any]:
    """A training checkpoint to resume from (``torch.load(weights_only=True)``), checked: what
    the file is instead is said in a one-line EffprofError (a bare state dict, weights without an
    optimizer, a refused pickle, bytes that are no checkpoint)."""
    shown = f"--resume {str(path)!r}"
    if not Path(path).is_file():
        raise EffprofError(f"{shown} does not exist or is not a file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # damaged or foreign files fail inside the unpickler in many ways
        raise EffprofError(
            f"{shown} is not a readable PyTorch checkpoint ({_load_reason(err)}); {RESUME_NEEDS}"
        ) from None
    if not isinstance(state, dict):
        raise EffprofError(f"{shown} holds a {type(state).__name__}, not a dict; {RESUME_NEEDS}")
    if state and all(isinstance(v, Tensor) for v in state.values()):
        raise EffprofError(
            f"{shown} is a bare state dict ({len(state)} weight tensors, no optimizer state or "
            f"step count); {RESUME_NEEDS}. To start from these weights, use --weights instead"
        )
    weights = state.get("model_state_dict")
    if not isinstance(weights, dict) or not all(isinstance(v, Tensor) for v in weights.values()):
        keys = ", ".join(map(str, list(state)[:4])) or "none"
        raise EffprofError(
            f"{shown} has no model_state_dict of tensors (its keys: {keys}); {RESUME_NEEDS}"
        )
    step = state.get("all_step")
    if "optimizer_state_dict" not in state or not isinstance(step, int) or step < 0:
        raise EffprofError(
            f"{shown} holds weights but no optimizer state or step count (a weights file, not a "
            f"training checkpoint); {RESUME_NEEDS}. To start from these weights, use --weights"
        )
    return state


def check_resumable(model: nn.Module, state: dict[str, Any], source: str | Path) -> None:
    """Refuse a checkpoint whose weights do not fit ``model`` (before anything is written)."""
    for key in (RAW_KEY, "model_state_dict"):
        if key in state:
            problem = state_dict_mismatch(model, state[key])
            if problem:
                raise EffprofError(f"--resume {str(source)!r} does not fit the model: {problem}")


def load_checkpoint(
    path: str | Path | dict[str, Any],
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    average: nn.Module | None = None,
) -> tuple[int, dict[str, Any]]:
    """Restore model (and optimizer, and weight average) from an official-format checkpoint (a
    path, or a dict from :func:`read_training_checkpoint`); returns (all_step, history). A
    checkpoint without an average starts one from its weights."""
    state = path if isinstance(path, dict) else read_training_checkpoint(path)
    source = "the checkpoint" if isinstance(path, dict) else repr(str(path))
    check_resumable(model, state, source)
    model.load_state_dict(state.get(RAW_KEY, state["model_state_dict"]), strict=True)
    if average is not None:
        average.load_state_dict(state["model_state_dict"], strict=True)
    if optimizer is not None and state.get("optimizer_state_dict"):
        try:
            optimizer.load_state_dict(state["optimizer_state_dict"])
        except (ValueError, KeyError, TypeError, RuntimeError) as err:
            raise EffprofError(
                f"--resume {source}: its optimizer state does not fit this model's parameters "
                f"({type(err).__name__})"
            ) from None
    history = state.get(HISTORY_KEY, {})
    return int(state.get("all_step", 0)), dict(history) if isinstance(history, dict) else {}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _device_of(model: nn.Module) -> torch.device:
    first = next(model.parameters(), None)
    return first.device if first is not None else torch.device("cpu")


def train(
    model: nn.Module,
    batches: BatchSource,
    spec: TrainSpec,
    loss_fn: LossFn | None = None,
    evaluate: Evaluator | None = None,
    checkpoint: str | Path | None = None,
    resume: str | Path | dict[str, Any] | None = None,
    progress: Progress | None = None,
) -> TrainResult:
    """Train ``model`` in place on ``batches(step)``; returns the loss curve and evaluations."""
    loss_fn = loss_fn or ReconstructionLoss()
    progress = progress or Silent()
    device = _device_of(model)
    if spec.channels_last:
        model = model.to(memory_format=torch.channels_last)
    params = [p for p in model.parameters() if p.requires_grad]
    fused = device.type == "cuda"  # one kernel for the whole update on GPU
    optimizer = torch.optim.Adam(
        params, lr=spec.lr, betas=spec.betas, weight_decay=spec.weight_decay, fused=fused
    )
    ema = (
        AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(spec.ema_decay), use_buffers=True)
        if spec.ema_decay
        else None
    )
    average = None if ema is None else ema.module
    scored = model if average is None else average  # the weights evaluations and callers get
    step, saved = (0, {}) if resume is None else load_checkpoint(resume, model, optimizer, average)
    if ema is not None and resume is not None:
        ema.n_averaged.fill_(max(step, 1))  # continue the restored average, do not restart it
    rows: list[dict[str, Any]] = list(pd.DataFrame(saved.get("history", {})).to_dict("records"))
    eval_rows: list[dict[str, Any]] = list(pd.DataFrame(saved.get("evals", {})).to_dict("records"))
    seconds_before = float(saved.get("seconds", 0.0))
    interval: dict[str, Any] = {}  # the steps since the last loss row: summed loss, count, start

    def history() -> dict[str, Any]:
        return {
            "history": pd.DataFrame(rows).to_dict("list"),
            "evals": pd.DataFrame(eval_rows).to_dict("list"),
            "seconds": seconds_before + (time.perf_counter() - started),
        }

    def run_eval() -> None:
        if evaluate is None:
            return
        began = time.perf_counter()
        model.eval()
        scored.eval()
        with torch.no_grad(), torch.autocast(device.type, enabled=False):
            metrics = evaluate(scored)
        model.train()
        if "start" in interval:  # evaluation time does not count as step time
            interval["start"] += time.perf_counter() - began
        row = {"step": step, **{f"eval_{k}": float(v) for k, v in metrics.items()}}
        eval_rows.append(row)
        progress.log(row)

    def progress_at() -> float:
        by_steps = step / spec.steps
        if spec.time_budget_s:
            return max(
                by_steps, (seconds_before + time.perf_counter() - started) / spec.time_budget_s
            )
        return by_steps

    started = time.perf_counter()
    model.train()
    stopped = "steps done"
    interval.update(loss=torch.zeros((), device=device), count=0, start=started, lr=spec.lr)

    def log_interval() -> None:
        """Append the mean loss of the steps since the last row (one GPU sync per row)."""
        if interval["count"] == 0:
            return
        _sync(device)
        now = time.perf_counter()
        total = float(interval["loss"])
        if not math.isfinite(total):  # checked here, not each step: no GPU sync per step
            raise FloatingPointError(f"loss is {total} before step {step}; lower the learning rate")
        row = {
            "step": step,
            "loss": total / interval["count"],
            "lr": interval["lr"],
            "seconds": seconds_before + now - started,
            "step_s": (now - interval["start"]) / interval["count"],
        }
        rows.append(row)
        progress.log(row)
        progress.step(step, row["loss"], row["lr"])
        interval.update(loss=torch.zeros((), device=device), count=0, start=now)

    progress.start(spec.steps, step)
    try:
        with precision_context(spec.precision, device):
            while step < spec.steps:
                if progress_at() >= 1.0:
                    stopped = "time budget"
                    break
                lr = lr_at(spec, step, progress_at())
                for group in optimizer.param_groups:
                    group["lr"] = lr
                blurry, sharp = batches(step)
                blurry = blurry.to(device, non_blocking=True)
                sharp = sharp.to(device, non_blocking=True)
                if spec.channels_last:
                    blurry = blurry.contiguous(memory_format=torch.channels_last)
                optimizer.zero_grad(set_to_none=True)
                loss = loss_fn(model, blurry, sharp)
                loss.backward()
                if spec.grad_clip:
                    torch.nn.utils.clip_grad_norm_(params, spec.grad_clip)
                optimizer.step()
                if ema is not None:
                    ema.update_parameters(model)
                step += 1
                interval.update(
                    loss=interval["loss"] + loss.detach().float(),
                    count=interval["count"] + 1,
                    lr=lr,
                )
                if step % spec.log_every == 0:
                    log_interval()
                if spec.eval_every and step % spec.eval_every == 0 and step < spec.steps:
                    run_eval()
                if checkpoint and spec.checkpoint_every and step % spec.checkpoint_every == 0:
                    save_checkpoint(checkpoint, model, optimizer, step, history(), average)
            log_interval()
        run_eval()  # outside the precision context: the final numbers are plain fp32
    except KeyboardInterrupt:
        stopped = "interrupted"
        if checkpoint:
            save_checkpoint(checkpoint, model, optimizer, step, history(), average)
        raise
    finally:
        progress.stop()
    seconds = seconds_before + time.perf_counter() - started
    if checkpoint:
        save_checkpoint(checkpoint, model, optimizer, step, history(), average)
    if average is not None:
        model.load_state_dict(average.state_dict())
    model.eval()
    return TrainResult(
        history=pd.DataFrame(rows),
        evals=pd.DataFrame(eval_rows),
        steps_done=step,
        stopped=stopped,
        seconds=seconds,
        checkpoint=Path(checkpoint) if checkpoint else None,
    )
