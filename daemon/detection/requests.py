"""What the detector is asked to do with one frame: the whole frame, some regions, some boxes.

A `DetectionRequest` is made per frame (by a camera's `DetectionGate`, or `full()` for a plain
detector), and `MtcnnDetector.run` serves the requests of a whole batch of frames with one call
per network:

- `full_frame`: P-Net over the whole image pyramid, as a plain MTCNN does;
- `motion`: P-Net only where a face would overlap a changed pixel: at each pyramid level,
  around the changed pixels of a small mask by that level's face size (a face of 20 px near a
  speck of motion, a face of 200 px anywhere within 200 px of it);
- `regions`: P-Net only over these rectangles, at the pyramid levels of the faces asked for
  (around a new or lost track, at its face's scale);
- `refresh`: no P-Net at all: R-Net and O-Net look at these boxes (the predicted boxes of
  tracked faces) and a little around them -- unless the frame is searched whole anyway,
  which finds what a plain detector finds.

Every candidate, whichever way it came, then goes through the same R-Net and O-Net, so a face
found by a refresh is described exactly as the full-frame detector would describe it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

Box = tuple[float, float, float, float]  # x1, y1, x2, y2 in frame pixels


@dataclass(frozen=True)
class Region:
    """A rectangle where P-Net looks for faces from `min_face` to `max_face` pixels."""

    box: Box
    min_face: float
    # None: as large as the region allows (the region's shorter side)
    max_face: float | None = None


@dataclass(frozen=True, eq=False)
class DetectionRequest:
    full_frame: bool = False
    # Changed pixels of the frame, on a coarse grid: uint8 (h, w), nonzero where it changed;
    # cell (i, j) covers frame rows i * H / h .. (i + 1) * H / h (and columns alike).
    motion: np.ndarray | None = field(default=None)
    regions: tuple[Region, ...] = ()
    refresh: tuple[Box, ...] = ()
    # Smallest face of the frame's pyramid (the camera's `detection.min_face`); None: the
    # detector's own setting.
    min_face: float | None = None

    @staticmethod
    def full(min_face: float | None = None, refresh: tuple[Box, ...] = ()) -> DetectionRequest:
        return DetectionRequest(full_frame=True, refresh=refresh, min_face=min_face)

    @property
    def is_empty(self) -> bool:
        """Nothing to run: the frame costs no network call at all."""
        return not (self.full_frame or self.regions or self.refresh or self.has_motion)

    @property
    def has_motion(self) -> bool:
        return self.motion is not None and bool(self.motion.any())

    @property
    def kind(self) -> str:
        """"full", "regions", "refresh" or "none": what the frame cost, for metrics."""
        if self.full_frame:
            return "full"
        if self.regions or self.has_motion:
            return "regions"
        return "refresh" if self.refresh else "none"
