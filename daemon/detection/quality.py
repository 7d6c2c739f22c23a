"""A 0..1 face quality score for choosing which frames of a track to embed and show.

Four cues, each mapped to 0..1: size (small faces embed poorly), detector confidence, pose
(frontal faces match best) and sharpness (motion blur ruins embeddings).  They are multiplied,
but pose and sharpness only scale the score down to 0.3: on real video (the Hamilton clip's
audience) a three-quarter view in soft focus is often the best face a track ever gets, and it
must still rank above a worse one rather than tie with everything at 0.
"""

from __future__ import annotations

import cv2
import numpy as np

from facewatch.detection.detections import Detections

# A face side at or below MIN_SIDE scores 0 for size, at or above GOOD_SIDE scores 1.
MIN_SIDE, GOOD_SIDE = 20.0, 80.0
# Variance of the Laplacian on the 112x112 grey crop: below ~20 is visibly blurred, 150+ sharp.
BLUR_LOW, BLUR_HIGH = 20.0, 150.0


def face_quality(detections: Detections, crops: np.ndarray) -> np.ndarray:
    """Quality per face (K,), from detections and their aligned crops (K, 112, 112, 3)."""
    if len(detections) == 0:
        return np.zeros(0, np.float32)
    side = np.minimum(detections.boxes[:, 2] - detections.boxes[:, 0],
                      detections.boxes[:, 3] - detections.boxes[:, 1])
    size = np.clip((side - MIN_SIDE) / (GOOD_SIDE - MIN_SIDE), 0.0, 1.0)
    confidence = np.clip((detections.scores - 0.7) / 0.3, 0.0, 1.0)
    pose = 0.3 + 0.7 * frontalness(detections.landmarks)
    sharp = 0.3 + 0.7 * sharpness(crops)
    quality: np.ndarray = (size * (0.5 + 0.5 * confidence) * pose * sharp).astype(np.float32)
    return quality


def frontalness(landmarks: np.ndarray) -> np.ndarray:
    """1 for a frontal face, falling towards 0 with yaw and roll, from the five landmarks.

    Yaw: how far the nose sits from the midpoint of the eyes, relative to the eye distance
    (about 0.5 at a full profile).  Roll: the angle of the eye line.
    """
    left_eye, right_eye, nose = landmarks[:, 0], landmarks[:, 1], landmarks[:, 2]
    eye_vec = right_eye - left_eye
    eye_dist = np.maximum(np.linalg.norm(eye_vec, axis=1), 1e-6)
    mid = (left_eye + right_eye) / 2
    # component of (nose - mid) along the eye line, as a fraction of the eye distance
    yaw = np.abs(np.einsum("ij,ij->i", nose - mid, eye_vec)) / eye_dist ** 2
    roll = np.abs(np.arctan2(eye_vec[:, 1], eye_vec[:, 0]))
    score: np.ndarray = np.clip(1.0 - yaw / 0.5, 0.0, 1.0) * np.clip(1.0 - roll / (np.pi / 4), 0.0, 1.0)
    return score


def sharpness(crops: np.ndarray) -> np.ndarray:
    out = np.empty(crops.shape[0], np.float32)
    for i, crop in enumerate(crops):
        grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
        out[i] = cv2.Laplacian(grey, cv2.CV_32F).var()
    score: np.ndarray = np.clip((out - BLUR_LOW) / (BLUR_HIGH - BLUR_LOW), 0.0, 1.0)
    return score
