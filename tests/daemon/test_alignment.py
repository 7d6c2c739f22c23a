"""Five-point similarity alignment: the transform itself, and what it does to real faces."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from facewatch.alignment.five_point import (
    CROP_SIZE,
    TEMPLATE,
    align_faces,
    similarity_transforms,
)
from facewatch.images import load_image
from facewatch.pipeline import FacePipeline


def _similarity(angle: float, scale: float, tx: float, ty: float) -> np.ndarray:
    c, s = scale * np.cos(angle), scale * np.sin(angle)
    return np.array([[c, -s, tx], [s, c, ty]])


def _apply(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ m[:, :2].T + m[:, 2]


def test_recovers_known_similarities_exactly() -> None:
    truths = [_similarity(0.3, 0.42, 12.0, -5.0), _similarity(-1.2, 2.5, -300.0, 80.0),
              _similarity(np.pi - 0.1, 0.05, 50.0, 50.0)]
    # landmarks that each similarity maps exactly onto the template
    landmarks = []
    for m in truths:
        a_inv = np.linalg.inv(m[:, :2])
        landmarks.append((TEMPLATE - m[:, 2]) @ a_inv.T)
    found = similarity_transforms(np.stack(landmarks))
    assert found.shape == (3, 2, 3)
    for m, f in zip(truths, found):
        np.testing.assert_allclose(f, m, atol=1e-9)


def test_is_least_squares_on_noisy_points() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        truth = _similarity(rng.uniform(-0.5, 0.5), rng.uniform(0.2, 3.0), *rng.uniform(-100, 100, 2))
        src = (TEMPLATE - truth[:, 2]) @ np.linalg.inv(truth[:, :2]).T + rng.normal(0, 3.0, (5, 2))
        # x' = a x - b y + tx, y' = b x + a y + ty: linear in (a, b, tx, ty)
        rows = np.zeros((10, 4))
        rows[0::2] = np.stack([src[:, 0], -src[:, 1], np.ones(5), np.zeros(5)], axis=1)
        rows[1::2] = np.stack([src[:, 1], src[:, 0], np.zeros(5), np.ones(5)], axis=1)
        (a, b, tx, ty), *_ = np.linalg.lstsq(rows, TEMPLATE.reshape(-1), rcond=None)
        expected = np.array([[a, -b, tx], [b, a, ty]])
        np.testing.assert_allclose(similarity_transforms(src)[0], expected, atol=1e-9)


def test_never_reflects() -> None:
    mirrored = TEMPLATE.copy()
    mirrored[:, 0] = 112 - mirrored[:, 0]  # a left-right mirrored face
    m = similarity_transforms(mirrored)[0]
    assert np.linalg.det(m[:, :2]) > 0


def test_crop_is_the_warp_of_the_frame(examples: Path, pipeline: FacePipeline) -> None:
    image = load_image(examples / "biden.jpg")
    d = pipeline.detector.detect(image)
    crops = align_faces(image, d.landmarks)
    assert crops.shape == (len(d), CROP_SIZE, CROP_SIZE, 3) and crops.dtype == np.uint8
    m = similarity_transforms(d.landmarks[:1])[0]
    # crop pixel (u, v) is the frame sampled where the inverse transform sends (u, v)
    inverse = cv2.invertAffineTransform(m)
    u, v = np.meshgrid(np.arange(CROP_SIZE, dtype=np.float64), np.arange(CROP_SIZE, dtype=np.float64))
    map_x = (inverse[0, 0] * u + inverse[0, 1] * v + inverse[0, 2]).astype(np.float32)
    map_y = (inverse[1, 0] * u + inverse[1, 1] * v + inverse[1, 2]).astype(np.float32)
    sampled = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR)
    diff = np.abs(crops[0].astype(int) - sampled.astype(int))
    assert diff.mean() < 0.5 and diff.max() <= 3
    # and it is a face crop, not a patch of background: the eyes are darker than the cheeks
    grey = cv2.cvtColor(crops[0], cv2.COLOR_RGB2GRAY).astype(float)
    assert grey[48:56, 34:43].mean() < grey[62:72, 30:45].mean()


@pytest.mark.parametrize("name", ["obama.jpg", "biden.jpg", "obama2.jpg", "two_people.jpg"])
def test_redetected_landmarks_on_aligned_crops_sit_on_the_template(
        name: str, examples: Path, pipeline: FacePipeline) -> None:
    image = load_image(examples / name)
    d = pipeline.detector.detect(image)
    d = d.select(np.nonzero(d.scores >= 0.95)[0])
    assert len(d) >= 1
    crops = align_faces(image, d.landmarks)
    mats = similarity_transforms(d.landmarks)
    pad = 56  # MTCNN needs some context around a face to find it
    for crop, m, points in zip(crops, mats, d.landmarks):
        canvas = cv2.copyMakeBorder(crop, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
        again = pipeline.detector.detect(canvas)
        assert len(again) >= 1 and again.scores[0] > 0.95
        redetected = again.landmarks[0] - pad
        # where the transform sends the original landmarks, re-detection finds them:
        # measured at most 1.75 px on these five faces, 0.7 px on average
        to_mapped = np.linalg.norm(redetected - _apply(m, points), axis=1)
        assert to_mapped.max() < 3.0 and to_mapped.mean() < 1.5
        # and near the template (a similarity cannot fit a smile exactly): measured at most
        # 4.1 px on average over the five points (Obama's wide smile), 3.8 px for an eye
        to_template = np.linalg.norm(redetected - TEMPLATE, axis=1)
        assert to_template.mean() < 5.0 and to_template[:2].max() < 5.0
