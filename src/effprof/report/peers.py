"""Published numbers of other single-image deblurring networks: cited, never measured here.

Only numbers taken from the cited source are listed; a field the source does not give (or that
was not checked against it) is empty rather than guessed. GoPro PSNR/SSIM are on the GoPro test
set (1111 images of 1280x720). Runtimes come from different GPUs and timing methods and are not
comparable with each other or with this run: each row names its hardware.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd
import plotly.graph_objects as go

from effprof.report import page
from effprof.report.runview import RunView

MIMO_README = (
    "MIMO-UNet repository README, 'GPU syncronization issue' table (github.com/chosj95/MIMO-UNet)"
)
SYNC_HW = "RTX 3090, with torch.cuda.synchronize (per GoPro test image)"


@dataclass(frozen=True)
class Peer:
    """One published network and the numbers its source gives."""

    network: str
    citation: str
    gopro_psnr_db: float | None = None
    gopro_ssim: float | None = None
    params_m: float | None = None
    runtime_s: float | None = None
    runtime_hardware: str = ""
    runtime_source: str = ""


PEERS: tuple[Peer, ...] = (
    Peer("DeblurGAN-v2 (Inception-ResNet-v2)",
         "Kupyn et al., DeblurGAN-v2, ICCV 2019, arXiv 1908.03826", 29.55, 0.934),
    Peer("SRN", "Tao et al., Scale-recurrent Network for Deep Image Deblurring, CVPR 2018, "
         "arXiv 1802.01770", 30.26, 0.934),
    Peer("DMPHN (stack of 4)", "Zhang et al., Deep Stacked Hierarchical Multi-patch Network, "
         "CVPR 2019, arXiv 1904.03468", 31.20, None, None, 0.588, SYNC_HW, MIMO_README),
    Peer("MT-RNN", "Park et al., Multi-Temporal Recurrent Neural Networks, ECCV 2020", 31.15,
         None, None, 0.394, SYNC_HW, MIMO_README),
    Peer("MPRNet", "Zamir et al., Multi-Stage Progressive Image Restoration, CVPR 2021, "
         "arXiv 2102.02808", 32.66, 0.959, 20.1, 1.474, SYNC_HW, MIMO_README),
    Peer("MIMO-UNet", "Cho et al., Rethinking Coarse-to-Fine Approach in Single Image "
         "Deblurring, ICCV 2021, arXiv 2108.05054", 31.73, 0.951, 6.8, 0.130, SYNC_HW, MIMO_README),
    Peer("MIMO-UNet+", "Cho et al., ICCV 2021, arXiv 2108.05054", 32.45, 0.957, 16.1, 0.282,
         SYNC_HW, MIMO_README),
    Peer("MIMO-UNet++", "Cho et al., ICCV 2021, arXiv 2108.05054 (geometric self-ensemble)",
         32.68, 0.959, None, 1.115, SYNC_HW, MIMO_README),
    Peer("HINet", "Chen et al., HINet: Half Instance Normalization Network, CVPRW 2021, "
         "arXiv 2105.06086", 32.71, 0.959),
    Peer("Restormer", "Zamir et al., Restormer, CVPR 2022, arXiv 2111.09881", 32.92, 0.961, 26.13),
    Peer("Stripformer", "Tsai et al., Stripformer, ECCV 2022, arXiv 2204.04627", 33.08, 0.962),
    Peer("NAFNet (width 64)", "Chen et al., Simple Baselines for Image Restoration, ECCV 2022, "
         "arXiv 2204.04676 (and its README)", 33.69),
)  # fmt: skip


def peers_frame() -> pd.DataFrame:
    """The peers as a DataFrame (one row per network)."""
    return pd.DataFrame([asdict(p) for p in PEERS])


def render(view: RunView) -> str:
    """The peers section body."""
    frame = peers_frame()
    known = frame[frame["params_m"].notna() & frame["gopro_psnr_db"].notna()]
    fig = go.Figure()
    fig.add_scatter(x=known["params_m"], y=known["gopro_psnr_db"], mode="markers+text",
                    text=[page.chart_text(n) for n in known["network"]], textposition="top center",
                    marker={"size": 10, "color": "#8c98a8"}, name="published")  # fmt: skip
    params = view.number("param_count")
    if params is not None:
        fig.add_vline(
            x=params / 1e6, line={"dash": "dot", "color": "#2f6fb0"},
            annotation_text=page.chart_text(f"{view.title_name}: {params / 1e6:.2f} M params (measured here)"),
            annotation_position="bottom right",
        )  # fmt: skip
    fig.update_layout(xaxis_title="parameters (millions, published)",
                      yaxis_title="GoPro PSNR (dB, published)", showlegend=False)  # fmt: skip
    intro = page.paragraph(
        "Published, not measured here. Quality on the GoPro test set and the parameter counts "
        "are the authors' numbers; runtimes come from different GPUs and timing methods, so they "
        "compare networks only within one source. The dotted line is this run's network, whose "
        "parameters were counted here; its quality depends on its weights and is not claimed."
    )
    chart = page.figure(
        fig,
        caption="Published GoPro PSNR against published parameter count (networks whose source gives both).",
        numbers=known,
        columns={"network": "network", "params_m": "params (M)", "gopro_psnr_db": "PSNR (dB)"},
        formats={"params_m": lambda v: f"{v:g}", "gopro_psnr_db": lambda v: f"{v:.2f}"},
        height=340,
    )  # fmt: skip
    table = page.wide(
        page.table(
            frame,
            columns={"network": "network", "gopro_psnr_db": "GoPro PSNR (dB)", "gopro_ssim": "SSIM",
                     "params_m": "params (M)", "runtime_s": "runtime (s)",
                     "runtime_hardware": "runtime hardware", "citation": "published in",
                     "runtime_source": "runtime from"},
            formats={"gopro_psnr_db": lambda v: f"{v:.2f}", "gopro_ssim": lambda v: f"{v:.3f}",
                     "params_m": lambda v: f"{v:g}", "runtime_s": lambda v: f"{v:g}"},
        )
    )  # fmt: skip
    timed = frame[frame["runtime_source"] == MIMO_README]
    fig = go.Figure()
    fig.add_scatter(x=timed["runtime_s"], y=timed["gopro_psnr_db"], mode="markers+text",
                    text=[page.chart_text(n) for n in timed["network"]], textposition="top center",
                    marker={"size": 10, "color": "#8c98a8"})  # fmt: skip
    fig.update_layout(xaxis_title="runtime per GoPro image (s, published, RTX 3090, synchronised)",
                      yaxis_title="GoPro PSNR (dB, published)", showlegend=False)  # fmt: skip
    runtime_chart = page.figure(
        fig,
        caption=(
            "Published quality against published runtime, from one source that timed all of them "
            "on the same GPU with synchronisation (the MIMO-UNet README): runtimes comparable "
            "with each other, not with this run."
        ),
        numbers=timed,
        columns={"network": "network", "runtime_s": "runtime (s)", "gopro_psnr_db": "PSNR (dB)"},
        formats={"runtime_s": lambda v: f"{v:g}", "gopro_psnr_db": lambda v: f"{v:.2f}"},
        height=320,
    )  # fmt: skip
    return intro + chart + runtime_chart + table
