"""The training loop: it learns, schedules the learning rate, checkpoints officially, resumes, stops on time."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from effprof.models import build_model, read_state_dict
from effprof.training import ReconstructionLoss, TrainSpec, load_checkpoint, lr_at, train


def fixed_batch(size: int = 32, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    sharp = torch.rand(2, 3, size, size, generator=gen)
    blurry = nn.functional.avg_pool2d(sharp, 3, stride=1, padding=1, count_include_pad=False)
    return blurry, sharp


def test_a_few_steps_reduce_the_loss_of_mssnet_on_a_fixed_batch():
    torch.manual_seed(0)
    model = build_model("mssnet", "small")
    batch = fixed_batch()
    loss_fn = ReconstructionLoss()
    with torch.no_grad():
        before = float(loss_fn(model.eval(), *batch))
    result = train(model, lambda step: batch, TrainSpec(steps=8, lr=5e-4, log_every=1))
    with torch.no_grad():
        after = float(loss_fn(model.eval(), *batch))
    assert after < 0.9 * before
    assert list(result.history["step"]) == list(range(1, 9))
    assert result.stopped == "steps done" and result.steps_done == 8


def test_learning_rate_warms_up_then_follows_a_cosine_to_min_lr():
    spec = TrainSpec(steps=100, lr=1e-3, min_lr=1e-5, warmup_steps=10)
    assert lr_at(spec, 0, 0.0) == pytest.approx(1e-4)
    assert lr_at(spec, 9, 0.09) == pytest.approx(1e-3)
    assert lr_at(spec, 50, 0.5) == pytest.approx(1e-5 + (1e-3 - 1e-5) / 2)
    assert lr_at(spec, 100, 1.0) == pytest.approx(1e-5)


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        return x + self.conv(x)


def test_checkpoints_are_in_the_official_format_and_resume_where_they_stopped(tmp_path):
    torch.manual_seed(0)
    batch = fixed_batch(16)
    path = tmp_path / "ck.pt"
    first = train(
        Tiny(),
        lambda s: batch,
        TrainSpec(steps=4, log_every=2, checkpoint_every=2),
        checkpoint=path,
    )
    state = torch.load(path, weights_only=True)
    assert {"model_state_dict", "optimizer_state_dict", "epoch", "all_step"} <= set(state)
    assert state["all_step"] == 4 and state["epoch"] == 0
    assert set(read_state_dict(path)) == {"conv.weight", "conv.bias"}

    seen = []
    model = Tiny()
    resumed = train(
        model, lambda s: seen.append(s) or batch, TrainSpec(steps=6, log_every=2), resume=path
    )
    assert seen == [4, 5]  # continues at all_step with the same batch numbering
    assert list(resumed.history["step"]) == [2, 4, 6]  # the earlier curve is kept
    assert resumed.history["loss"].iloc[0] == first.history["loss"].iloc[0]
    assert load_checkpoint(path, Tiny(), None)[0] == 4


def test_a_time_budget_stops_gracefully_and_saves(tmp_path):
    path = tmp_path / "ck.pt"
    batch = fixed_batch(16)
    result = train(
        Tiny(),
        lambda s: batch,
        TrainSpec(steps=10_000, time_budget_s=0.3, log_every=5),
        checkpoint=path,
    )
    assert result.stopped == "time budget"
    assert 0 < result.steps_done < 10_000
    assert torch.load(path, weights_only=True)["all_step"] == result.steps_done


def test_periodic_evaluation_runs_without_gradients_in_eval_mode():
    modes = []

    def evaluate(model):
        modes.append((model.training, torch.is_grad_enabled()))
        return {"score": 1.0}

    batch = fixed_batch(16)
    result = train(Tiny(), lambda s: batch, TrainSpec(steps=4, eval_every=2), evaluate=evaluate)
    assert list(result.evals["step"]) == [2, 4] and modes == [(False, False)] * 2
    assert "eval_score" in result.evals


def test_weight_average_is_what_is_returned_and_saved_and_it_resumes_exactly(tmp_path):
    batch = fixed_batch(16)
    raw: list[torch.Tensor] = []  # raw weights after each step, seen when the next batch is asked

    def batches(step, model):
        if step:
            raw.append(model.conv.weight.detach().clone())
        return batch

    torch.manual_seed(0)
    model = Tiny()
    spec = TrainSpec(steps=5, lr=1e-2, min_lr=1e-2, ema_decay=0.5)  # constant lr: resumable
    path = tmp_path / "ck.pt"
    train(model, lambda s: batches(s, model), spec, checkpoint=path)
    state = torch.load(path, weights_only=True)
    raw.append(state["train_state_dict"]["conv.weight"])
    expected = raw[0]  # the average starts at the first step's weights, then halves toward each
    for weights in raw[1:]:
        expected = 0.5 * expected + 0.5 * weights
    assert torch.allclose(model.conv.weight, expected, atol=1e-7)
    assert torch.equal(state["model_state_dict"]["conv.weight"], model.conv.weight.detach())
    assert not torch.equal(expected, raw[-1])

    torch.manual_seed(0)
    part = tmp_path / "part.pt"
    train(
        Tiny(),
        lambda s: batch,
        TrainSpec(steps=3, lr=1e-2, min_lr=1e-2, ema_decay=0.5),
        checkpoint=part,
    )
    resumed = Tiny()
    train(resumed, lambda s: batch, spec, resume=part)
    assert torch.allclose(resumed.conv.weight, model.conv.weight, atol=1e-6)
