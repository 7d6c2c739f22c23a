"""TensorRT backend (GPU).  Built in the GPU engines issue; until then it says so clearly."""

from __future__ import annotations

from pathlib import Path

from facewatch.engines.backends.base import BackendOptions
from facewatch.errors import BackendUnavailableError


class TensorRTRunner:
    def __init__(self, model_path: Path, options: BackendOptions) -> None:
        raise BackendUnavailableError(
            "inference.backend tensorrt is not available in this version; use onnxruntime")
