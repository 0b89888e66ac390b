"""Vector quantisation: decode error equals the codebook error, fp16 for the significant, small file."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from effprof.compression.significance import Calibration, compute_significance
from effprof.compression.vq import VQSpec, pack_indices, unpack_indices, vq_decode, vq_encode
from effprof.results import EffprofError


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 32, 3, padding=1, bias=False)
        self.act = nn.PReLU()
        self.b = nn.Conv2d(32, 32, 3, padding=1)
        self.c = nn.Conv2d(32, 3, 1, bias=False)

    def forward(self, x):
        return self.c(self.b(self.act(self.a(x))))


@pytest.fixture(scope="module")
def encoded(tmp_path_factory):
    torch.manual_seed(0)
    net = Net()
    calib = Calibration([(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))])
    table = compute_significance(net, "lamp", calib)
    state = net.state_dict()
    path = tmp_path_factory.mktemp("vq") / "weights.vq.npz"
    spec = VQSpec(codebook_size=64, vector_dim=9, fp16_fraction=0.1)
    return net, table, state, path, spec, vq_encode(state, table, path, spec)


def test_pack_indices_round_trips_at_any_width():
    rng = np.random.default_rng(0)
    for bits in (1, 5, 12, 16):
        idx = rng.integers(0, 2**bits, size=1001)
        packed = pack_indices(idx, bits)
        assert packed.nbytes == -(-1001 * bits // 8)
        np.testing.assert_array_equal(unpack_indices(packed, bits, 1001), idx)


def test_decoded_weights_are_within_the_codebook_error(encoded):
    _, table, state, path, spec, result = encoded
    decoded = vq_decode(path)
    data = np.load(path, allow_pickle=False)
    codebook = data["codebook"].astype(np.float32)
    for entry in table.layers:
        key = f"{entry.layer}.weight"
        original = state[key].reshape(state[key].shape[0], -1).numpy()
        got = decoded[key].reshape(original.shape).numpy()
        fp16_rows = data[f"{key}|fp16_rows"].astype(int)
        np.testing.assert_allclose(got[fp16_rows], original[fp16_rows], rtol=1e-3, atol=1e-4)
        vq_rows = np.setdiff1d(np.arange(len(original)), fp16_rows)
        scales = data[f"{key}|scale"].astype(np.float32)
        for row, scale in zip(vq_rows, scales, strict=True):
            pad = -len(original[row]) % spec.vector_dim
            vectors = np.pad(original[row] / scale, (0, pad)).reshape(-1, spec.vector_dim)
            nearest = np.min(((vectors[:, None] - codebook[None]) ** 2).sum(-1), axis=1)
            err = np.pad(got[row] / scale - original[row] / scale, (0, pad)).reshape(
                -1, spec.vector_dim
            )
            # each vector decodes to its nearest codebook entry: error == the codebook's error
            # (the zero-padded tail of a row is dropped on decode, so its error can only be less)
            sq = (err**2).sum(1)
            full = slice(None, -1) if pad else slice(None)
            np.testing.assert_allclose(sq[full], nearest[full], rtol=1e-4, atol=1e-6)
            assert (sq <= nearest * (1 + 1e-4) + 1e-6).all()
    assert torch.equal(decoded["b.bias"], state["b.bias"].half().float())
    assert list(decoded) == list(state)
    assert 0 < result.weight_relative_error < 1


def test_most_significant_channels_stay_fp16(encoded):
    _, table, _, path, _, result = encoded
    frame = table.to_frame().sort_values("score", ascending=False)
    data = np.load(path, allow_pickle=False)
    kept = {(layer, int(c)) for layer in ("a", "b", "c") for c in data[f"{layer}.weight|fp16_rows"]}
    top = next(iter(frame.itertuples()))
    assert (top.layer, top.channel) in kept
    assert 0 < result.fp16_weights <= 0.1 * result.conv_weights
    assert result.fp16_weights + result.vq_weights == result.conv_weights


def test_vq_file_is_much_smaller_than_fp32(encoded, tmp_path):
    net, *_, result = encoded
    torch.save(net.state_dict(), tmp_path / "fp32.pt")
    assert result.file_bytes < (tmp_path / "fp32.pt").stat().st_size / 3
    net.load_state_dict(vq_decode(result.path))  # decodes to a loadable state dict


def test_bad_settings_and_files_are_refused(encoded, tmp_path):
    _, table, state, *_ = encoded
    with pytest.raises(EffprofError, match="codebook size"):
        vq_encode(state, table, tmp_path / "x.npz", VQSpec(codebook_size=1))
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(EffprofError, match="not a readable VQ file"):
        vq_decode(tmp_path / "junk.npz")
