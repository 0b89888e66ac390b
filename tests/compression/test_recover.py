"""Recovery by distillation: the loss it minimises, fresh pseudo-views, refusals."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from effprof.compression.prune import PruneSpec, prune
from effprof.compression.recover import (
    DistillationLoss,
    RecoverSpec,
    distillation_gap,
    frozen,
    output_distance,
    pseudo_views,
    recover,
)
from effprof.results import EffprofError

from .conftest import SIZE


@pytest.fixture(scope="module")
def teacher(mssnet):
    """Random MSSNet with small output heads: like a trained deblurrer, it returns about its input
    (a random head's residual is ~0.7 and its loss surface too rough for a 2-step test)."""
    model = copy.deepcopy(mssnet)
    with torch.no_grad():
        for name, module in model.named_modules():
            if name.startswith("tail") and isinstance(module, torch.nn.Conv2d):
                module.weight.mul_(0.05)
    return model


@pytest.fixture(scope="module")
def student(teacher, calibration):
    pruned, _ = prune(teacher, PruneSpec(0.5, steps=1), calibration)
    return pruned


def test_two_recovery_steps_lower_the_distillation_loss_on_a_fixed_batch(teacher, student):
    six = {"all_outputs": True}  # what MSSNet's registry entry asks for
    spec = RecoverSpec(steps=2, lr=3e-5, crop_px=SIZE, batch=2, forward_kwargs=six)
    fixed, sharp = pseudo_views(spec)(10_000)  # a batch the recovery never trains on
    model = copy.deepcopy(student)
    loss = DistillationLoss(frozen(copy.deepcopy(teacher)), spec)
    with torch.no_grad():
        before = float(loss.parts(model, fixed, sharp)["distillation"])
    result = recover(model, copy.deepcopy(teacher), spec)
    with torch.no_grad():
        after = float(loss.parts(model, fixed, sharp)["distillation"])
    assert result.steps_done == 2
    assert after < before
    gap = distillation_gap(model, teacher, fixed, six)
    assert gap < distillation_gap(student, teacher, fixed, six)
    assert not model.training


def test_distillation_covers_all_six_outputs(teacher, student):
    x = torch.rand(1, 3, SIZE, SIZE)
    with torch.no_grad():
        outputs = student(x, all_outputs=True)
        targets = teacher(x, all_outputs=True)
    assert len(outputs) == 6
    assert float(output_distance(targets, targets)) == 0.0
    first_only = float(torch.nn.functional.l1_loss(outputs[0], targets[0]))
    assert float(output_distance(outputs, targets, fft_weight=0.0)) > first_only
    with pytest.raises(EffprofError, match="student gives 5 outputs, teacher 6"):
        output_distance(outputs[:5], targets)


def test_pseudo_views_are_new_every_step_and_repeatable():
    source = pseudo_views(RecoverSpec(crop_px=SIZE, batch=2))
    first, again, second = source(0)[0], source(0)[0], source(1)[0]
    assert first.shape == (2, 3, SIZE, SIZE)
    assert torch.equal(first, again)
    assert not torch.equal(first, second)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (RecoverSpec(steps=0), "steps >= 1"),
        (RecoverSpec(lr=1e-4, min_lr=1e-3), "min_lr <= lr"),
        (RecoverSpec(distill_weight=0, reconstruction_weight=0), "above 0"),
    ],
)
def test_settings_that_cannot_train_are_refused(teacher, student, spec, message):
    with pytest.raises(EffprofError, match=message):
        recover(copy.deepcopy(student), teacher, spec)


def test_distilling_a_batch_norm_cnn_keeps_its_statistics_and_gets_closer_to_the_teacher():
    # in train mode one random input per step re-estimated the statistics, and the student
    # ended further from the dense output than the pruned model it started from
    torch.manual_seed(0)
    teacher = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1, stride=2), nn.BatchNorm2d(16), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10),
    ).eval()  # fmt: skip
    student = copy.deepcopy(teacher)
    with torch.no_grad():
        for p in student.parameters():
            p.add_(0.2 * torch.randn_like(p))
    statistics = [b.clone() for b in student.buffers()]
    test = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(9))

    def gap() -> float:
        with torch.no_grad():
            return float((student(test) - teacher(test)).norm() / teacher(test).norm())

    before = gap()

    def batches(step: int):
        x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(step)) * 4 - 2
        return x, x

    spec = RecoverSpec(steps=40, lr=3e-3, reconstruction_weight=0, fft_weight=0, crop_px=16,
                       batch=1)  # fmt: skip
    recover(student, teacher, spec, batches=batches)
    assert gap() < 0.7 * before
    buffers = list(student.buffers())
    assert all(torch.equal(a, b) for a, b in zip(buffers, statistics, strict=True))
    assert not student.training
