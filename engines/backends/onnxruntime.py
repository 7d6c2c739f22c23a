"""ONNX Runtime backend: the default, on the CPU (or CUDA when ONNX Runtime offers it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facewatch.engines.backends.base import BackendOptions
from facewatch.errors import BackendUnavailableError, ModelError


class OnnxRuntimeRunner:
    def __init__(self, model_path: Path, options: BackendOptions) -> None:
        import onnxruntime as ort

        # Precision is the model file's own (the store opens the .int8 / .fp16 variant): an
        # FP16 model runs here too, slowly on a CPU, which is how its accuracy is checked.
        so = ort.SessionOptions()
        so.intra_op_num_threads = options.intra_op_threads
        so.inter_op_num_threads = options.inter_op_threads
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        spin = "1" if options.allow_spinning else "0"
        so.add_session_config_entry("session.intra_op.allow_spinning", spin)
        so.add_session_config_entry("session.inter_op.allow_spinning", spin)
        providers = _providers(options, ort.get_available_providers())
        try:
            self._session = ort.InferenceSession(str(model_path), so, providers=providers)
        except Exception as exc:  # ORT raises its own exception types for every load failure
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"{model_path}: ONNX Runtime cannot load it ({first_line})") from None
        self.model_path = model_path
        self.input_names = [i.name for i in self._session.get_inputs()]
        self.output_names = [o.name for o in self._session.get_outputs()]
        self.providers = self._session.get_providers()

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = self._session.run(self.output_names, inputs)
        return dict(zip(self.output_names, outputs))

    def input_shape(self, name: str) -> list[int | str] | None:
        """The declared shape of an input, free axes as their names."""
        for i in self._session.get_inputs():
            if i.name == name:
                return [d if isinstance(d, int) else str(d) for d in i.shape]
        return None


def _providers(options: BackendOptions, available: list[str]) -> list[str]:
    if options.device == "cuda":
        if "CUDAExecutionProvider" not in available:
            raise BackendUnavailableError(
                "inference.device cuda: this ONNX Runtime has no CUDA provider "
                "(install onnxruntime-gpu, or use device cpu)")
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if options.device == "auto" and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]
