"""Time effprof's public counter (``effprof.count``) against FlopCounterMode on meta: MSSNet-base at 3840x2160 and five
transformers models at their usual sizes, in one process, interleaved (A B, B A, ...), the
median of within-round ratios (effprof / FlopCounterMode; below 1 means effprof is faster) and
the host's load average per round. A benchmark, run by hand; not a test.

    python scripts/bench_count.py [--rounds 7] [--csv reports/benchmarks/count-vs-flopcounter.csv]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import torch
from torch import nn

import effprof
from effprof.measure.count_speed import time_counters
from effprof.models import build_model
from effprof.models.inputs import InputSpec, TensorSpec, image_inputs


def _transformers(name: str) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        import transformers as tf

        return {
            "vit": lambda: tf.ViTModel(tf.ViTConfig()),  # ViT-B/16
            "swin": lambda: tf.SwinModel(tf.SwinConfig()),  # Swin-T
            "convnext": lambda: tf.ConvNextModel(tf.ConvNextConfig()),  # ConvNeXt-T
            "segformer": lambda: tf.SegformerForSemanticSegmentation(tf.SegformerConfig()),  # B0
            "bert": lambda: tf.BertModel(tf.BertConfig()),  # BERT-base
        }[name]()

    return build


TOKENS = InputSpec((TensorSpec((1, 128), "int64", 0, 30522, role="tokens", name="input_ids"),))
SUBJECTS: dict[str, tuple[Callable[[], nn.Module], InputSpec]] = {
    "MSSNet-base 1x3x2160x3840": (lambda: build_model("mssnet", "base"), image_inputs((1, 3, 2160, 3840))),
    "ViT-B/16 1x3x224x224": (_transformers("vit"), image_inputs((1, 3, 224, 224))),
    "Swin-T 1x3x224x224": (_transformers("swin"), image_inputs((1, 3, 224, 224))),
    "ConvNeXt-T 1x3x224x224": (_transformers("convnext"), image_inputs((1, 3, 224, 224))),
    "SegFormer-B0 1x3x512x512": (_transformers("segformer"), image_inputs((1, 3, 512, 512))),
    "BERT-base 128 tokens": (_transformers("bert"), TOKENS),
}  # fmt: skip


def main() -> None:
    """Time every subject and print (and optionally store) the table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--csv", type=Path, default=None, help="also write every round here")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    summaries, rounds = [], []
    for name, (build, inputs) in SUBJECTS.items():
        with torch.device("meta"):
            model = build().eval()
        timing = time_counters(name, model, inputs, rounds=args.rounds,
                               counter=lambda m, i: effprof.count(m, i).macs)  # fmt: skip
        summaries.append(timing.summary())
        rounds.append(timing.rounds.assign(model=name))
        print(summaries[-1])
    table = pd.DataFrame(summaries)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if args.csv is not None:
        pd.concat(rounds).to_csv(args.csv, index=False)


if __name__ == "__main__":
    main()
