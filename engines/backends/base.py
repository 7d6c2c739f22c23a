"""The one interface every inference backend implements: named arrays in, named arrays out.

A `Runner` wraps one loaded model.  Stages (detector, embedder) only ever see this interface,
so ONNX Runtime on a CPU and TensorRT on a GPU are interchangeable behind it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

BackendName = Literal["onnxruntime", "tensorrt"]
Precision = Literal["fp32", "fp16", "int8"]


@dataclass(frozen=True)
class BackendOptions:
    """How to run models; the same options apply to every model a process loads."""

    backend: BackendName = "onnxruntime"
    precision: Precision = "fp32"
    # Threads inside one operator.  Two per session on a 2-core box; more sessions than
    # cores only helps with spinning switched off (see `allow_spinning`).
    intra_op_threads: int = 2
    inter_op_threads: int = 1
    # ONNX Runtime's worker threads busy-wait between operators by default.  Several sessions
    # in one process then fight over the cores: measured here, a naive MTCNN ran 80 ms/frame
    # with spinning and 33 ms without.
    allow_spinning: bool = False
    # "auto" uses CUDA when ONNX Runtime offers it, otherwise the CPU.
    device: Literal["auto", "cpu", "cuda"] = "cpu"


class Runner(Protocol):
    """One loaded model."""

    model_path: Path
    input_names: list[str]
    output_names: list[str]

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch; every output is returned, keyed by its name."""
        ...
