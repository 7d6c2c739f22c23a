"""TensorRT optimisation profiles for facewatch's models.

P-Net runs on packed pyramid canvases whose size depends only on the frame size, min_face and
the pyramid factor, so it gets one exact profile per canvas of the expected frame sizes, taken
from the detector's own `pyramid_layout` (batch = frames of that size in one call), and beside
them one ranged profile from 12x12 (one P-Net window) up to the largest of those canvases (at
least `PNET_RANGE_FLOOR`).  The runner prefers an exact profile and falls back to the range:
gallery photos, whose canvases have their own sizes, and a camera of a size nobody planned for
still run; a canvas larger than the range is cut into tiles the range takes
(`facewatch.engines.backends.tensorrt.dispatch`), so a photo of any size runs too.

R-Net, O-Net and the embedder have fixed spatial sizes and a free batch.  Larger batches than
a profile's maximum are run in chunks by the runner, so the maximum bounds memory, not
correctness.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from facewatch.detection.detector import MtcnnSettings, pyramid_layout
from facewatch.engines.backends.tensorrt.dispatch import Tiling
from facewatch.engines.backends.tensorrt.plans import Profile
from facewatch.engines.converters.mtcnn_outputs import PNET_CELL, PNET_STRIDE
from facewatch.engines.manifest import ModelManifest

DEFAULT_FRAME_SIZES: tuple[tuple[int, int], ...] = ((640, 360), (1280, 720), (1920, 1080))
# The ranged P-Net profile reaches at least this canvas (height, width), so a gallery photo is
# cut into few tiles even where only small cameras were planned for.  TensorRT sizes a
# context's memory by its profile's maximum: 8 canvases of this size need about 340 MB for
# P-Net's first layer, as much as the exact profile of 1080p frames at min_face 20.
PNET_RANGE_FLOOR = (1024, 1024)
# P-Net is fully convolutional without padding: a 12-px window at stride 2.
PNET_TILING = Tiling(field=PNET_CELL, stride=PNET_STRIDE)
# Candidate crops per call are many more than frames: R-Net sees hundreds per frame.
CANDIDATE_BATCH = {"mtcnn.rnet": 1024, "mtcnn.onet": 256}


def pnet_canvases(frame_sizes: Iterable[tuple[int, int]], settings: MtcnnSettings
                  ) -> list[tuple[int, int]]:
    """(height, width) of the P-Net canvas for each (width, height) frame size, as the detector
    lays it out; sizes too small for one P-Net window are skipped."""
    canvases = []
    for width, height in frame_sizes:
        layout = pyramid_layout(height, width, settings)
        if layout.levels:
            canvases.append((layout.canvas_height, layout.canvas_width))
    return sorted(set(canvases))


def camera_frame_sizes(config: Any) -> list[tuple[int, int]]:
    """(width, height) of the frames the daemon will analyse for each enabled camera of a
    `DaemonConfig`: its max_size, else the largest frame the daemon accepts without one (a
    camera's native size is not known before it is read; a smaller one runs on the range)."""
    from facewatch.supervisor.supervisor import DEFAULT_MAX_FRAME

    return sorted({tuple(c.max_size or DEFAULT_MAX_FRAME) for c in config.enabled_cameras})


def pnet_profiles(name: str, canvases: Iterable[tuple[int, int]], max_batch: int
                  ) -> tuple[Profile, ...]:
    """One exact profile per (height, width) canvas, then the 12x12-to-largest range."""
    canvases = sorted(set(canvases))
    exact = [Profile(name, (1, 3, h, w), (1, 3, h, w), (max_batch, 3, h, w)) for h, w in canvases]
    top_h = max([PNET_RANGE_FLOOR[0], *(h for h, _ in canvases)])
    top_w = max([PNET_RANGE_FLOOR[1], *(w for _, w in canvases)])
    opt_h, opt_w = max(canvases, key=lambda c: c[0] * c[1]) if canvases else (top_h, top_w)
    ranged = Profile(name, (1, 3, PNET_CELL, PNET_CELL), (1, 3, opt_h, opt_w),
                     (max_batch, 3, top_h, top_w))
    return (*exact, ranged)


def profiles_for(manifest: ModelManifest, max_batch: int,
                 frame_sizes: Iterable[tuple[int, int]] = DEFAULT_FRAME_SIZES,
                 detector: MtcnnSettings | None = None) -> tuple[Profile, ...]:
    """Profiles of one model; `detector` defaults to the daemon's own settings (min_face 40)."""
    name = manifest.input.name
    if detector is None:
        from facewatch.config.inference import InferenceConfig

        detector = InferenceConfig().detector_settings()
    if manifest.role == "mtcnn.pnet":
        return pnet_profiles(name, pnet_canvases(frame_sizes, detector), max_batch)
    fixed = [d for d in manifest.input.shape[1:]]
    if not all(isinstance(d, int) for d in fixed):
        raise ValueError(f"{manifest.name}: input {manifest.input.shape} has free axes other "
                         f"than the batch; no profile rule for it")
    dims = tuple(int(d) for d in fixed)
    top = max(max_batch, CANDIDATE_BATCH.get(manifest.role, max_batch))
    batch0 = manifest.input.shape[0]
    if isinstance(batch0, int) and batch0 > 0:  # a model with a fixed batch
        return (Profile(name, (batch0, *dims), (batch0, *dims), (batch0, *dims)),)
    opt = min(top, max(1, max_batch))
    return (Profile(name, (1, *dims), (opt, *dims), (top, *dims)),)
