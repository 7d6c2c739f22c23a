"""ONNX Runtime backend: the default, on the CPU (or CUDA when ONNX Runtime offers it).

Memory: every CPU session of a process allocates from one shared arena (ONNX Runtime's
environment allocator) instead of one arena each, and a call whose input is larger than
`MAX_INPUT_BYTES` is run in chunks along its batch axis.  An arena keeps the largest working
set it ever served, and the detector's and embedder's batches vary from call to call (P-Net
canvases of several frames, hundreds of R-Net crops): per-session arenas holding each one's
peak made the inference process of four cameras about 440 MiB larger than with one bounded
arena (`facewatch bench pipeline` reports the tree's PSS).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from facewatch.engines.backends.base import BackendOptions
from facewatch.errors import BackendUnavailableError, ModelError


class OnnxRuntimeRunner:
    def __init__(self, model_path: Path, options: BackendOptions) -> None:
        import onnxruntime as ort

        # Precision is the model file's own (the store opens the .int8 / .fp16 variant): an
        # FP16 model runs here too, slowly on a CPU, which is how its accuracy is checked.
        so = ort.SessionOptions()
        providers = _providers(options, ort.get_available_providers())
        if providers == ["CPUExecutionProvider"]:
            _share_cpu_arena(ort)
            so.add_session_config_entry("session.use_env_allocators", "1")
        so.intra_op_num_threads = options.intra_op_threads
        so.inter_op_num_threads = options.inter_op_threads
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        spin = "1" if options.allow_spinning else "0"
        so.add_session_config_entry("session.intra_op.allow_spinning", spin)
        so.add_session_config_entry("session.inter_op.allow_spinning", spin)
        try:
            self._session = ort.InferenceSession(str(model_path), so, providers=providers)
        except Exception as exc:  # ORT raises its own exception types for every load failure
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"{model_path}: ONNX Runtime cannot load it ({first_line})") from None
        self.model_path = model_path
        self.input_names = [i.name for i in self._session.get_inputs()]
        self.output_names = [o.name for o in self._session.get_outputs()]
        self.providers = self._session.get_providers()
        first = self._session.get_inputs()[0].shape
        # chunk only models with one input and a free batch axis (some have a fixed batch)
        self._chunkable = len(self.input_names) == 1 and bool(first) and not isinstance(first[0], int)

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._chunkable:
            (name, x), = inputs.items()
            per_item = max(1, x[:1].nbytes)
            step = max(1, MAX_INPUT_BYTES // per_item)
            if x.shape[0] > step:
                parts = [self._run({name: x[i:i + step]}) for i in range(0, x.shape[0], step)]
                return {k: np.concatenate([p[k] for p in parts]) for k in self.output_names}
        return self._run(inputs)

    def _run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = self._session.run(self.output_names, inputs)
        return dict(zip(self.output_names, outputs))

    def input_shape(self, name: str) -> list[int | str] | None:
        """The declared shape of an input, free axes as their names."""
        for i in self._session.get_inputs():
            if i.name == name:
                return [d if isinstance(d, int) else str(d) for d in i.shape]
        return None


# Inputs above this size are run in chunks: about one P-Net canvas of a 640x360 frame at
# min_face 20 (2.2 MB) or less, 150 R-Net crops, 38 O-Net crops, 7 embedder faces.  Larger
# calls gained no speed on the CPU (MobileFaceNet: 312 faces/s at batch 8, 306 at 32).
MAX_INPUT_BYTES = 1 << 20

_arena_lock = threading.Lock()
_arena_registered = False


def _share_cpu_arena(ort: Any) -> None:
    """Register one CPU arena for every session of this process that asks for it
    (`session.use_env_allocators`); once per process."""
    global _arena_registered
    with _arena_lock:
        if _arena_registered:
            return
        memory = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0,
                                   ort.OrtMemType.DEFAULT)
        # defaults for the limit, growth, initial chunk and dead bytes
        ort.create_and_register_allocator(memory, ort.OrtArenaCfg(0, -1, -1, -1))
        _arena_registered = True


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
