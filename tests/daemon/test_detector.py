"""MTCNN detection on real photos: portraits, a group, dogs, dlib's hand-annotated faces, and
batches of real video frames."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from facewatch.detection.detections import Detections
from facewatch.images import load_image
from facewatch.pipeline import FacePipeline


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of `a` (N, 4) with every box of `b` (M, 4), x1 y1 x2 y2."""
    w = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    h = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = w * h
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def _check_layout(d: Detections, height: int, width: int) -> None:
    assert d.boxes.dtype == np.float32 and d.boxes.shape == (len(d), 4)
    assert d.landmarks.shape == (len(d), 5, 2)
    assert list(d.scores) == sorted(d.scores, reverse=True)
    assert (d.scores > 0.7).all() and (d.scores <= 1.0).all()
    for box, points in zip(d.boxes, d.landmarks):
        x1, y1, x2, y2 = box
        assert x2 > x1 and y2 > y1
        # landmarks fall inside (or very near) their face's box
        margin = 0.1 * (x2 - x1)
        assert (points[:, 0] > x1 - margin).all() and (points[:, 0] < x2 + margin).all()
        assert (points[:, 1] > y1 - margin).all() and (points[:, 1] < y2 + margin).all()


def test_portrait(pipeline: FacePipeline, examples: Path) -> None:
    image = load_image(examples / "obama.jpg")
    d = pipeline.detector.detect(image)
    _check_layout(d, *image.shape[:2])
    assert d.scores[0] >= 0.95
    x1, y1, x2, y2 = d.boxes[0]
    # the main face: 240 px wide, upper middle of the 910 x 1137 portrait
    assert 200 < x2 - x1 < 300 and 400 < (x1 + x2) / 2 < 600 and (y1 + y2) / 2 < 400
    # measured 0.923 for a fold of the jacket lower down: nothing else at 0.95
    assert (d.scores[1:] < 0.95).all()
    left_eye, right_eye, nose, mouth_left, mouth_right = d.landmarks[0]
    assert left_eye[0] < nose[0] < right_eye[0]
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_left[1], mouth_right[1])


def test_group_photo_has_six_faces(pipeline: FacePipeline, photos: Path) -> None:
    image = load_image(photos / "facenet_pytorch" / "data" / "multiface.jpg")
    d = pipeline.detector.detect(image)
    _check_layout(d, *image.shape[:2])
    assert len(d) == 6
    assert d.scores.min() >= 0.95  # measured 0.998 and up
    assert (_iou(d.boxes, d.boxes)[~np.eye(6, dtype=bool)] < 0.1).all()  # six different faces


def test_dogs_are_not_faces(pipeline: FacePipeline, photos: Path) -> None:
    d = pipeline.detector.detect(load_image(photos / "dlib_examples_faces" / "dogs.jpg"))
    assert not (d.scores >= 0.95).any()


def test_tiny_frame_has_no_pyramid_and_no_faces(pipeline: FacePipeline) -> None:
    d = pipeline.detector.detect(np.zeros((15, 15, 3), np.uint8))
    assert len(d) == 0 and d.boxes.shape == (0, 4) and d.landmarks.shape == (0, 5, 2)
    assert pipeline.detector.detect_batch([]) == []


def _dlib_annotations(photos: Path) -> list[tuple[Path, np.ndarray]]:
    """dlib's hand-drawn face boxes, training.xml and testing.xml: 43 faces in 9 photos."""
    folder = photos / "dlib_examples_faces"
    out = []
    for name in ("training.xml", "testing.xml"):
        for image in ET.parse(folder / name).getroot().iter("image"):
            boxes = [[float(b.get("left")), float(b.get("top")),  # type: ignore[arg-type]
                      float(b.get("left")) + float(b.get("width")),  # type: ignore[arg-type]
                      float(b.get("top")) + float(b.get("height"))]  # type: ignore[arg-type]
                     for b in image.iter("box")]
            out.append((folder / image.get("file"), np.array(boxes, np.float32)))  # type: ignore[operator]
    return out


def test_recall_on_dlib_annotated_faces(pipeline: FacePipeline, photos: Path,
                                        record_property: Callable[[str, object], None]) -> None:
    annotated = _dlib_annotations(photos)
    assert sum(len(b) for _, b in annotated) == 43 and len(annotated) == 9
    images = [load_image(path) for path, _ in annotated]
    found = unmatched = 0
    for (path, truth), d in zip(annotated, pipeline.detect(images)):
        if len(d) == 0:
            continue
        iou = _iou(truth, d.boxes)
        found += int((iou.max(axis=1) >= 0.3).sum())
        unmatched += int((iou.max(axis=0) < 0.3).sum())
    recall = found / 43
    record_property("dlib_recall_iou30", recall)
    record_property("dlib_unmatched_detections", unmatched)
    print(f"dlib faces: recall {recall:.3f} ({found}/43) at IoU >= 0.3, {unmatched} unmatched detections")
    # measured: 43/43 (every match at IoU >= 0.57) with 1 unmatched detection
    assert found >= 41
    assert unmatched <= 3


@pytest.fixture(scope="module")
def video_frames(shared_dir: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(shared_dir / "data" / "videos" / "short_hamilton_clip.mp4"))
    frames = []
    try:
        for index in range(241):
            ok, frame = cap.read()
            assert ok
            if index in (30, 120, 240):
                frames.append(np.ascontiguousarray(frame[:, :, ::-1]))
    finally:
        cap.release()
    return frames


def test_batch_equals_one_frame_at_a_time(pipeline: FacePipeline, video_frames: list[np.ndarray],
                                          examples: Path) -> None:
    # three frames of one size share a P-Net canvas batch; a portrait of another size does not
    frames = [*video_frames, load_image(examples / "obama2.jpg")]
    batched = pipeline.detector.detect_batch(frames)
    assert len(batched) == len(frames)
    assert sum(len(d) for d in batched[:3]) > 0  # the clip's frames do have faces
    for frame, together in zip(frames, batched):
        alone = pipeline.detector.detect(frame)
        assert len(together) == len(alone)
        np.testing.assert_allclose(together.boxes, alone.boxes, atol=1e-2)
        np.testing.assert_allclose(together.scores, alone.scores, atol=1e-4)
        np.testing.assert_allclose(together.landmarks, alone.landmarks, atol=1e-2)


def test_landmarks_for_given_boxes(pipeline: FacePipeline, examples: Path) -> None:
    image = load_image(examples / "obama.jpg")
    found = pipeline.detector.detect(image)
    again = pipeline.detector.landmarks_for_boxes(image, found.boxes[:1])
    assert len(again) == 1 and again.scores[0] > 0.95
    assert np.abs(again.landmarks[0] - found.landmarks[0]).max() < 5.0
