"""A thin layer over onnx.helper for writing small CNNs as straight-line code.

Each method appends one node and returns the name of its output, so a network reads
top to bottom like its PyTorch definition.  Weights are numpy arrays, stored as initializers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


class GraphBuilder:
    def __init__(self, name: str) -> None:
        self.name = name
        self._nodes: list[onnx.NodeProto] = []
        self._initializers: list[onnx.TensorProto] = []
        self._inputs: list[onnx.ValueInfoProto] = []
        self._outputs: list[onnx.ValueInfoProto] = []
        self._counter = 0

    def _fresh(self, prefix: str) -> str:
        self._counter += 1
        return f"{prefix}_{self._counter}"

    def input(self, name: str, shape: list[int | str]) -> str:
        self._inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, shape))
        return name

    def output(self, value: str, name: str, shape: list[int | str]) -> str:
        """Expose `value` as a graph output called `name`."""
        if value != name:
            self._nodes.append(helper.make_node("Identity", [value], [name]))
        self._outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, shape))
        return name

    def const(self, array: np.ndarray, prefix: str = "w") -> str:
        name = self._fresh(prefix)
        arr = np.ascontiguousarray(array)
        if arr.dtype == np.float64:
            arr = arr.astype(np.float32)
        self._initializers.append(numpy_helper.from_array(arr, name))
        return name

    def node(self, op: str, inputs: list[str], prefix: str | None = None, **attrs: Any) -> str:
        out = self._fresh(prefix or op.lower())
        self._nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    # Layers ---------------------------------------------------------------------------

    def conv(self, x: str, weight: np.ndarray, bias: np.ndarray | None, *, stride: int = 1,
             pads: tuple[int, int, int, int] = (0, 0, 0, 0), groups: int = 1) -> str:
        """Conv2d; `pads` is (top, left, bottom, right) as ONNX orders them."""
        inputs = [x, self.const(weight.astype(np.float32))]
        if bias is not None:
            inputs.append(self.const(bias.astype(np.float32), "b"))
        kh, kw = weight.shape[2:]
        return self.node("Conv", inputs, kernel_shape=[kh, kw], strides=[stride, stride],
                         pads=list(pads), group=groups)

    def prelu(self, x: str, slope: np.ndarray) -> str:
        """PReLU with one slope per channel of an NCHW tensor, as Relu(x) + (-a)*Relu(-x).

        Same exact rewrite as the sirius builder's `_fast_prelu` (see its docstring): ONNX
        Runtime keeps convs in its blocked NCHWc layout across Relu, 1x1 depthwise convs and
        Add, but not across PRelu, which costs a reorder out and back per layer.
        """
        a = slope.astype(np.float32).reshape(-1)
        c = a.size
        pos = self.node("Relu", [x])
        neg = self.node("Relu", [self.conv(x, np.full((c, 1, 1, 1), -1.0, np.float32), None,
                                           groups=c)])
        part = self.conv(neg, (-a).reshape(c, 1, 1, 1), None, groups=c)
        return self.node("Add", [part, pos])

    def prelu_2d(self, x: str, slope: np.ndarray) -> str:
        return self.node("PRelu", [x, self.const(slope.astype(np.float32).reshape(-1), "slope")])

    def maxpool(self, x: str, kernel: int, stride: int, ceil: bool = True) -> str:
        return self.node("MaxPool", [x], kernel_shape=[kernel, kernel], strides=[stride, stride],
                         ceil_mode=int(ceil))

    def dense(self, x: str, weight: np.ndarray, bias: np.ndarray) -> str:
        """y = x @ weight.T + bias, with `weight` in PyTorch's (out, in) layout."""
        return self.node("Gemm", [x, self.const(weight.astype(np.float32)),
                                  self.const(bias.astype(np.float32), "b")], transB=1)

    def flatten(self, x: str) -> str:
        return self.node("Flatten", [x], axis=1)

    def softmax(self, x: str, axis: int = 1) -> str:
        return self.node("Softmax", [x], axis=axis)

    def model(self, doc: str) -> onnx.ModelProto:
        graph = helper.make_graph(self._nodes, self.name, self._inputs, self._outputs,
                                  self._initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name="facewatch", doc_string=doc)
        model.ir_version = 8  # readable by every ONNX Runtime from 1.14 and TensorRT 8.5 on
        onnx.checker.check_model(model)
        return model


def fold_batchnorm(weight: np.ndarray, bias: np.ndarray | None, gamma: np.ndarray,
                   beta: np.ndarray, mean: np.ndarray, var: np.ndarray,
                   eps: float = 1e-5) -> tuple[np.ndarray, np.ndarray]:
    """Fold an inference-mode BatchNorm that follows a conv into that conv's weight and bias."""
    scale = gamma / np.sqrt(var + eps)
    w = weight * scale.reshape(-1, *([1] * (weight.ndim - 1)))
    b = (bias if bias is not None else np.zeros_like(mean)) - mean
    return w.astype(np.float32), (b * scale + beta).astype(np.float32)
