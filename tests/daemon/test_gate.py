"""The detection gate's decisions, on real frames: nothing on a still scene, refresh for tracked
faces, P-Net where the picture changed, the whole frame at the start, after a global change and
periodically; and with motion off, the whole frame always."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from facewatch.bench.sources import sample_frames, still_frames
from facewatch.detection.detections import Detections
from facewatch.detection.gate import DetectionGate, TrackHint, track_hints, untracked_boxes
from facewatch.detection.settings import GateSettings
from facewatch.errors import ConfigError

FPS = 10.0


@pytest.fixture(scope="module")
def room(shared_dir: Path) -> np.ndarray:
    frames, _, _ = sample_frames(shared_dir / "data" / "videos" / "opencv_tree_noface.avi", 1, None)
    return np.ascontiguousarray(cv2.resize(frames[0], (640, 360), interpolation=cv2.INTER_AREA))


def plan_all(gate: DetectionGate, frames: list[np.ndarray], tracks: list[TrackHint] | None = None,
             start: int = 0) -> list[str]:
    return [gate.plan(f, (start + i) / FPS, tracks or []).kind for i, f in enumerate(frames)]


def test_a_still_scene_costs_nothing_between_full_frames(room: np.ndarray) -> None:
    gate = DetectionGate(GateSettings(full_frame_every_s=5.0))
    kinds = plan_all(gate, still_frames(room, 120, noise=3.0))
    assert kinds[0] == "full"  # no background yet
    assert kinds[1:50] == ["none"] * 49
    assert kinds[50] == "full"  # 5 s later: the safety net
    assert kinds[51:100] == ["none"] * 49 and kinds[100] == "full"


def test_tracked_faces_are_refreshed_only(room: np.ndarray) -> None:
    gate = DetectionGate()
    face = (100.0, 80.0, 160.0, 160.0)
    frames = still_frames(room, 10, noise=3.0)
    gate.plan(frames[0], 0.0)
    request = gate.plan(frames[1], 0.1, [TrackHint(face, "confirmed")])
    assert request.kind == "refresh" and request.refresh == (face,)
    assert not request.regions and not request.full_frame and not request.has_motion


def test_new_and_lost_tracks_get_a_region_at_their_scale(room: np.ndarray) -> None:
    gate = DetectionGate(GateSettings(min_face=20.0))
    frames = still_frames(room, 3, noise=3.0)
    gate.plan(frames[0], 0.0)
    face = (300.0, 100.0, 360.0, 180.0)
    request = gate.plan(frames[1], 0.1, [TrackHint(face, "tentative"),
                                         TrackHint((10.0, 10.0, 40.0, 50.0), "untracked")])
    assert request.kind == "regions" and len(request.refresh) == 2
    region = request.regions[0]  # the untracked face gets one too
    x1, y1, x2, y2 = region.box
    assert x1 < 300 and y1 < 100 and x2 > 360 and y2 > 180
    assert region.min_face >= 20 and region.max_face is not None and region.min_face < 80 < region.max_face


def test_motion_outside_tracked_faces_is_searched(room: np.ndarray, examples: Path) -> None:
    from facewatch.images import load_image

    face = cv2.resize(load_image(examples / "obama.jpg")[150:650, 250:660], (90, 110))
    gate = DetectionGate()
    frames = still_frames(room, 6, noise=3.0)
    for i in range(3):
        assert gate.plan(frames[i], i / FPS).kind in ("full", "none")
    moved = frames[3].copy()
    moved[50:160, 400:490] = face
    request = gate.plan(moved, 0.3)
    assert request.kind == "regions" and request.motion is not None
    mh, mw = request.motion.shape
    ys, xs = np.nonzero(request.motion)
    # the changed cells are where the face was pasted
    assert (xs * 640 / mw).min() >= 380 and (xs * 640 / mw).max() <= 500
    assert (ys * 360 / mh).min() >= 30 and (ys * 360 / mh).max() <= 180
    # the same change inside a tracked face's box is that face moving: not searched
    gate2 = DetectionGate()
    for i in range(3):
        gate2.plan(frames[i], i / FPS)
    tracked = gate2.plan(moved, 0.3, [TrackHint((400.0, 50.0, 490.0, 160.0), "confirmed")])
    assert tracked.kind == "refresh"


def test_a_global_change_searches_the_whole_frame(room: np.ndarray) -> None:
    gate = DetectionGate()
    day = still_frames(room, 5, noise=3.0)
    night = still_frames(255 - room, 5, noise=3.0)
    kinds = plan_all(gate, day + night)
    assert kinds == ["full"] + ["none"] * 4 + ["full"] + ["none"] * 4


def test_motion_off_or_no_interval_is_the_plain_detector(room: np.ndarray) -> None:
    frames = still_frames(room, 5, noise=3.0)
    for settings in (GateSettings(motion=False), GateSettings(full_frame_every_s=0)):
        requests = [DetectionGate(settings).plan(f, i / FPS, [TrackHint((0, 0, 50, 50), "confirmed")])
                    for i, f in enumerate(frames)]
        assert all(r.full_frame and not r.refresh for r in requests)
        assert all(r.min_face == settings.min_face for r in requests)


def test_phase_spreads_the_periodic_full_frames(room: np.ndarray) -> None:
    frames = still_frames(room, 60, noise=3.0)
    a = plan_all(DetectionGate(GateSettings(full_frame_every_s=2.0)), frames)
    b = plan_all(DetectionGate(GateSettings(full_frame_every_s=2.0, phase=0.5)), frames)
    assert [i for i, k in enumerate(a) if k == "full"] == [0, 20, 40]
    assert [i for i, k in enumerate(b) if k == "full"] == [0, 10, 30, 50]


def test_reset_looks_at_the_whole_frame_again(room: np.ndarray) -> None:
    gate = DetectionGate()
    frames = still_frames(room, 4, noise=3.0)
    assert plan_all(gate, frames[:2]) == ["full", "none"]
    gate.reset()
    assert plan_all(gate, frames[2:], start=2) == ["full", "none"]


def test_hints_from_a_tracker_and_untracked_faces() -> None:
    predicted = [(1, "confirmed", (0.0, 0.0, 10.0, 10.0)), (2, "tentative", (5.0, 5.0, 9.0, 9.0))]
    hints = track_hints(predicted, [(20.0, 20.0, 30.0, 30.0)])
    assert [h.state for h in hints] == ["confirmed", "tentative", "untracked"]
    found = Detections(np.array([[0, 0, 10, 10], [20, 20, 30, 30]], np.float32),
                       np.array([0.99, 0.8], np.float32), np.zeros((2, 5, 2), np.float32))
    assert untracked_boxes(found, [0, None]) == [(20.0, 20.0, 30.0, 30.0)]


def test_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="min_face"):
        GateSettings(min_face=5)
    with pytest.raises(ConfigError, match="full_frame_every_s"):
        GateSettings(full_frame_every_s=-1)
