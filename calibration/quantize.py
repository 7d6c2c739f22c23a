"""Static INT8 quantisation of one ONNX model into a QDQ model, with ONNX Runtime's quantiser.

The QDQ layout: weights int8, symmetric, per output channel; activations uint8 with a zero
point.  Measured here on MobileFaceNet (foamliu), AVX-512 VNNI, ONNX Runtime 1.32:

- uint8 activations let ORT fold every ReLU6/ReLU into the quantisation range, so the whole
  network runs as QLinearConv/QLinearAdd: about 3x FP32 speed, cosine 0.994 to FP32.
- symmetric int8 activations (what TensorRT requires) keep all 32 Clip nodes in FP32 between
  quantised convolutions: FP32 speed, and only 0.981 cosine (a ReLU6 output uses half the range).

So the file on disk is the uint8 form, and `facewatch.calibration.symmetric` rewrites it for
TensorRT (saturate with a Clip, then a zero-point-free int8 range) from the same calibration.

The last weighted layer(s) before each output stay FP32 (`keep_tail`): an embedding quantised
to 256 levels per tensor lost measurably more agreement than the few FLOPs are worth.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import onnx

from facewatch.engines.files import atomic_write_bytes
from facewatch.errors import ModelError

CalibrationMethodName = Literal["minmax", "percentile", "entropy"]
WEIGHTED_OPS = ("Conv", "Gemm", "MatMul", "ConvTranspose")
# Ops ORT's QDQ quantiser handles that matter for these networks; Softmax and the output
# Identity stay FP32.
QUANTISED_OPS = ["Conv", "Gemm", "MatMul", "Add", "MaxPool", "Relu", "Clip", "Mul",
                 "GlobalAveragePool", "AveragePool", "Flatten", "Reshape"]
# What the manifest records as the scheme.
SCHEME = "QDQ: weights int8 symmetric per-channel, activations uint8 asymmetric"


@dataclass(frozen=True)
class QuantisationSettings:
    method: CalibrationMethodName = "minmax"
    # Weighted layers left in FP32 on each path back from every graph output.
    keep_tail: int = 1


def named_copy(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with every node given a unique name (ORT's quantiser addresses nodes by name;
    facewatch's builders leave them empty)."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    used = {n.name for n in copy.graph.node if n.name}
    for i, node in enumerate(copy.graph.node):
        if not node.name:
            name = f"{node.op_type}_{i}"
            while name in used:
                name += "_"
            node.name = name
            used.add(name)
    return copy


def tail_nodes(model: onnx.ModelProto, depth: int) -> list[str]:
    """Names of the last `depth` weighted nodes on every path back from each graph output."""
    if depth <= 0:
        return []
    producer = {out: node for node in model.graph.node for out in node.output}
    initializers = {i.name for i in model.graph.initializer}
    found: list[str] = []
    for output in model.graph.output:
        stack = [(output.name, 0)]
        seen = set()
        while stack:
            tensor, weighted = stack.pop()
            node = producer.get(tensor)
            if node is None or node.name in seen:
                continue
            seen.add(node.name)
            if node.op_type in WEIGHTED_OPS:
                if node.name not in found:
                    found.append(node.name)
                weighted += 1
                if weighted >= depth:
                    continue
            stack.extend((i, weighted) for i in node.input if i and i not in initializers)
    return found


class _Reader:
    """ORT's CalibrationDataReader over in-memory batches, ticking a progress callback."""

    def __init__(self, input_name: str, batches: Sequence[np.ndarray],
                 tick: Callable[[int], None] | None) -> None:
        self._name = input_name
        self._batches: Iterator[np.ndarray] = iter(batches)
        self._tick = tick

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        if batch is None:
            return None
        if self._tick is not None:
            self._tick(1)
        return {self._name: np.ascontiguousarray(batch, dtype=np.float32)}

    def rewind(self) -> None:  # pragma: no cover - ORT calls it only for some methods
        pass


def quantise(src: Path, dst: Path, batches: Sequence[np.ndarray],
             settings: QuantisationSettings = QuantisationSettings(),
             tick: Callable[[int], None] | None = None) -> list[str]:
    """Write a QDQ INT8 model of `src` to `dst`, calibrated on `batches` of the model's input.

    Every batch of a histogram method (percentile, entropy) must have the same shape; P-Net's
    canvases do not, so use minmax for it.  Returns the nodes kept in FP32.
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    if not batches:
        raise ModelError(f"{src}: no calibration data (the source gave no frames or faces)")
    if settings.method != "minmax" and len({b.shape for b in batches}) > 1:
        raise ModelError(f"{src}: calibration method {settings.method} needs equal-shaped "
                         f"batches; use minmax")
    model = onnx.load(str(src))
    input_name = model.graph.input[0].name
    method = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
              "entropy": CalibrationMethod.Entropy}[settings.method]

    class Reader(_Reader, CalibrationDataReader):  # type: ignore[misc]
        pass

    with tempfile.TemporaryDirectory(prefix="facewatch-quant-") as tmp:
        named = Path(tmp) / "named.onnx"
        prepared = Path(tmp) / "prepared.onnx"
        onnx.save(named_copy(model), str(named))
        # Shape inference and graph clean-up, as ORT's quantiser asks for; names survive it.
        quant_pre_process(str(named), str(prepared), skip_symbolic_shape=True)
        prepared_model = onnx.load(str(prepared))
        keep = tail_nodes(prepared_model, settings.keep_tail)
        out = Path(tmp) / "int8.onnx"
        root = logging.getLogger()
        level = root.level
        # ORT's quantiser logs chatter on the root logger and prints histogram progress on
        # stdout, which belongs to --json.
        root.setLevel(max(level, logging.ERROR))
        try:
            with contextlib.redirect_stdout(sys.stderr):
                quantize_static(
                    str(prepared), str(out), Reader(input_name, batches, tick),
                    quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    op_types_to_quantize=QUANTISED_OPS, nodes_to_exclude=keep,
                    calibrate_method=method,
                    extra_options={"WeightSymmetric": True, "ActivationSymmetric": False})
        finally:
            root.setLevel(level)
        atomic_write_bytes(dst, out.read_bytes())
    return keep
