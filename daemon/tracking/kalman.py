"""Constant-velocity Kalman filter for one face box, in capture time (seconds), not frames.

State (8,): centre x, centre y, width, height, and their velocities in pixels per second.
Measurement (4,): the detected box as (cx, cy, w, h).

Why (cx, cy, w, h) and not ByteTrack's (cx, cy, aspect, h): a face box's width and height
move together but not in lockstep (MTCNN's regression changes the aspect with yaw and pose),
and with the aspect as a state its noise has to be a hand-set constant unrelated to the box's
size.  With w and h as states every noise term scales with the size it belongs to (x and w
with the width, y and h with the height), as in BoT-SORT, and predicted widths come out
right instead of being derived through an aspect ratio.

Why seconds: frames arrive at a configured rate and may be dropped, so the filter advances by
the capture-time gap `dt`; its process noise grows with `dt` (a continuous white-noise
acceleration model), so a long gap widens the prediction instead of trusting stale velocity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Sizes never shrink below this (pixels), whatever a prediction says.
MIN_SIDE = 1.0


@dataclass(frozen=True)
class MotionNoise:
    """Noise of the motion model, each as a fraction of the box's own width or height."""

    # Detector jitter: standard deviation of a measured coordinate.
    measurement: float = 0.05
    # Random-walk of the position and of the velocity, per sqrt(second).  At 10 fps this is
    # about ByteTrack's per-frame noise at 30 fps scaled to the longer interval.
    position: float = 0.25
    velocity: float = 1.0
    # Uncertainty of a new track's velocity (per second): faces start anywhere between still
    # and crossing two face widths per second.
    initial_velocity: float = 2.0


_MEASURE = np.hstack([np.eye(4), np.zeros((4, 4))])


class BoxKalman:
    """The state of one track's box; `predict` to a capture time, then `correct` with a box."""

    def __init__(self, box: np.ndarray, noise: MotionNoise = MotionNoise()) -> None:
        self.noise = noise
        z = xyxy_to_cxcywh(box)
        self.mean = np.concatenate([z, np.zeros(4)])
        scale = _scale(z)
        std = np.concatenate([2 * noise.measurement * scale, noise.initial_velocity * scale])
        self.cov = np.diag(std ** 2)

    def predict(self, dt: float) -> None:
        if dt <= 0:
            return
        f = np.eye(8)
        f[:4, 4:] = dt * np.eye(4)
        scale = _scale(self.mean[:4])
        q = np.diag(np.concatenate([(self.noise.position * scale) ** 2,
                                    (self.noise.velocity * scale) ** 2]) * dt)
        self.mean = f @ self.mean
        self.mean[2:4] = np.maximum(self.mean[2:4], MIN_SIDE)
        self.cov = f @ self.cov @ f.T + q

    def predicted_box(self, dt: float) -> np.ndarray:
        """The box `dt` seconds ahead (x1, y1, x2, y2), leaving the filter as it is."""
        mean = self.mean[:4] + max(dt, 0.0) * self.mean[4:]
        mean[2:4] = np.maximum(mean[2:4], MIN_SIDE)
        return cxcywh_to_xyxy(mean)

    def correct(self, box: np.ndarray) -> None:
        z = xyxy_to_cxcywh(box)
        r = np.diag((self.noise.measurement * _scale(self.mean[:4])) ** 2)
        s = _MEASURE @ self.cov @ _MEASURE.T + r
        gain = np.linalg.solve(s, _MEASURE @ self.cov).T  # cov H^T S^-1, S symmetric
        self.mean = self.mean + gain @ (z - _MEASURE @ self.mean)
        self.mean[2:4] = np.maximum(self.mean[2:4], MIN_SIDE)
        self.cov = (np.eye(8) - gain @ _MEASURE) @ self.cov

    def freeze_size(self) -> None:
        """Stop the size drifting while nothing is measured (as ByteTrack does for lost tracks)."""
        self.mean[6:8] = 0.0

    @property
    def box(self) -> np.ndarray:
        """The estimated box as (x1, y1, x2, y2)."""
        return cxcywh_to_xyxy(self.mean[:4])

    @property
    def velocity(self) -> np.ndarray:
        """Centre velocity (vx, vy) in pixels per second."""
        return self.mean[4:6].copy()


def _scale(z: np.ndarray) -> np.ndarray:
    w, h = max(float(z[2]), MIN_SIDE), max(float(z[3]), MIN_SIDE)
    return np.array([w, h, w, h])


def xyxy_to_cxcywh(box: np.ndarray) -> np.ndarray:
    b = np.asarray(box, np.float64)
    return np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2, b[2] - b[0], b[3] - b[1]])


def cxcywh_to_xyxy(z: np.ndarray) -> np.ndarray:
    cx, cy, w, h = (float(v) for v in z[:4])
    return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
