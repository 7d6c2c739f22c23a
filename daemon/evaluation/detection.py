"""Detector recall against hand-drawn face boxes, by face size.

Photos come with dlib's image-metadata XML (`<image file=...><box top left width height/>`,
as in dlib's `examples/faces`).  A drawn box counts as found when a detection overlaps it at
IoU >= 0.3 (drawn boxes are tighter than MTCNN's), matched one-to-one, best overlap first.
Recall is reported per band of drawn-box height, since small faces are where detectors differ.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facewatch.boxes import iou_matrix
from facewatch.calibration.gate import ANNOTATION_IOU, read_dlib_annotations
from facewatch.detection.detector import MtcnnDetector
from facewatch.errors import BadInputError
from facewatch.images import load_image

# Face heights in pixels: [low, high) per band.
BANDS: tuple[tuple[float, float], ...] = ((0, 20), (20, 40), (40, 80), (80, float("inf")))


@dataclass(frozen=True)
class BandRecall:
    low: float
    high: float
    faces: int
    found: int

    @property
    def recall(self) -> float | None:
        return self.found / self.faces if self.faces else None

    @property
    def label(self) -> str:
        return f">= {self.low:g} px" if self.high == float("inf") else f"{self.low:g}-{self.high:g} px"


@dataclass(frozen=True)
class DetectorRecall:
    photos: int
    faces: int
    found: int
    detections: int  # everything the detector returned, matched or not
    bands: tuple[BandRecall, ...]

    @property
    def recall(self) -> float | None:
        return self.found / self.faces if self.faces else None


def matched_truth(truth: np.ndarray, found: np.ndarray, iou: float = ANNOTATION_IOU) -> np.ndarray:
    """Which truth boxes a detection covers: greedy one-to-one, best overlap first; (N,) bool."""
    m = iou_matrix(truth, found)
    hit = np.zeros(truth.shape[0], bool)
    while m.size and m.max() >= iou:
        i, j = np.unravel_index(int(np.argmax(m)), m.shape)
        hit[i] = True
        m[i, :] = -1
        m[:, j] = -1
    return hit


def detector_recall(detector: MtcnnDetector, folder: Path) -> DetectorRecall:
    """Recall of `detector` on the annotated photos in `folder`; BadInputError if there are none."""
    annotated = read_dlib_annotations(folder)
    if not annotated:
        raise BadInputError(f"{folder}: no photos annotated in a dlib XML file (<image file=...>"
                            f"<box top left width height/></image>)")
    heights, hits = [], []
    detections = 0
    for photo in annotated:
        boxes = detector.detect(load_image(photo.path)).boxes
        detections += boxes.shape[0]
        heights.append(photo.boxes[:, 3] - photo.boxes[:, 1])
        hits.append(matched_truth(photo.boxes, boxes))
    height, hit = np.concatenate(heights), np.concatenate(hits)
    bands = tuple(BandRecall(low, high, int(((height >= low) & (height < high)).sum()),
                             int(((height >= low) & (height < high) & hit).sum()))
                  for low, high in BANDS)
    return DetectorRecall(len(annotated), int(height.size), int(hit.sum()), detections, bands)
