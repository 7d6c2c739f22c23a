"""One camera's detection settings, as the detection gate takes them (`DetectionGate`).

In a module of their own, with no image library behind them: the config maps its sections
onto them (`facewatch.config.stages`), and every process that reads the config imports it.
"""

from __future__ import annotations

from dataclasses import dataclass

from facewatch.errors import require


@dataclass(frozen=True)
class GateSettings:
    """One camera's detection settings (`cameras[].detection` over `inference` defaults)."""

    # Smallest face to find, in pixels of the analysed frame.
    min_face: float = 40.0
    # Look only where the picture changed and where tracked faces are; False: every frame whole.
    motion: bool = True
    # The whole frame at least this often (seconds of capture time) while gating; 0: always.
    full_frame_every_s: float = 5.0
    # Grey levels a pixel must change by to be motion (see `MotionSettings.threshold`).
    motion_threshold: float = 15.0
    # Periodic full passes are offset by this fraction of their period, so that cameras
    # started together do not all search whole frames in the same batch.
    phase: float = 0.0

    def __post_init__(self) -> None:
        require(12.0 <= self.min_face <= 4096.0, "min_face",
                f"must be 12 to 4096 pixels, got {self.min_face:g}")
        require(0.0 <= self.full_frame_every_s <= 3600.0, "full_frame_every_s",
                f"must be 0 (every frame) to 3600 s, got {self.full_frame_every_s:g}")
        require(1.0 <= self.motion_threshold <= 255.0, "motion_threshold",
                f"must be 1 to 255 grey levels, got {self.motion_threshold:g}")
        require(0.0 <= self.phase < 1.0, "phase", f"must be in [0, 1), got {self.phase:g}")
