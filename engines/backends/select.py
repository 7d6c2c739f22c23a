"""Pick the backend named in the options; heavy backends are imported only when chosen.

The TensorRT module imports neither TensorRT nor CUDA itself: its runner first asks cuda-python
whether a GPU exists (`facewatch.engines.backends.tensorrt.cuda`), and only then loads TensorRT.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from facewatch.engines.backends.base import BackendOptions, Runner


def open_runner(model_path: Path, options: BackendOptions, role: str | None = None,
                expected: Sequence[tuple[int, ...]] = ()) -> Runner:
    """`role` (the manifest's) and `expected` input shapes only matter to TensorRT: it tiles
    P-Net inputs larger than its profiles, and chooses among engines by the shapes expected."""
    if options.backend == "tensorrt":
        from facewatch.engines.backends.tensorrt.runner import TensorRTRunner

        return TensorRTRunner(model_path, options, role=role, expected=expected)
    from facewatch.engines.backends.onnxruntime import OnnxRuntimeRunner

    return OnnxRuntimeRunner(model_path, options)
