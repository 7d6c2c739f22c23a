"""Motion on real frames: what must not count (sensor noise, compression flicker, slow light
changes, a shaking camera, rain) and what must (a face moving in, a global change)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from facewatch.bench.sources import sample_frames, still_frames
from facewatch.detection.motion import Motion, MotionDetector, MotionSettings
from facewatch.errors import ConfigError
from facewatch.images import load_image

FPS = 10.0


@pytest.fixture(scope="module")
def room(shared_dir: Path) -> np.ndarray:
    """A real scene without a face: the first frame of the negative-control video, at the
    Hamilton clip's size (640 x 360)."""
    frames, _, _ = sample_frames(shared_dir / "data" / "videos" / "opencv_tree_noface.avi", 1, None)
    return np.ascontiguousarray(cv2.resize(frames[0], (640, 360), interpolation=cv2.INTER_AREA))


@pytest.fixture(scope="module")
def face(examples: Path) -> np.ndarray:
    """A 90 x 110 face crop from a real portrait."""
    image = load_image(examples / "obama.jpg")
    return np.ascontiguousarray(cv2.resize(image[150:650, 250:660], (90, 110)))


def feed(detector: MotionDetector, frames: list[np.ndarray], start: int = 0) -> list[Motion]:
    return [detector.update(f, (start + i) / FPS) for i, f in enumerate(frames)]


def paste(scene: np.ndarray, patch: np.ndarray, x: int, y: int) -> np.ndarray:
    out = scene.copy()
    out[y:y + patch.shape[0], x:x + patch.shape[1]] = patch
    return out


def test_the_first_frame_is_a_global_change(room: np.ndarray) -> None:
    first = MotionDetector(40.0).update(room, 0.0)
    assert first.global_change and first.any and first.mask is None


def test_sensor_noise_and_jpeg_flicker_are_not_motion(room: np.ndarray) -> None:
    detector = MotionDetector(40.0)
    results = feed(detector, still_frames(room, 60, noise=4.0, jpeg_quality=60))
    assert not any(m.any for m in results[1:])
    assert max(m.changed for m in results[1:]) == 0.0


def test_a_slow_light_change_is_not_motion(room: np.ndarray) -> None:
    # dusk in fast-forward: 40 grey levels darker over 10 s, with sensor noise
    frames = still_frames(room, 100, noise=3.0)
    dimmed = [np.clip(f.astype(np.int16) - int(0.4 * i), 0, 255).astype(np.uint8)
              for i, f in enumerate(frames)]
    results = feed(MotionDetector(40.0), dimmed)
    assert not any(m.any for m in results[1:])


def test_an_exposure_step_is_not_motion(room: np.ndarray) -> None:
    # auto exposure jumps by 25 grey levels from one frame to the next
    frames = still_frames(room, 20, noise=3.0)
    frames = frames[:10] + [np.clip(f.astype(np.int16) + 25, 0, 255).astype(np.uint8)
                            for f in frames[10:]]
    results = feed(MotionDetector(40.0), frames)
    assert not any(m.boxes for m in results[1:])


def test_a_shaking_camera_is_not_motion(room: np.ndarray) -> None:
    # a camera on a pole in the wind: the picture moves by up to 6 pixels, back and forth
    big = cv2.copyMakeBorder(room, 10, 10, 10, 10, cv2.BORDER_REFLECT)
    shifts = [(10 + dx, 10 + dy) for dx, dy in [(0, 0), (4, 2), (-3, 5), (6, -2), (0, 0), (-5, -4)] * 5]
    frames = [np.ascontiguousarray(big[y:y + 360, x:x + 640]) for x, y in shifts]
    results = feed(MotionDetector(40.0), frames)
    assert not any(m.global_change for m in results[1:])
    # what is left after taking the shift out is a speck here and there (an edge the shift
    # resampled), never the picture's edges everywhere: measured at most 0.5 % of it
    assert max(m.changed for m in results[1:]) < 0.01
    for m in results[1:]:
        assert sum((b[2] - b[0]) * (b[3] - b[1]) for b in m.boxes) < 0.02 * 640 * 360


def test_rain_is_not_motion(room: np.ndarray) -> None:
    # drops and flakes: a few hundred specks of 1-3 px in new places every frame
    rng = np.random.default_rng(1)
    frames = []
    for f in still_frames(room, 30, noise=3.0):
        f = f.copy()
        for x, y, r in zip(rng.integers(0, 640, 300), rng.integers(0, 360, 300), rng.integers(1, 3, 300)):
            cv2.circle(f, (int(x), int(y)), int(r), (255, 255, 255), -1)
        frames.append(f)
    results = feed(MotionDetector(40.0), frames)
    assert not any(m.any for m in results[1:])


def test_a_face_moving_in_is_motion_where_it_is(room: np.ndarray, face: np.ndarray) -> None:
    still = still_frames(room, 20, noise=3.0)
    frames = still[:5] + [paste(f, face, 60 + 30 * i, 120) for i, f in enumerate(still[5:])]
    results = feed(MotionDetector(40.0), frames)
    assert not any(m.any for m in results[1:5])
    for i, m in enumerate(results[5:]):
        x = 60 + 30 * i
        assert not m.global_change and m.boxes, i
        # some box overlaps the face where it is now
        assert any(b[0] < x + 90 and b[2] > x and b[1] < 230 and b[3] > 120 for b in m.boxes), i
        assert m.changed < 0.2
        assert m.mask is not None and m.mask.any()


def test_a_person_who_stops_stops_being_motion(room: np.ndarray, face: np.ndarray) -> None:
    frames = [paste(f, face, 300, 100) for f in still_frames(room, 20, noise=3.0)]
    results = feed(MotionDetector(40.0), still_frames(room, 5) + frames)
    assert results[5].boxes  # it appeared
    assert not any(m.any for m in results[10:])  # half a second later it is background


def test_an_ir_switch_is_a_global_change_then_quiet(room: np.ndarray) -> None:
    day = still_frames(room, 10, noise=3.0)
    grey = cv2.cvtColor(cv2.cvtColor(room, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    night = still_frames(255 - grey, 10, noise=3.0)  # infrared: no colour, other contrasts
    results = feed(MotionDetector(40.0), day + night)
    assert results[10].global_change
    assert not any(m.any for m in results[11:])


def test_the_small_copy_follows_min_face(room: np.ndarray) -> None:
    fine, coarse = MotionDetector(20.0), MotionDetector(80.0)
    fine.update(room, 0.0)
    coarse.update(room, 0.0)
    m_fine = fine.update(room, 0.1)
    m_coarse = coarse.update(room, 0.1)
    assert m_fine.mask is not None and m_coarse.mask is not None
    assert m_fine.mask.shape[1] > m_coarse.mask.shape[1] >= MotionSettings().min_width


def test_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="threshold"):
        MotionSettings(threshold=0)
    with pytest.raises(ConfigError, match="global_fraction"):
        MotionSettings(global_fraction=1.5)
