"""Data: synthetic blur pairs from images shipped with scikit-image, folder datasets, metrics.

>>> from effprof.data import SyntheticBlur, SyntheticSpec, heldout_pairs, psnr_db
>>> source = SyntheticBlur.load(SyntheticSpec(crop_px=96, batch=4), device="cpu")  # doctest: +SKIP
>>> blurry, sharp = source(step=0)               # (4, 3, 96, 96) each, same for the same seed  # doctest: +SKIP
>>> pairs = heldout_pairs()                      # 24 fixed 256x256 test crops  # doctest: +SKIP
"""

from effprof.data.degrade import add_noise, blur_same, blur_valid, jpeg, quantize_8bit
from effprof.data.fidelity import ZERO_REFERENCE, tensor_fidelity
from effprof.data.folder import FolderPairs, blurry_folder, blurry_pairs, read_image
from effprof.data.images import (
    CALIBRATION_IMAGES,
    SPLITS,
    TEST_IMAGES,
    TRAIN_IMAGES,
    bundled_image,
    split_images,
)
from effprof.data.kernels import (
    KernelSpec,
    path_lengths,
    random_kernels,
    random_trajectories,
    rasterise,
)
from effprof.data.metrics import DATA_RANGE, PSNR_CAP_DB, fidelity, psnr_db, quality, ssim
from effprof.data.pairs import ImagePair
from effprof.data.synthetic import (
    TEST_BLUR,
    TEST_COUNT,
    TEST_SEED,
    TEST_SIZE_PX,
    BlurSpec,
    SyntheticBlur,
    SyntheticSpec,
    heldout_pairs,
    synthetic_pairs,
)

__all__ = [
    "CALIBRATION_IMAGES",
    "DATA_RANGE",
    "PSNR_CAP_DB",
    "SPLITS",
    "TEST_BLUR",
    "TEST_COUNT",
    "TEST_IMAGES",
    "TEST_SEED",
    "TEST_SIZE_PX",
    "TRAIN_IMAGES",
    "ZERO_REFERENCE",
    "BlurSpec",
    "FolderPairs",
    "ImagePair",
    "KernelSpec",
    "SyntheticBlur",
    "SyntheticSpec",
    "add_noise",
    "blur_same",
    "blur_valid",
    "blurry_folder",
    "blurry_pairs",
    "bundled_image",
    "fidelity",
    "heldout_pairs",
    "jpeg",
    "path_lengths",
    "psnr_db",
    "quality",
    "quantize_8bit",
    "random_kernels",
    "random_trajectories",
    "rasterise",
    "read_image",
    "split_images",
    "ssim",
    "synthetic_pairs",
    "tensor_fidelity",
]
