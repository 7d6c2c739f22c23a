"""Where a camera's picture changed: a background model on a small grey copy of each frame.

Per frame, `MotionDetector.update` shrinks the frame (area averaging, which also averages away
most sensor noise) to a grey image a few pixels per smallest face, and compares it with a
running average of earlier frames:

- a global brightness change (auto exposure, a cloud, lights switched on) is taken out first:
  the background is shifted by the difference of the two images' mean brightness;
- a camera that shakes or pans (a pole in the wind, a PTZ camera turning) moves every edge of
  the picture: when much of it changed, the shift between background and frame is measured
  (phase correlation) and taken out too;
- a pixel has changed when it differs from the background by more than `threshold` grey
  levels, or by more than `noise_factor` times the frame's median difference if that is higher
  (a noisy night picture, rain, compression flicker raise the median, and with it the bar);
- specks smaller than a face at this scale (snowflakes, raindrops, single flickering blocks)
  are removed by a morphological opening, and what is left is grouped into boxes;
- when most of the picture changed at once (an IR switch at dusk, lightning, a PTZ camera
  moving fast, a cut in edited video) the background is relearnt from this frame and the
  frame is reported as a global change: the caller should look at the whole frame;
- the background is a running average with a short memory (`learn_s` seconds of capture
  time): what matters for finding new faces is what changed in the last moment, so a person
  who stopped, or a scene after a cut, stops counting as motion within a few frames.  (A face
  that appears without moving at all is the periodic full-frame pass's to find.)

Time is the frames' capture time, never the clock, so a file and a camera behave alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from facewatch.errors import require

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class MotionSettings:
    # Grey levels (0..255) a pixel of the small copy must change by to count as motion.
    threshold: float = 15.0
    # ... or this many times the frame's median change, when that is more.
    noise_factor: float = 4.0
    # The small copy has about this many pixels across the smallest face (min_face) ...
    pixels_per_min_face: float = 6.0
    # ... and is at least / at most this wide.
    min_width: int = 96
    max_width: int = 320
    # Time constant of the background's running average, seconds of capture time.
    learn_s: float = 0.15
    # More than this fraction of the picture changing at once is a global change.
    global_fraction: float = 0.4
    # When more than this fraction changed, look for a shift of the whole picture (camera
    # motion) and take it out if that explains the change better.
    shift_check_fraction: float = 0.05

    def __post_init__(self) -> None:
        require(1.0 <= self.threshold <= 255.0, "threshold",
                f"must be 1 to 255 grey levels, got {self.threshold:g}")
        require(0.0 < self.global_fraction <= 1.0, "global_fraction",
                f"must be in (0, 1], got {self.global_fraction:g}")
        require(self.learn_s > 0, "learn_s", f"must be > 0, got {self.learn_s:g}")
        require(16 <= self.min_width <= self.max_width, "min_width",
                f"need 16 <= min_width <= max_width, got {self.min_width}, {self.max_width}")


@dataclass(frozen=True, eq=False)
class Motion:
    """What changed in one frame."""

    boxes: tuple[Box, ...]  # regions of change in frame pixels, x1 y1 x2 y2
    changed: float  # fraction of the picture that changed, 0..1
    # The whole picture changed (or there was no background yet): look at all of it.
    global_change: bool
    # The changed pixels on the small grey copy's grid (uint8, 1 = changed); None with a
    # global change.
    mask: np.ndarray | None = None

    @property
    def any(self) -> bool:
        return self.global_change or bool(self.boxes)


class MotionDetector:
    """One camera's background model.  Not thread-safe; fed in capture order."""

    def __init__(self, min_face: float, settings: MotionSettings = MotionSettings()) -> None:
        self.settings = settings
        self.min_face = min_face
        self._background: np.ndarray | None = None  # float32 grey, small size
        self._frame_size: tuple[int, int] | None = None
        self._small_size = (0, 0)  # (width, height) of the grey copy
        self._kernel = np.ones((1, 1), np.uint8)
        self._step = 1
        self._min_area = 1
        self._window: np.ndarray = np.ones((1, 1), np.float32)
        self._last_ts: float | None = None

    def reset(self) -> None:
        """Forget the background (the next frame is a global change)."""
        self._background = None
        self._last_ts = None

    def update(self, frame: np.ndarray, capture_ts: float) -> Motion:
        """Compare an RGB frame (H, W, 3) with the background, then learn from it."""
        height, width = frame.shape[:2]
        if self._frame_size != (height, width):
            self._resize_for(height, width)
            self._background = None
        grey = self._grey(frame)
        dt = 0.0 if self._last_ts is None else max(0.0, capture_ts - self._last_ts)
        self._last_ts = capture_ts
        background = self._background
        if background is None:
            self._background = grey.astype(np.float32)
            return Motion((), 1.0, True)
        s = self.settings
        current = grey.astype(np.float32)
        # Most of the picture changing at once is a global change: an IR switch, lightning,
        # a cut (measured against the plain threshold: the noise bar below rises with it)
        everywhere = float((cv2.absdiff(current, background) > s.threshold).mean())
        if everywhere > s.global_fraction:
            aligned = self._aligned(current, background)  # or the camera moved a little
            if aligned is not None:
                everywhere = float((cv2.absdiff(current, aligned) > s.threshold).mean())
            if everywhere > s.global_fraction:
                self._background = current
                return Motion((), everywhere, True)
        # a global brightness change first (exposure, lights): it moves every pixel alike,
        # except where the picture is white or black already
        offset = float(np.median(current - background))
        changed = self._changed(current, _brightened(background, offset))
        fraction = float(changed.mean())
        if fraction > s.shift_check_fraction:
            aligned = self._aligned(current, background)
            if aligned is not None:
                moved = self._changed(current, _brightened(aligned, offset))
                if moved.mean() < fraction:
                    changed, fraction = moved, float(moved.mean())
                    background[:] = aligned
        if fraction > s.global_fraction:
            self._background = current
            return Motion((), fraction, True)
        self._learn(current, dt)
        return Motion(self._boxes(changed), fraction, False, changed)

    # ------------------------------------------------------------------------------------

    def _resize_for(self, height: int, width: int) -> None:
        s = self.settings
        wanted = width * s.pixels_per_min_face / max(self.min_face, 1.0)
        wanted = min(max(wanted, s.min_width), s.max_width, width)
        # a whole number of pixels per grey pixel: cv2's area filter is several times faster
        # then (0.25 against 1.2 ms for 640x360 on this project's machine)
        self._step = max(1, int(width // wanted))
        small_w, small_h = max(1, width // self._step), max(1, height // self._step)
        self._frame_size = (height, width)
        self._small_size = (small_w, small_h)
        # a face of min_face pixels spans `face` pixels here: specks below half of it go
        face = self.min_face / self._step
        k = max(1, int(face / 2))
        self._kernel = np.ones((k, k), np.uint8)
        self._min_area = max(1, int((face / 2) ** 2))
        self._window = np.asarray(cv2.createHanningWindow(self._small_size, cv2.CV_32F))

    def _grey(self, frame: np.ndarray) -> np.ndarray:
        """The grey copy: every `step` x `step` pixels of the frame (cut to a whole number of
        them) averaged into one."""
        grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        w, h = self._small_size
        if self._step > 1:
            grey = cv2.resize(grey[:h * self._step, :w * self._step], (w, h),
                              interpolation=cv2.INTER_AREA)
        out: np.ndarray = grey
        return out

    def _changed(self, current: np.ndarray, background: np.ndarray) -> np.ndarray:
        """1 where `current` differs from `background` beyond the noise, specks removed."""
        s = self.settings
        diff = cv2.absdiff(current, background)
        bar = max(s.threshold, s.noise_factor * float(np.median(diff)))
        changed = (diff > bar).astype(np.uint8)
        out: np.ndarray = cv2.morphologyEx(changed, cv2.MORPH_OPEN, self._kernel)
        return out

    def _aligned(self, current: np.ndarray, background: np.ndarray) -> np.ndarray | None:
        """The background moved by the camera's shift since, or None if there is no clear
        shift.  The strip the shift uncovers is taken from the current frame: new there, but
        a camera shaking or turning slowly brings in only a few pixels a frame."""
        (dx, dy), response = cv2.phaseCorrelate(background, current, self._window)
        h, w = current.shape
        if response < 0.2 or (abs(dx) < 0.5 and abs(dy) < 0.5) or abs(dx) > w / 4 or abs(dy) > h / 4:
            return None
        shift = np.array([[1, 0, dx], [0, 1, dy]], np.float32)
        aligned: np.ndarray = cv2.warpAffine(background, shift, (w, h), flags=cv2.INTER_LINEAR,
                                             borderMode=cv2.BORDER_CONSTANT, borderValue=-1.0)
        out: np.ndarray = np.where(aligned < 0, current, aligned)
        return out

    def _learn(self, current: np.ndarray, dt: float) -> None:
        assert self._background is not None
        if dt > 0:
            cv2.accumulateWeighted(current, self._background, 1.0 - math.exp(-dt / self.settings.learn_s))

    def _boxes(self, changed: np.ndarray) -> tuple[Box, ...]:
        if not changed.any():
            return ()
        count, _labels, stats, _ = cv2.connectedComponentsWithStats(changed, connectivity=8)
        assert self._frame_size is not None
        sx = self._frame_size[1] / self._small_size[0]
        sy = self._frame_size[0] / self._small_size[1]
        boxes = []
        for x, y, w, h, area in stats[1:count]:
            if area >= self._min_area:
                boxes.append((float(x * sx), float(y * sy), float((x + w) * sx), float((y + h) * sy)))
        return tuple(boxes)


def _brightened(image: np.ndarray, offset: float) -> np.ndarray:
    out: np.ndarray = np.clip(image + offset, 0.0, 255.0)
    return out
