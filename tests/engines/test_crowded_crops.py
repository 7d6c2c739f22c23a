"""Crowds and busy textures (issue 8): `crop_boxes` resampled every candidate of a pyramid level
in one `cv2.remap`, whose map is (candidates x size) rows; past 32,767 rows (1,365 R-Net
candidates, 682 for O-Net) OpenCV asserts `dst.rows < SHRT_MAX`.  A photo of a man in a fine
gingham shirt did it at the default min face, as did crowded group photos: `facewatch detect`
died with a traceback, every other image's result lost, and in the daemon a checked shirt in
front of a camera stopped recognition while its wearer stood there."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from facewatch.engines.converters import mtcnn_outputs as conv
from facewatch.pipeline import FacePipeline

SHRT_MAX = 32767


def gingham(height: int = 1389, width: int = 1024, period: int = 6) -> np.ndarray:
    """A fine blue-and-white check, as woven: white, light where one stripe crosses, dark where
    two do.  At this size it gives P-Net its 2,000-candidate cap, all on one pyramid level."""
    y, x = np.mgrid[0:height, 0:width]
    across, down = (y // period) % 2, (x // period) % 2
    tone = np.where(across & down, 90, np.where(across | down, 180, 255)).astype(np.uint8)
    return np.stack([tone, tone, np.full_like(tone, 255)], axis=-1)


@pytest.mark.parametrize("size", [24, 48])
def test_a_crowd_of_candidates_on_one_level_is_cropped(size: int) -> None:
    """3,000 boxes on one level, far past the remap limit for both R-Net and O-Net crops, give
    exactly the crops that the same boxes give in small groups."""
    rng = np.random.default_rng(8)
    frame = rng.integers(0, 256, (720, 1280, 3), np.uint8)
    pyramid = conv.Pyramid.build(frame, conv.pyramid_scales(720, 1280, 20, 0.709))
    n = 3000
    assert n * size > SHRT_MAX
    x1 = rng.uniform(-20, 1200, n).astype(np.float32)
    y1 = rng.uniform(-20, 650, n).astype(np.float32)
    side = np.full(n, size * 2.2, np.float32)  # all resampled from the same pyramid level
    boxes = np.stack([x1, y1, x1 + side, y1 + side], axis=1)
    idx = np.zeros(n, np.int32)
    crops = conv.crop_boxes([pyramid], idx, boxes, size)
    assert crops.shape == (n, 3, size, size)
    groups = [conv.crop_boxes([pyramid], idx[s:s + 500], boxes[s:s + 500], size)
              for s in range(0, n, 500)]
    np.testing.assert_array_equal(crops, np.concatenate(groups))


def test_the_detector_survives_a_fine_check(pipeline: FacePipeline) -> None:
    image = gingham()
    candidates: list[int] = []
    crop = conv.crop_boxes

    def counting(pyramids: list[conv.Pyramid], image_idx: np.ndarray, boxes: np.ndarray,
                 size: int) -> np.ndarray:
        candidates.append(boxes.shape[0])
        return crop(pyramids, image_idx, boxes, size)

    conv.crop_boxes = counting  # type: ignore[assignment]
    try:
        found = pipeline.detector.detect(image)
    finally:
        conv.crop_boxes = crop  # type: ignore[assignment]
    assert candidates[0] * 24 > SHRT_MAX  # R-Net's crops really were past the limit
    assert len(found) == 0  # a shirt, not a face


def test_detect_reports_every_image_with_a_check_among_them(models_dir: Path, examples: Path,
                                                            tmp_path: Path) -> None:
    shirt = tmp_path / "gingham.png"
    cv2.imwrite(str(shirt), gingham())
    script = Path(sys.executable).with_name("facewatch")
    command = [str(script)] if script.is_file() else [sys.executable, "-m", "facewatch"]
    proc = subprocess.run([*command, "detect", str(examples / "obama2.jpg"), str(shirt)],
                          capture_output=True, text=True, check=False, timeout=300,
                          env={**os.environ, "FACEWATCH_MODELS": str(models_dir)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0].endswith("obama2.jpg: 1 face(s)")
    assert f"{shirt}: 0 face(s)" in proc.stdout



def test_a_panorama_wider_than_the_remap_limit_is_cropped() -> None:
    """cv2.remap also refuses sources of 32,767 pixels a side: a 33,000 x 700 panorama (23 MP,
    under --max-pixels) crashed `facewatch detect` in the same place.  Boxes smaller than the
    crop size are sampled from the frame itself; they come out as from a narrower copy (to
    float32's precision of coordinates near 30,000: one grey level)."""
    rng = np.random.default_rng(11)
    pano = rng.integers(0, 256, (700, 33000, 3), np.uint8)
    n = 800
    x1 = np.concatenate([rng.uniform(1, 2960, n // 2), rng.uniform(-10, 40, n // 2) - 30000])
    y1 = rng.uniform(-10, 690, n)
    side = rng.uniform(10, 20, n)  # below 24 px: sampled from the frame itself
    boxes = np.stack([x1, y1, x1 + side, y1 + side], axis=1).astype(np.float32)
    idx = np.zeros(n, np.int32)
    crops = conv.crop_boxes([conv.Pyramid((pano,), ((1.0, 1.0),))], idx,
                            boxes + np.float32([30000, 0, 30000, 0]), 24)
    tail = np.ascontiguousarray(pano[:, 30000:])
    head = np.ascontiguousarray(pano[:, :3000])
    expected = np.concatenate([
        conv.crop_boxes([conv.Pyramid((tail,), ((1.0, 1.0),))], idx[:n // 2], boxes[:n // 2], 24),
        conv.crop_boxes([conv.Pyramid((head,), ((1.0, 1.0),))], idx[n // 2:],
                        boxes[n // 2:] + np.float32([30000, 0, 30000, 0]), 24)])
    np.testing.assert_allclose(crops, expected, atol=1.01 * conv.SCALE, rtol=0)


def test_windows_of_a_large_source_give_the_same_crops(monkeypatch: pytest.MonkeyPatch) -> None:
    """The window cut from a source past the limit, with the limit lowered to try it on an
    ordinary frame: exactly the crops of one plain remap, black outside the frame included."""
    rng = np.random.default_rng(12)
    frame = rng.integers(0, 256, (720, 1280, 3), np.uint8)
    n = 600
    x1 = rng.uniform(-30, 1290, n)
    y1 = rng.uniform(-30, 730, n)
    side = rng.uniform(8, 23, n)
    boxes = np.stack([x1, y1, x1 + side, y1 + side], axis=1).astype(np.float32)
    idx = np.zeros(n, np.int32)
    pyramid = [conv.Pyramid((frame,), ((1.0, 1.0),))]
    expected = conv.crop_boxes(pyramid, idx, boxes, 24)
    monkeypatch.setattr(conv, "REMAP_LIMIT", 700)  # the frame is now "too wide and too tall"
    np.testing.assert_array_equal(conv.crop_boxes(pyramid, idx, boxes, 24), expected)
