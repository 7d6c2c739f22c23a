"""Typed records passed between pipeline stages: detections → aligned faces → embeddings.

Stages work on whole frames or batches, so records hold arrays (one row per face) rather than
one object per face; `FaceDetection` is the per-face view for code that wants one face at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FaceDetection:
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels
    score: float
    landmarks: tuple[tuple[float, float], ...]  # eyes (left, right in the image), nose, mouth corners

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]


@dataclass(frozen=True)
class Detections:
    """Faces found in one frame, best score first.

    boxes: float32 (K, 4) x1, y1, x2, y2 in pixel-edge coordinates;
    scores: float32 (K,);
    landmarks: float32 (K, 5, 2) x, y in pixel-centre coordinates (pixel i centred on i).
    """

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray

    @staticmethod
    def empty() -> Detections:
        return Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32),
                          np.zeros((0, 5, 2), np.float32))

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def select(self, index: np.ndarray | list[int]) -> Detections:
        idx = np.asarray(index, dtype=np.int64)
        return Detections(self.boxes[idx], self.scores[idx], self.landmarks[idx])

    def faces(self) -> list[FaceDetection]:
        return [
            FaceDetection(
                box=tuple(float(v) for v in self.boxes[i]),  # type: ignore[arg-type]
                score=float(self.scores[i]),
                landmarks=tuple((float(x), float(y)) for x, y in self.landmarks[i]),
            )
            for i in range(len(self))
        ]
