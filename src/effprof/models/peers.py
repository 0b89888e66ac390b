"""Published numbers of single-image deblurring networks: cited, never measured here.

The peers table of the deblurring entries (MSSNet). Only numbers taken from the cited source are
listed; a field the source does not give (or that was not checked against it) is None rather than
guessed. GoPro PSNR/SSIM are on the GoPro test set (1111 images of 1280x720). Runtimes come from
different GPUs and timing methods and are not comparable with each other or with a run here, except
within one source: each row names its hardware and source.
"""

from __future__ import annotations

from effprof.models.registry import PeerTable

MIMO_README = (
    "MIMO-UNet repository README, 'GPU syncronization issue' table (github.com/chosj95/MIMO-UNet)"
)
SYNC_HW = "RTX 3090, with torch.cuda.synchronize (per GoPro test image)"
_KEYS = (
    "gopro_psnr_db",
    "gopro_ssim",
    "params_m",
    "runtime_s",
    "runtime_hardware",
    "runtime_source",
)


def _peer(network: str, citation: str, *values: object) -> dict[str, object]:
    row: dict[str, object] = {"network": network, "citation": citation}
    row.update(dict.fromkeys(_KEYS))
    row.update(zip(_KEYS, values, strict=False))
    return row


DEBLURRING_PEERS = PeerTable(
    title="Published deblurring networks",
    about=(
        "Published, not measured here. Quality on the GoPro test set and the parameter counts are "
        "the authors' numbers; runtimes come from different GPUs and timing methods, so they "
        "compare networks only within one source."
    ),
    columns={
        "gopro_psnr_db": "GoPro PSNR (dB)", "gopro_ssim": "GoPro SSIM", "params_m": "params (M)",
        "runtime_s": "runtime (s)", "runtime_hardware": "runtime hardware",
        "runtime_source": "runtime from",
    },
    rows=(
        _peer("DeblurGAN-v2 (Inception-ResNet-v2)",
              "Kupyn et al., DeblurGAN-v2, ICCV 2019, arXiv 1908.03826", 29.55, 0.934),
        _peer("SRN", "Tao et al., Scale-recurrent Network for Deep Image Deblurring, CVPR 2018, "
              "arXiv 1802.01770", 30.26, 0.934),
        _peer("DMPHN (stack of 4)", "Zhang et al., Deep Stacked Hierarchical Multi-patch Network, "
              "CVPR 2019, arXiv 1904.03468", 31.20, None, None, 0.588, SYNC_HW, MIMO_README),
        _peer("MT-RNN", "Park et al., Multi-Temporal Recurrent Neural Networks, ECCV 2020", 31.15,
              None, None, 0.394, SYNC_HW, MIMO_README),
        _peer("MPRNet", "Zamir et al., Multi-Stage Progressive Image Restoration, CVPR 2021, "
              "arXiv 2102.02808", 32.66, 0.959, 20.1, 1.474, SYNC_HW, MIMO_README),
        _peer("MIMO-UNet", "Cho et al., Rethinking Coarse-to-Fine Approach in Single Image "
              "Deblurring, ICCV 2021, arXiv 2108.05054", 31.73, 0.951, 6.8, 0.130, SYNC_HW,
              MIMO_README),
        _peer("MIMO-UNet+", "Cho et al., ICCV 2021, arXiv 2108.05054", 32.45, 0.957, 16.1, 0.282,
              SYNC_HW, MIMO_README),
        _peer("MIMO-UNet++", "Cho et al., ICCV 2021, arXiv 2108.05054 (geometric self-ensemble)",
              32.68, 0.959, None, 1.115, SYNC_HW, MIMO_README),
        _peer("HINet", "Chen et al., HINet: Half Instance Normalization Network, CVPRW 2021, "
              "arXiv 2105.06086", 32.71, 0.959),
        _peer("Restormer", "Zamir et al., Restormer, CVPR 2022, arXiv 2111.09881", 32.92, 0.961,
              26.13),
        _peer("Stripformer", "Tsai et al., Stripformer, ECCV 2022, arXiv 2204.04627", 33.08, 0.962),
        _peer("NAFNet (width 64)", "Chen et al., Simple Baselines for Image Restoration, ECCV "
              "2022, arXiv 2204.04676 (and its README)", 33.69),
    ),
    quality="gopro_psnr_db",
    params="params_m",
    runtime="runtime_s",
    comparable="runtime_source",
)  # fmt: skip
