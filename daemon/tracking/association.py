"""Matching predicted track boxes to detected boxes: IoU and an optimal one-to-one assignment."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

# Cost of a pair below the IoU threshold: large enough that the solver only takes it when
# nothing else is possible, and such pairs are dropped afterwards.
_FORBIDDEN = 1e6


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in a (N, 4) with every box in b (M, 4), boxes as x1, y1, x2, y2."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    if a.shape[0] == 0 or b.shape[0] == 0:
        return np.zeros((a.shape[0], b.shape[0]))
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    out: np.ndarray = np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)
    return out


def match(iou: np.ndarray, min_iou: float) -> list[tuple[int, int]]:
    """Rows matched to columns, maximising the number of pairs at or above `min_iou` and then
    their total IoU (Hungarian algorithm on 1 - IoU); pairs below `min_iou` are never made."""
    if iou.size == 0:
        return []
    feasible = iou >= min_iou
    if not feasible.any():
        return []
    cost = np.where(feasible, 1.0 - iou, _FORBIDDEN)
    rows, cols = linear_sum_assignment(cost)
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if feasible[r, c]]
