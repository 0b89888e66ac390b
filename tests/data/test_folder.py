"""Folder datasets: GoPro / RealBlur layouts, one-line errors naming the offending file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from effprof.data import FolderPairs, blurry_pairs, read_image
from effprof.results import EffprofError


def write(path: Path, height: int, width: int, value: int = 128, mode: str = "RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    channels = {"RGB": (height, width, 3), "L": (height, width), "RGBA": (height, width, 4)}[mode]
    Image.fromarray(np.full(channels, value, dtype=np.uint8), mode=mode).save(path)
    return path


def test_pairs_of_different_sizes_are_found_and_loaded(tmp_path):
    write(tmp_path / "blur" / "a.png", 40, 56)
    write(tmp_path / "sharp" / "a.png", 40, 56)
    write(tmp_path / "blur" / "b.png", 32, 32, mode="L")
    write(tmp_path / "sharp" / "b.png", 32, 32, mode="L")
    pairs = FolderPairs.open(tmp_path)
    assert len(pairs) == 2
    loaded = list(pairs)
    assert [p.name for p in loaded] == ["blur/a.png", "blur/b.png"]
    assert loaded[0].blurry.shape == (3, 40, 56) and loaded[1].sharp.shape == (3, 32, 32)
    assert float(loaded[0].blurry.max()) == pytest.approx(128 / 255)


def test_gopro_scene_folders_and_gt_alias(tmp_path):
    write(tmp_path / "scene1" / "blur" / "0001.png", 16, 16)
    write(tmp_path / "scene1" / "sharp" / "0001.png", 16, 16)
    write(tmp_path / "scene2" / "blur" / "0001.png", 16, 16)
    write(tmp_path / "scene2" / "gt" / "0001.png", 16, 16)
    assert [FolderPairs.open(tmp_path).name(i) for i in range(2)] == [
        "scene1/blur/0001.png",
        "scene2/blur/0001.png",
    ]


def one_line_error(root: Path) -> str:
    with pytest.raises(EffprofError) as err:
        FolderPairs.open(root)
    message = str(err.value)
    assert "\n" not in message
    return message


def test_empty_or_missing_folders_are_one_line_errors(tmp_path):
    assert "does not exist" in one_line_error(tmp_path / "nope")
    assert "has no blur/ folder" in one_line_error(tmp_path)
    (tmp_path / "blur").mkdir()
    (tmp_path / "sharp").mkdir()
    assert "holds no images" in one_line_error(tmp_path)


def test_blur_without_sharp_twin_names_the_first_offending_file(tmp_path):
    write(tmp_path / "blur" / "a.png", 16, 16)
    write(tmp_path / "sharp" / "a.png", 16, 16)
    write(tmp_path / "blur" / "b.png", 16, 16)
    write(tmp_path / "blur" / "c.png", 16, 16)
    message = one_line_error(tmp_path)
    assert "b.png" in message and "no sharp twin" in message and "c.png" not in message


def test_twin_of_another_size_is_refused(tmp_path):
    write(tmp_path / "blur" / "a.png", 16, 16)
    write(tmp_path / "sharp" / "a.png", 16, 20)
    assert "a.png" in one_line_error(tmp_path)


def test_blurry_only_folder_and_rgba(tmp_path):
    write(tmp_path / "x.png", 8, 8, value=0, mode="RGBA")  # fully transparent -> white
    pairs = blurry_pairs(tmp_path)
    assert len(pairs) == 1 and pairs[0].sharp is None
    assert float(pairs[0].blurry.min()) == 1.0
    (tmp_path / "junk.png").write_text("not an image")
    with pytest.raises(EffprofError, match=r"junk\.png"):
        read_image(tmp_path / "junk.png")
