"""Evaluating a restoration model on image pairs: PSNR/SSIM against sharp, gain over the blurry input,
and fidelity of one model's outputs to another's.

Images of any size are accepted: each is reflect-padded to the model's input multiple
(``effprof.models.PadToMultiple``) and the output cropped back; equal-sized neighbours are batched.
Outputs are clipped to [0, 1] before scoring (see ``effprof.data.metrics`` for the conventions).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import pandas as pd
import torch
from torch import Tensor, nn

from effprof.data.metrics import fidelity, psnr_db, ssim
from effprof.data.pairs import ImagePair
from effprof.models import PadToMultiple
from effprof.results import EffprofError


@dataclass(frozen=True)
class EvalResult:
    """Per-image quality (``per_image``: name, height, width, [blur_px for synthetic pairs],
    blurry_psnr_db, blurry_ssim, psnr_db, ssim, gain_db, ssim_gain) and its means (``summary()``)."""

    per_image: pd.DataFrame

    def summary(self) -> dict[str, float]:
        """Means over images: ``psnr_db``, ``ssim``, ``blurry_psnr_db``, ``blurry_ssim``, ``gain_db``,
        ``ssim_gain`` and the image count ``images``."""
        frame = self.per_image
        columns = ("psnr_db", "ssim", "blurry_psnr_db", "blurry_ssim", "gain_db", "ssim_gain")
        out = {name: float(frame[name].mean()) for name in columns}
        out["images"] = len(frame)
        return out

    def to_frame(self) -> pd.DataFrame:
        """The per-image table."""
        return self.per_image


def _groups(pairs: Iterable[ImagePair], batch: int) -> Iterator[list[ImagePair]]:
    """Consecutive pairs of one size, at most ``batch`` at a time."""
    group: list[ImagePair] = []
    for pair in pairs:
        if group and (len(group) == batch or pair.size != group[0].size):
            yield group
            group = []
        group.append(pair)
    if group:
        yield group


def restore(model: nn.Module, blurry: Tensor, multiple: int = 1) -> Tensor:
    """The model's final output for a batch (N, 3, H, W) of any size, clipped to [0, 1]."""
    net = PadToMultiple(model, multiple) if multiple > 1 else model
    with torch.no_grad():
        return net(blurry).float().clamp(0.0, 1.0)


def restore_pairs(
    model: nn.Module,
    pairs: Sequence[ImagePair],
    device: str | torch.device = "cpu",
    input_multiple: int = 1,
    batch: int = 4,
) -> list[Tensor]:
    """The model's output for every pair's blurry image, in pair order, on the CPU (a reference
    to score other models' fidelity against)."""
    device = torch.device(device)
    outputs: list[Tensor] = []
    with _eval_mode(model):
        for group in _groups(pairs, batch):
            blurry = torch.stack([p.blurry for p in group]).to(device)
            outputs += list(restore(model, blurry, input_multiple).cpu())
    return outputs


def evaluate_pairs(
    model: nn.Module,
    pairs: Sequence[ImagePair],
    device: str | torch.device = "cpu",
    input_multiple: int = 1,
    batch: int = 4,
    references: Sequence[Tensor] | None = None,
) -> EvalResult:
    """Restore every pair and score it against its sharp target (and the blurry input against
    it); with ``references`` (another model's outputs, from :func:`restore_pairs`), also the
    output's fidelity to them (``fidelity_psnr_db``, ``fidelity_ssim``). The one held-out
    evaluation of effprof: evaluate, train and every compression step use it."""
    device = torch.device(device)
    pairs = list(pairs)
    if references is not None and len(references) != len(pairs):
        raise ValueError(f"{len(references)} references for {len(pairs)} pairs")
    rows = []
    start = 0
    with _eval_mode(model):
        for group in _groups(pairs, batch):
            missing = next((p.name for p in group if p.sharp is None), None)
            if missing is not None:
                raise EffprofError(
                    f"{missing!r} has no sharp target: quality needs blurry/sharp pairs"
                )
            blurry = torch.stack([p.blurry for p in group]).to(device)
            sharp = torch.stack([p.sharp for p in group]).to(device)  # type: ignore[misc]
            output = restore(model, blurry, input_multiple)
            scores = {
                "blurry_psnr_db": psnr_db(blurry, sharp),
                "blurry_ssim": ssim(blurry, sharp),
                "psnr_db": psnr_db(output, sharp),
                "ssim": ssim(output, sharp),
            }
            if references is not None:
                reference = torch.stack(list(references[start : start + len(group)]))
                scores.update(fidelity(output.cpu(), reference))
            start += len(group)
            for i, pair in enumerate(group):
                row = {"name": pair.name, "height": pair.size[0], "width": pair.size[1]}
                if pair.blur_px is not None:
                    row["blur_px"] = pair.blur_px
                row.update({k: float(v[i]) for k, v in scores.items()})
                rows.append(row)
    if not rows:
        raise EffprofError("no image pairs to evaluate")
    frame = pd.DataFrame(rows)
    frame["gain_db"] = frame["psnr_db"] - frame["blurry_psnr_db"]
    frame["ssim_gain"] = frame["ssim"] - frame["blurry_ssim"]
    return EvalResult(frame)


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)
