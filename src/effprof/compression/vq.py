"""Significance-aware vector quantisation of convolution weights, for storage (LightGaussian, step 4).

LightGaussian keeps the spherical harmonics of its most significant Gaussians in fp16 and replaces
the rest by indices into one k-means codebook. Here the element is an output channel of a
convolution: the most significant channels (by a :class:`SignificanceTable`, ranked globally)
keep their filters in fp16 until ``fp16_fraction`` of all convolution weights is covered; every
other filter is scaled by its largest absolute weight (an fp16 scale per channel), cut into
``vector_dim``-long vectors (9 = one 3x3 kernel slice) and each vector replaced by the index of its
nearest entry in one shared codebook of ``codebook_size`` fp16 vectors. Indices are bit-packed
(12 bits for 4096 entries). Every other tensor is stored in fp16.

The file is a NumPy ``.npz`` (no pickle) whose size on disk is the number reported. Decoding gives
back a float32 state dict for ordinary inference: this saves storage and download size only, not
time or memory at run time.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from effprof.compression.significance import SignificanceTable
from effprof.results import EffprofError

FORMAT = "effprof-vq"
VERSION = 1
_META = "__meta__"


@dataclass(frozen=True)
class VQSpec:
    """Codebook entries, vector length, share of conv weights kept in fp16, k-means settings."""

    codebook_size: int = 4096
    vector_dim: int = 9
    fp16_fraction: float = 0.05
    kmeans_iterations: int = 50
    seed: int = 0

    def check(self) -> None:
        """Refuse settings that cannot work, before any work."""
        if not 2 <= self.codebook_size <= 65536:
            raise EffprofError(f"codebook size must be in [2, 65536], got {self.codebook_size}")
        if self.vector_dim < 1 or not 0 <= self.fp16_fraction <= 1:
            raise EffprofError("VQ needs vector_dim >= 1 and fp16_fraction in [0, 1]")

    @property
    def index_bits(self) -> int:
        """Bits per stored index (4096 entries -> 12)."""
        return max(1, math.ceil(math.log2(self.codebook_size)))


@dataclass(frozen=True)
class VQResult:
    """What was written: file size, how the conv weights were split, and the codebook error."""

    path: Path
    file_bytes: int
    conv_weights: int
    fp16_weights: int
    vq_weights: int
    vq_vectors: int
    codebook_size: int
    vector_dim: int
    vector_rmse: float  # RMS distance of a scaled vector to its codebook entry (per component)
    weight_relative_error: float  # ||decoded - original|| / ||original|| over all conv weights

    @property
    def bits_per_conv_weight(self) -> float:
        """File bits over the number of convolution weights."""
        return 8 * self.file_bytes / self.conv_weights


def _fp16_channels(
    table: SignificanceTable, state: dict[str, Tensor], fraction: float
) -> set[tuple[str, int]]:
    """(layer, channel) pairs kept in fp16: the highest-scoring, until ``fraction`` of conv weights."""
    rows = []
    for entry in table.layers:
        per_channel = state[f"{entry.layer}.weight"][0].numel()
        rows += [
            (float(s), entry.layer, c, per_channel) for c, s in enumerate(entry.score.tolist())
        ]
    budget = fraction * sum(r[3] for r in rows)
    kept, used = set(), 0
    for _, layer, channel, size in sorted(rows, key=lambda r: -r[0]):
        if used + size > budget:
            break
        kept.add((layer, channel))
        used += size
    return kept


def _vectors(rows: np.ndarray, dim: int) -> np.ndarray:
    """Rows cut into ``dim``-long vectors, each row zero-padded to a multiple of ``dim``."""
    padded = math.ceil(rows.shape[1] / dim) * dim
    out = np.zeros((rows.shape[0], padded), dtype=np.float32)
    out[:, : rows.shape[1]] = rows
    return out.reshape(-1, dim)


def _nearest(vectors: np.ndarray, codebook: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """Index of the nearest codebook entry of every vector (exact, in chunks)."""
    book = torch.from_numpy(codebook.astype(np.float32))
    out = [
        torch.cdist(torch.from_numpy(vectors[i : i + chunk]), book).argmin(1)
        for i in range(0, len(vectors), chunk)
    ]
    return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.int64)


def pack_indices(indices: np.ndarray, bits: int) -> np.ndarray:
    """Indices (< 2**bits) as a dense bit stream: 3 indices of 12 bits take 5 bytes (36 bits)."""
    as_bits = np.unpackbits(indices.astype(">u4").view(np.uint8).reshape(-1, 4), axis=1)[
        :, 32 - bits :
    ]
    return np.packbits(as_bits.reshape(-1))


def unpack_indices(packed: np.ndarray, bits: int, count: int) -> np.ndarray:
    """Inverse of :func:`pack_indices`."""
    as_bits = np.unpackbits(packed)[: count * bits].reshape(count, bits)
    weights = 1 << np.arange(bits - 1, -1, -1, dtype=np.int64)
    return as_bits.astype(np.int64) @ weights


def vq_encode(
    state: dict[str, Tensor], table: SignificanceTable, path: str | Path, spec: VQSpec = VQSpec()
) -> VQResult:
    """Write ``state`` (conv weights named by ``table``'s layers) as a VQ file; returns its stats."""
    spec.check()
    path = Path(path)
    missing = [e.layer for e in table.layers if f"{e.layer}.weight" not in state]
    if missing:
        raise EffprofError(f"significance names layer {missing[0]!r}, which the weights lack")
    keep = _fp16_channels(table, state, spec.fp16_fraction)
    arrays: dict[str, np.ndarray] = {}
    layers, scaled_rows = [], []
    for entry in table.layers:
        key = f"{entry.layer}.weight"
        weight = state[key].detach().float().cpu().numpy()
        rows = weight.reshape(weight.shape[0], -1)
        fp16_rows = np.array(
            sorted(c for c in range(rows.shape[0]) if (entry.layer, c) in keep), dtype=np.int64
        )
        vq_rows = np.setdiff1d(np.arange(rows.shape[0]), fp16_rows)
        scales = np.abs(rows[vq_rows]).max(1) if len(vq_rows) else np.zeros(0, np.float32)
        scales16 = np.where(scales > 0, scales, 1.0).astype(np.float16)
        arrays[f"{key}|fp16_rows"] = fp16_rows.astype(np.uint16)
        arrays[f"{key}|fp16"] = rows[fp16_rows].astype(np.float16)
        arrays[f"{key}|scale"] = scales16
        scaled_rows.append(
            _vectors(rows[vq_rows] / scales16.astype(np.float32)[:, None], spec.vector_dim)
        )
        layers.append({"key": key, "shape": list(weight.shape), "vq_rows": len(vq_rows)})
    vectors = (
        np.concatenate(scaled_rows) if scaled_rows else np.zeros((0, spec.vector_dim), np.float32)
    )
    codebook = _codebook(vectors, spec)
    indices = (
        _nearest(vectors, codebook.astype(np.float32)) if len(vectors) else np.zeros(0, np.int64)
    )
    arrays["codebook"] = codebook
    arrays["indices"] = pack_indices(indices, spec.index_bits)
    vq_keys = {entry["key"] for entry in layers}
    rest = [k for k in state if k not in vq_keys]
    for key in rest:
        value = state[key].detach().cpu().numpy()
        arrays[f"rest|{key}"] = (
            value.astype(np.float16) if state[key].is_floating_point() else value
        )
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "vector_dim": spec.vector_dim,
        "index_bits": spec.index_bits,
        "vectors": len(vectors),
        "layers": layers,
        "rest": rest,
        "order": list(state),
    }
    arrays[_META] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        np.savez_compressed(f, **arrays)
    return _stats(path, state, layers, vectors, codebook, indices, spec)


def _codebook(vectors: np.ndarray, spec: VQSpec) -> np.ndarray:
    """k-means codebook in fp16 (fewer vectors than entries: the vectors themselves)."""
    if len(vectors) <= spec.codebook_size:
        book = np.zeros((spec.codebook_size, spec.vector_dim), np.float32)
        book[: len(vectors)] = vectors
        return book.astype(np.float16)
    from sklearn.cluster import MiniBatchKMeans  # only here: scikit-learn takes 0.9 s to import

    kmeans = MiniBatchKMeans(
        n_clusters=spec.codebook_size,
        batch_size=max(4096, 2 * spec.codebook_size),
        n_init=1,
        max_iter=spec.kmeans_iterations,
        random_state=spec.seed,
    )
    return kmeans.fit(vectors).cluster_centers_.astype(np.float16)


def _stats(path, state, layers, vectors, codebook, indices, spec) -> VQResult:
    decoded = vq_decode(path)
    diff = sum(float(((decoded[e["key"]] - state[e["key"]].float()) ** 2).sum()) for e in layers)
    norm = sum(float((state[e["key"]].float() ** 2).sum()) for e in layers)
    conv_weights = sum(state[e["key"]].numel() for e in layers)
    vq_weights = sum(e["vq_rows"] * state[e["key"]][0].numel() for e in layers)
    err = vectors - codebook.astype(np.float32)[indices] if len(vectors) else np.zeros((1, 1))
    return VQResult(
        path,
        path.stat().st_size,
        conv_weights,
        conv_weights - vq_weights,
        vq_weights,
        len(vectors),
        spec.codebook_size,
        spec.vector_dim,
        float(np.sqrt((err**2).mean())),
        math.sqrt(diff / max(norm, 1e-30)),
    )


def vq_decode(path: str | Path) -> dict[str, Tensor]:
    """The float32 state dict stored in a VQ file (load with ``load_state_dict``)."""
    path = Path(path)
    try:
        data = np.load(path, allow_pickle=False)
        meta = json.loads(bytes(data[_META]).decode())
    except (OSError, ValueError, KeyError) as err:
        raise EffprofError(f"{str(path)!r} is not a readable VQ file ({err})") from None
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise EffprofError(f"{str(path)!r} is not an {FORMAT} v{VERSION} file")
    codebook = data["codebook"].astype(np.float32)
    dim = meta["vector_dim"]
    indices = unpack_indices(data["indices"], meta["index_bits"], meta["vectors"])
    out: dict[str, Tensor] = {}
    start = 0
    for layer in meta["layers"]:
        key, shape = layer["key"], layer["shape"]
        row_len = int(np.prod(shape[1:]))
        per_row = math.ceil(row_len / dim)
        count = layer["vq_rows"] * per_row
        rows = np.zeros((shape[0], row_len), np.float32)
        vq_rows = np.setdiff1d(np.arange(shape[0]), data[f"{key}|fp16_rows"].astype(np.int64))
        decoded = codebook[indices[start : start + count]].reshape(layer["vq_rows"], per_row * dim)[
            :, :row_len
        ]
        rows[vq_rows] = decoded * data[f"{key}|scale"].astype(np.float32)[:, None]
        rows[data[f"{key}|fp16_rows"].astype(np.int64)] = data[f"{key}|fp16"].astype(np.float32)
        out[key] = torch.from_numpy(rows.reshape(shape))
        start += count
    for key in meta["rest"]:
        value = data[f"rest|{key}"]
        out[key] = torch.from_numpy(
            value.astype(np.float32) if value.dtype == np.float16 else value
        )
    return {key: out[key] for key in meta["order"]}
