"""MTCNN detection on real photos: portraits, a group, dogs, dlib's hand-annotated faces, and
batches of real video frames; and the requests a gated detector serves (regions, motion,
refresh, nothing), several kinds in one batch with one call per network."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from facewatch.bench.sources import sample_frames
from facewatch.detection.detections import Detections
from facewatch.detection.detector import MtcnnDetector, MtcnnSettings
from facewatch.detection.requests import DetectionRequest, Region
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


# Requests: regions, motion, refresh, nothing -------------------------------------------

class _Counting:
    """A runner that counts its calls (one per network per `run`, whatever the requests)."""

    def __init__(self, runner: object) -> None:
        self.runner, self.calls = runner, 0

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.calls += 1
        return self.runner.run(inputs)  # type: ignore[attr-defined, no-any-return]


def _detector(pipeline: FacePipeline, min_face: float = 20.0) -> MtcnnDetector:
    d = pipeline.detector
    return MtcnnDetector(_Counting(d.pnet), _Counting(d.rnet), _Counting(d.onet),  # type: ignore[arg-type]
                         MtcnnSettings(min_face=min_face))


def _calls(d: MtcnnDetector) -> tuple[int, int, int]:
    return (d.pnet.calls, d.rnet.calls, d.onet.calls)  # type: ignore[attr-defined]


def _same_faces(a: Detections, b: Detections, iou: float = 0.9) -> bool:
    return len(a) == len(b) and (len(a) == 0 or bool((_iou(a.boxes, b.boxes).max(axis=1) >= iou).all()))


def test_a_region_over_the_whole_frame_finds_what_the_full_frame_does(
        pipeline: FacePipeline, video_frames: list[np.ndarray]) -> None:
    d = _detector(pipeline)
    d.max_patch_share = 10.0  # patches however big: the point is that they equal the levels
    for frame in video_frames:
        full = d.run([frame], [DetectionRequest.full()])[0]
        region = d.run([frame], [DetectionRequest(regions=(Region((0, 0, 640, 360), 20.0),))])[0]
        assert d.last_kinds == ["regions"]
        assert _same_faces(full, region, 0.99)
        np.testing.assert_allclose(region.scores, full.scores, atol=1e-4)


def test_regions_find_only_the_faces_inside_them(pipeline: FacePipeline, photos: Path) -> None:
    image = load_image(photos / "facenet_pytorch" / "data" / "multiface.jpg")
    d = _detector(pipeline)
    full = d.detect(image)
    assert len(full) == 6
    target = full.boxes[2]
    w, h = target[2] - target[0], target[3] - target[1]
    box = (float(target[0] - w / 2), float(target[1] - h / 2), float(target[2] + w / 2), float(target[3] + h / 2))
    found = d.run([image], [DetectionRequest(regions=(Region(box, 20.0),))])[0]
    assert d.last_kinds == ["regions"]
    assert len(found) == 1 and _iou(found.boxes, target[None])[0, 0] > 0.9


def test_motion_finds_the_face_it_touches(pipeline: FacePipeline, photos: Path) -> None:
    image = load_image(photos / "facenet_pytorch" / "data" / "multiface.jpg")
    h, w = image.shape[:2]
    d = _detector(pipeline)
    full = d.detect(image)
    target = full.boxes[4]
    mask = np.zeros((h // 8, w // 8), np.uint8)
    cx, cy = (target[0] + target[2]) / 2, (target[1] + target[3]) / 2
    mask[int(cy / 8), int(cx / 8)] = 1  # one changed cell, on the mouth or nose
    found = d.run([image], [DetectionRequest(motion=mask)])[0]
    assert d.last_kinds == ["regions"]
    # the face it touches, and at most a neighbour whose face would overlap it too
    assert 1 <= len(found) <= 2 and _iou(found.boxes, target[None]).max() > 0.9
    # motion nowhere near a face finds nothing
    empty = np.zeros_like(mask)
    empty[-2, -2] = 1
    assert len(d.run([image], [DetectionRequest(motion=empty)])[0]) == 0


def test_refresh_refinds_tracked_faces_without_p_net(pipeline: FacePipeline,
                                                     shared_dir: Path) -> None:
    frames, _, _ = sample_frames(shared_dir / "data" / "videos" / "short_hamilton_clip.mp4", 92, 10.0)
    d = _detector(pipeline)
    reference = [d.detect(f) for f in frames]
    before = _calls(d)
    found = total = 0
    for prev, cur, frame in zip(reference, reference[1:], frames[1:]):
        if not len(prev) or not len(cur):
            continue
        got = d.run([frame], [DetectionRequest(refresh=tuple(tuple(map(float, b)) for b in prev.boxes))])[0]
        # faces that were there in the previous frame too
        continuing = _iou(cur.boxes, prev.boxes).max(axis=1) >= 0.3
        total += int(continuing.sum())
        if len(got):
            found += int(((_iou(cur.boxes, got.boxes).max(axis=1) >= 0.5) & continuing).sum())
    assert _calls(d)[0] == before[0]  # no P-Net call at all
    print(f"refresh from the previous frame's boxes re-found {found} of {total} faces")
    assert total >= 100 and found >= 0.95 * total  # measured: 147 of 150


def test_refresh_where_there_is_no_face_finds_nothing(pipeline: FacePipeline, photos: Path) -> None:
    image = load_image(photos / "dlib_examples_faces" / "dogs.jpg")
    d = _detector(pipeline)
    got = d.run([image], [DetectionRequest(refresh=((50.0, 50.0, 150.0, 150.0), (200.0, 100.0, 260.0, 180.0)))])
    assert not (got[0].scores >= 0.95).any()


def test_an_empty_request_runs_no_network(pipeline: FacePipeline, video_frames: list[np.ndarray]) -> None:
    d = _detector(pipeline)
    out = d.run(video_frames, [DetectionRequest()] * len(video_frames))
    assert [len(o) for o in out] == [0, 0, 0] and _calls(d) == (0, 0, 0)
    assert d.last_kinds == ["none"] * 3


def test_mixed_requests_run_each_network_once(pipeline: FacePipeline,
                                              video_frames: list[np.ndarray]) -> None:
    d = _detector(pipeline)
    alone = [d.detect(f) for f in video_frames]
    refresh = tuple(tuple(map(float, b)) for b in alone[2].boxes)
    requests = [DetectionRequest.full(), DetectionRequest(regions=(Region((0, 0, 320, 360), 20.0),)),
                DetectionRequest(refresh=refresh), DetectionRequest()]
    frames = [*video_frames, video_frames[0]]
    before = _calls(d)
    out = d.run(frames, requests)
    calls = tuple(a - b for a, b in zip(_calls(d), before))
    # P-Net: the full frame's canvas and the regions' canvas; R-Net once, O-Net twice (its
    # second pass gives the landmarks) -- once more each when the first squares around a
    # refreshed face missed it, and O-Net once more when it rejected the best candidate
    # around a refreshed face and looks at the next ones
    assert calls[0] == 2 and calls[1] in (1, 2) and 2 <= calls[2] <= 4
    assert d.last_kinds == ["full", "regions", "refresh", "none"]
    assert _same_faces(out[0], alone[0], 0.99)
    assert len(out[3]) == 0
    # what the region covers (the left half), and nothing else
    left = alone[1].select(np.nonzero(alone[1].boxes[:, 2] <= 320)[0])
    assert _same_faces(out[1], left, 0.95)
    # refreshing a frame's own faces re-finds them (measured: 4 of 5, the fifth at 0.75)
    assert len(out[2]) >= len(alone[2]) - 1
    assert (_iou(out[2].boxes, alone[2].boxes).max(axis=1) >= 0.5).all()


def test_per_request_min_face(pipeline: FacePipeline, video_frames: list[np.ndarray]) -> None:
    d = _detector(pipeline, min_face=20.0)
    small = d.run(video_frames, [DetectionRequest.full(20.0)] * 3)
    large = d.run(video_frames, [DetectionRequest.full(60.0)] * 3)
    assert sum(len(x) for x in large) < sum(len(x) for x in small)
    for x in large:
        assert (np.minimum(x.boxes[:, 2] - x.boxes[:, 0], x.boxes[:, 3] - x.boxes[:, 1]) > 35).all()
