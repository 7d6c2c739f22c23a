"""Matching predicted track boxes to detected boxes: IoU and an optimal one-to-one assignment."""

from __future__ import annotations

import numpy as np

from facewatch.boxes import iou_matrix

__all__ = ["iou_matrix", "match"]

# Cost of a pair below the IoU threshold: large enough that the solver only takes it when
# nothing else is possible, and such pairs are dropped afterwards.
_FORBIDDEN = 1e6


def match(iou: np.ndarray, min_iou: float) -> list[tuple[int, int]]:
    """Rows matched to columns, maximising the number of pairs at or above `min_iou` and then
    their total IoU (Hungarian algorithm on 1 - IoU); pairs below `min_iou` are never made."""
    if iou.size == 0:
        return []
    feasible = iou >= min_iou
    if not feasible.any():
        return []
    cost = np.where(feasible, 1.0 - iou, _FORBIDDEN)
    # Imported here, not with the module: scipy.optimize is ~40 MiB of PSS, and every process
    # that reads the config imports the tracker's settings, but only the inference process
    # ever matches.
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(cost)
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if feasible[r, c]]
