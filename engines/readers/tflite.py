"""Read a TFLite flatbuffer into plain data (tensors, operators, graph ends), without TensorFlow.

The `tflite` package is only the generated flatbuffers schema: it gives accessors, not a graph.
This module walks the main subgraph once and copies out what a converter needs: every tensor
with its shape, dtype and (for constants) its buffer as a read-only numpy array, and every
operator with its builtin name and the option fields that change its meaning.  Nothing here
interprets the graph; that is the builders' job.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tflite
from tflite.Model import Model

from facewatch.errors import ModelError

_IDENTIFIER = b"TFL3"

_DTYPES: dict[str, np.dtype[Any]] = {
    "FLOAT32": np.dtype("<f4"),
    "FLOAT16": np.dtype("<f2"),
    "FLOAT64": np.dtype("<f8"),
    "INT8": np.dtype("i1"),
    "UINT8": np.dtype("u1"),
    "INT16": np.dtype("<i2"),
    "UINT16": np.dtype("<u2"),
    "INT32": np.dtype("<i4"),
    "UINT32": np.dtype("<u4"),
    "INT64": np.dtype("<i8"),
    "UINT64": np.dtype("<u8"),
    "BOOL": np.dtype("?"),
}


@dataclass(frozen=True)
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    # The constant's values (read-only, already shaped); None for activations and graph inputs.
    data: np.ndarray | None
    quantized: bool = False


@dataclass(frozen=True)
class Operator:
    op: str  # the builtin name as in the schema, e.g. "CONV_2D"; custom ops are "CUSTOM:<code>"
    inputs: tuple[int, ...]  # tensor indices; -1 marks an omitted optional input
    outputs: tuple[int, ...]
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Graph:
    tensors: tuple[Tensor, ...]
    operators: tuple[Operator, ...]  # in execution order, as the file stores them
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


def read_tflite(path: Path) -> Graph:
    """Return the main subgraph of a TFLite model as plain data."""
    try:
        buf = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"{path}: cannot read it ({exc.strerror})") from None
    if len(buf) < 8 or buf[4:8] != _IDENTIFIER:
        raise ModelError(f"{path}: not a TFLite model (no TFL3 file identifier)")
    try:
        return _parse(buf)
    except ModelError as exc:
        raise ModelError(f"{path}: {exc}") from None
    # A truncated or corrupt flatbuffer fails inside the generated accessors with whatever
    # struct/index error its offsets lead to; all of them mean the same thing here.
    except (struct.error, ValueError, IndexError, TypeError, AttributeError, OverflowError,
            MemoryError) as exc:
        raise ModelError(f"{path}: not a TFLite model (corrupt or truncated flatbuffer: {exc})") from None


def _parse(buf: bytes) -> Graph:
    model = Model.GetRootAs(buf, 0)
    if model.SubgraphsLength() < 1:
        raise ModelError("not a TFLite model (no subgraph)")
    sub = model.Subgraphs(0)  # the main graph; others only exist as bodies of control flow
    type_names = _enum_names(tflite.TensorType)
    op_names = _enum_names(tflite.BuiltinOperator)

    tensors = []
    for i in range(sub.TensorsLength()):
        t = sub.Tensors(i)
        type_name = type_names.get(t.Type(), f"type {t.Type()}")
        if type_name not in _DTYPES:
            raise ModelError(f"tensor {i} has unsupported type {type_name}")
        dtype = _DTYPES[type_name]
        shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
        data = _buffer(buf, model, t.Buffer(), dtype, shape, i)
        quant = t.Quantization()
        quantized = quant is not None and quant.ScaleLength() > 0
        tensors.append(Tensor(i, (t.Name() or b"").decode("utf-8", "replace"), shape, dtype,
                              data, quantized))

    operators = []
    for i in range(sub.OperatorsLength()):
        o = sub.Operators(i)
        code = model.OperatorCodes(o.OpcodeIndex())
        # Codes above 127 only fit the newer int32 field; older files fill only the int8 one.
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        name = op_names.get(builtin, f"BUILTIN_{builtin}")
        if name == "CUSTOM":
            name = "CUSTOM:" + (code.CustomCode() or b"").decode("utf-8", "replace")
        inputs = tuple(int(j) for j in o.InputsAsNumpy()) if o.InputsLength() else ()
        outputs = tuple(int(j) for j in o.OutputsAsNumpy()) if o.OutputsLength() else ()
        for j in inputs + outputs:
            if j < -1 or j >= len(tensors):
                raise ModelError(f"operator {i} ({name}) refers to tensor {j}, which does not exist")
        operators.append(Operator(name, inputs, outputs, _options(o)))

    inputs = tuple(int(j) for j in sub.InputsAsNumpy()) if sub.InputsLength() else ()
    outputs = tuple(int(j) for j in sub.OutputsAsNumpy()) if sub.OutputsLength() else ()
    return Graph(tuple(tensors), tuple(operators), inputs, outputs)


def _buffer(buf: bytes, model: Any, index: int, dtype: np.dtype[Any], shape: tuple[int, ...],
            tensor: int) -> np.ndarray | None:
    if index <= 0 or index >= model.BuffersLength():
        return None  # buffer 0 is the schema's shared empty buffer
    b = model.Buffers(index)
    if b.Offset() > 1:
        # Models over 2 GB keep their weights after the flatbuffer, addressed by offset.
        raw = buf[b.Offset():b.Offset() + b.Size()]
    elif b.DataLength():
        raw = b.DataAsNumpy().tobytes()
    else:
        return None
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if len(raw) != count * dtype.itemsize:
        raise ModelError(f"tensor {tensor}: buffer holds {len(raw)} bytes, "
                         f"shape {list(shape)} needs {count * dtype.itemsize}")
    array = np.frombuffer(raw, dtype=dtype).reshape(shape)
    array.flags.writeable = False
    return array


def _enum_names(enum: type) -> dict[int, str]:
    return {v: k for k, v in vars(enum).items() if not k.startswith("_") and isinstance(v, int)}


def _padding(v: int) -> str:
    return {0: "SAME", 1: "VALID"}.get(v, f"padding {v}")


def _activation(v: int) -> str:
    return _enum_names(tflite.ActivationFunctionType).get(v, f"activation {v}")


# Option table -> the fields that change an operator's meaning.  Ops not listed get no
# options; a builder that meets them must refuse them rather than guess.
_OPTION_FIELDS: dict[str, dict[str, Callable[[Any], Any]]] = {
    "Conv2DOptions": {
        "padding": lambda o: _padding(o.Padding()),
        "stride": lambda o: (o.StrideH(), o.StrideW()),
        "dilation": lambda o: (o.DilationHFactor(), o.DilationWFactor()),
        "fused_activation": lambda o: _activation(o.FusedActivationFunction()),
    },
    "DepthwiseConv2DOptions": {
        "padding": lambda o: _padding(o.Padding()),
        "stride": lambda o: (o.StrideH(), o.StrideW()),
        "dilation": lambda o: (o.DilationHFactor(), o.DilationWFactor()),
        "depth_multiplier": lambda o: o.DepthMultiplier(),
        "fused_activation": lambda o: _activation(o.FusedActivationFunction()),
    },
    "Pool2DOptions": {
        "padding": lambda o: _padding(o.Padding()),
        "stride": lambda o: (o.StrideH(), o.StrideW()),
        "filter": lambda o: (o.FilterHeight(), o.FilterWidth()),
        "fused_activation": lambda o: _activation(o.FusedActivationFunction()),
    },
    "AddOptions": {"fused_activation": lambda o: _activation(o.FusedActivationFunction())},
    "SubOptions": {"fused_activation": lambda o: _activation(o.FusedActivationFunction())},
    "MulOptions": {"fused_activation": lambda o: _activation(o.FusedActivationFunction())},
    "DivOptions": {"fused_activation": lambda o: _activation(o.FusedActivationFunction())},
    "L2NormOptions": {"fused_activation": lambda o: _activation(o.FusedActivationFunction())},
    "FullyConnectedOptions": {
        "fused_activation": lambda o: _activation(o.FusedActivationFunction()),
        "keep_num_dims": lambda o: bool(o.KeepNumDims()),
    },
    "ConcatenationOptions": {
        "axis": lambda o: o.Axis(),
        "fused_activation": lambda o: _activation(o.FusedActivationFunction()),
    },
    "ReshapeOptions": {
        "new_shape": lambda o: tuple(int(d) for d in o.NewShapeAsNumpy()) if o.NewShapeLength() else None,
    },
    "SoftmaxOptions": {"beta": lambda o: o.Beta()},
    "LeakyReluOptions": {"alpha": lambda o: o.Alpha()},
}


def _options(o: Any) -> dict[str, Any]:
    kind = _enum_names(tflite.BuiltinOptions).get(o.BuiltinOptionsType(), "")
    fields = _OPTION_FIELDS.get(kind)
    table = o.BuiltinOptions()
    if fields is None or table is None:
        return {}
    opts = getattr(tflite, kind)()  # e.g. tflite.Conv2DOptions
    opts.Init(table.Bytes, table.Pos)
    return {name: get(opts) for name, get in fields.items()}
