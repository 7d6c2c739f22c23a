"""TensorRT optimisation profiles for facewatch's models.

P-Net runs on packed pyramid canvases whose size depends only on the frame size, min_face and
the pyramid factor, so it gets one exact profile per canvas of the expected frame sizes, taken
from the detector's own `pyramid_layout` (batch = frames of that size in one call).  R-Net, O-Net and
the embedder have fixed spatial sizes and a free batch.  Larger batches than a profile's
maximum are run in chunks by the runner, so the maximum bounds memory, not correctness.
"""

from __future__ import annotations

from collections.abc import Iterable

from facewatch.detection.detector import MtcnnSettings, pyramid_layout
from facewatch.engines.backends.tensorrt.plans import Profile
from facewatch.engines.manifest import ModelManifest

DEFAULT_FRAME_SIZES: tuple[tuple[int, int], ...] = ((640, 360), (1280, 720), (1920, 1080))
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


def profiles_for(manifest: ModelManifest, max_batch: int,
                 frame_sizes: Iterable[tuple[int, int]] = DEFAULT_FRAME_SIZES,
                 detector: MtcnnSettings | None = None) -> tuple[Profile, ...]:
    name = manifest.input.name
    detector = detector or MtcnnSettings()
    if manifest.role == "mtcnn.pnet":
        return tuple(Profile(name, (1, 3, h, w), (1, 3, h, w), (max_batch, 3, h, w))
                     for h, w in pnet_canvases(frame_sizes, detector))
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
