"""bf16 autocast training must update the weights the forward pass uses (regression test).

The training loop holds one autocast region over all steps; with autocast's weight cache on, the
forward kept using the bf16 copies of the *initial* weights while the fp32 weights drifted, so the
trained model, evaluated in fp32, returned garbage (6 dB PSNR).
"""

from __future__ import annotations

import torch
from torch import nn

from effprof.training import TrainSpec, train


def test_bf16_training_improves_the_fp32_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.PReLU(), nn.Conv2d(8, 3, 3, padding=1))
    x = torch.rand(2, 3, 16, 16)
    target = 0.5 * x

    def l1(net: nn.Module) -> float:
        with torch.no_grad():
            return float((net(x) - target).abs().mean())

    before = l1(model)
    train(model, lambda step: (x, target), TrainSpec(steps=40, lr=3e-3, precision="bf16"))
    model.eval()
    assert l1(model) < 0.5 * before  # judged in fp32, outside autocast
