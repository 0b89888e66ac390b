"""How close outputs are to reference outputs, for any tensor, and when the reference is too
degenerate for the closeness to mean anything (used by the profile's INT8 and by compression of
models without a task metric: the one fidelity module).

For every output: relative L2 error ||a - b|| / ||b|| and SNR = 10 log10(||b||^2 / ||a - b||^2) dB;
for an image output also PSNR with peak 1 (both clipped to [0, 1]); for logits (N x classes) the
share of rows whose arg-max agrees (top-1 agreement). SNR and PSNR are capped at
``effprof.data.PSNR_CAP_DB`` (identical outputs), as every PSNR effprof reports.

A score against a degenerate reference is not a result (:func:`degenerate_reference`), judged
over every input scored together:

* an all-zero reference: relative error and SNR are undefined, and any output near zero gets a
  perfect PSNR; top-1 agreement compares with class 0;
* a near-constant reference (every value within :data:`NEAR_CONSTANT` of the largest magnitude
  of the others): a model whose output does not depend on the input is matched by a constant;
* a constant arg-max (every row scored in one class, a single row included): agreeing with one
  class says nothing about a classifier. A random-weight classifier puts every input in class 0.

>>> ref = torch.tensor([[0.1, 0.9], [0.2, 0.8]])
>>> scores = score_fidelity([ref], [ref + 0.01], image=False, logits=True)
>>> scores.means["top1"] is None, scores.reasons["top1"][:34]
(True, 'the reference puts all 2 rows scor')
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from effprof.data.metrics import PSNR_CAP_DB

NOISE_FLOOR = 1e-30
NEAR_CONSTANT = 1e-4  # (max - min) of the reference below this share of its largest magnitude
SCORES = ("rel_l2", "snr_db", "psnr_db", "top1")

ZERO_REFERENCE = "the reference output is all zeros: a relative error or SNR is undefined"


def tensor_fidelity(
    reference: Tensor, output: Tensor, image: bool, logits: bool
) -> dict[str, float]:
    """``rel_l2`` and ``snr_db`` (left out when the reference is all zeros: see
    ``ZERO_REFERENCE``), ``psnr_db`` for images, ``top1`` for logits, of one output."""
    ref, out = reference.detach().double().cpu(), output.detach().double().cpu()
    noise = float(torch.sum((out - ref) ** 2))
    signal = float(torch.sum(ref**2))
    scores: dict[str, float] = {}
    if signal > 0:
        scores["rel_l2"] = (noise / signal) ** 0.5
        scores["snr_db"] = min(PSNR_CAP_DB, float(10 * np.log10(signal / max(noise, NOISE_FLOOR))))
    if image and ref.dim() == 4:
        mse = float(torch.mean((out.clamp(0, 1) - ref.clamp(0, 1)) ** 2))
        scores["psnr_db"] = min(PSNR_CAP_DB, float(10 * np.log10(1.0 / max(mse, 1e-20))))
    if logits and ref.dim() == 2 and ref.shape[-1] > 1:
        scores["top1"] = float((ref.argmax(-1) == out.argmax(-1)).double().mean())
    return scores


def _rows(count: int) -> str:
    return f"{count} row{'s' if count != 1 else ''}"


def degenerate_reference(references: Sequence[Tensor], logits: bool) -> dict[str, str]:
    """Which scores say nothing against these reference outputs, and why (see the module
    docstring); ``{}`` for a healthy reference.

    >>> degenerate_reference([torch.zeros(1, 10)], logits=True)["snr_db"]
    'the reference output is all zeros: a relative error or SNR is undefined'
    >>> degenerate_reference([torch.tensor([[0.3, 2.0, -1.0]])] * 2, logits=False)
    {}
    """
    refs = [r.detach().double().cpu() for r in references]
    values = torch.cat([r.flatten() for r in refs]) if refs else torch.zeros(0)
    reasons: dict[str, str] = {}
    if values.numel() and not bool(torch.isfinite(values).all()):
        return dict.fromkeys(SCORES, "the reference output holds NaN or infinite values")
    magnitude = float(values.abs().max()) if values.numel() else 0.0
    if magnitude == 0.0:
        reasons = {"rel_l2": ZERO_REFERENCE, "snr_db": ZERO_REFERENCE}
        reasons |= dict.fromkeys(("psnr_db", "top1"), "the reference output is all zeros")
        return reasons
    spread = float(values.max() - values.min())
    if spread <= NEAR_CONSTANT * magnitude:
        why = (
            f"the reference output is near-constant (every value {float(values.mean()):.4g} "
            f"within {spread:.2g}): any constant output matches it"
        )
        return dict.fromkeys(SCORES, why)
    if logits:
        rows = [r.reshape(-1, r.shape[-1]) for r in refs if r.dim() == 2 and r.shape[-1] > 1]
        if rows:
            classes = torch.cat([r.argmax(-1) for r in rows])
            if len(set(classes.tolist())) == 1:
                reasons["top1"] = (
                    f"the reference puts all {_rows(len(classes))} scored in class "
                    f"{int(classes[0])}: agreement with one constant class is not a result"
                )
    return reasons


@dataclass(frozen=True)
class FidelityScores:
    """Per-input scores, their means over the inputs (None where a score is not a result or
    not defined for every input), and why (``reasons``: score -> reason). ``reference`` says
    why the reference is degenerate, if it is (the run's ``*_fidelity_reference``)."""

    per_input: pd.DataFrame
    means: dict[str, float | None]
    reasons: dict[str, str] = field(default_factory=dict)
    reference: str | None = None


def score_fidelity(
    references: Sequence[Tensor], outputs: Sequence[Tensor], *, image: bool, logits: bool
) -> FidelityScores:
    """Fidelity of ``outputs`` to ``references`` (one pair per input scored), each score's
    mean over the inputs, and the scores left out with their reason (see the module docstring).
    A score some input could not give (an all-zero reference of one input) is left out too."""
    rows = [
        tensor_fidelity(ref, out, image, logits)
        for ref, out in zip(references, outputs, strict=True)
    ]
    frame = pd.DataFrame(rows)
    shown = ("psnr_db", "top1")  # only for images / logits
    applicable = ["rel_l2", "snr_db", *(k for k in shown if k in frame.columns)] if rows else []
    degenerate = degenerate_reference(references, logits)
    reasons = {k: v for k, v in degenerate.items() if k in applicable}
    means: dict[str, float | None] = {}
    for key in applicable:
        if key in reasons:
            means[key] = None
        elif key not in frame.columns or frame[key].isna().any():
            means[key] = None
            reasons[key] = (
                ZERO_REFERENCE if key in ("rel_l2", "snr_db") else "not defined for every input"
            )
        else:
            means[key] = float(frame[key].mean())
    reference = "; ".join(dict.fromkeys(reasons.values())) or None
    return FidelityScores(frame, means, reasons, reference)
