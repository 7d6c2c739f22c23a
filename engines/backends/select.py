"""Pick the backend named in the options; heavy backends are imported only when chosen.

The TensorRT module imports neither TensorRT nor CUDA itself: its runner first asks cuda-python
whether a GPU exists (`facewatch.engines.backends.tensorrt.cuda`), and only then loads TensorRT.
"""

from __future__ import annotations

from pathlib import Path

from facewatch.engines.backends.base import BackendOptions, Runner


def open_runner(model_path: Path, options: BackendOptions) -> Runner:
    if options.backend == "tensorrt":
        from facewatch.engines.backends.tensorrt.runner import TensorRTRunner

        return TensorRTRunner(model_path, options)
    from facewatch.engines.backends.onnxruntime import OnnxRuntimeRunner

    return OnnxRuntimeRunner(model_path, options)
