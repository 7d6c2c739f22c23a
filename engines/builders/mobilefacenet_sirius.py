"""Build our ONNX of sirius-ai's MobileFaceNet (192-d, PReLU) from its TFLite file, without TensorFlow.

Input `input` [N,3,112,112] float32, RGB already normalised as `(x - 127.5) / 128`; output
`embeddings` [N,192], not L2-normalised (the TFLite graph ends in a 1x1 conv and a reshape, so
neither does ours).  N is free although the TFLite file is fixed at batch 2.

The TFLite graph is NHWC.  Each op is translated on its own into NCHW ONNX ops with the weights
transposed once, so the ONNX graph carries no Transpose on activations.  TF's SAME padding
becomes explicit `pads` (TF puts the odd pixel at the bottom/right, which no ONNX auto_pad mode
promises for stride 2).  Three small passes then run on the translated graph:

1. The TF export spells PReLU as `relu(x) + c * (x - |x|)`; that is PRelu with slope `2c`,
   bit for bit (x - |x| is exactly 2x or 0, and doubling is exact).
2. Two 1x1 convs in a row with nothing between them are one 1x1 conv.
3. PRelu is rewritten into ops ONNX Runtime keeps in its blocked NCHWc layout (see
   `_fast_prelu`).  ORT's PRelu kernel, plus the reorders out of and back into that layout
   around each of the 33 activations, took 63 % of the plain model's CPU time (ORT profile,
   batch 8, one thread).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from facewatch.engines.readers.tflite import Graph, Operator, read_tflite
from facewatch.errors import ModelError

# Every op used here has had its opset-13 version since 2020, so any ONNX Runtime the project
# supports loads the model and its NCHWc transformer (which matches op versions) recognises them.
_OPSET = 13
_INPUT, _OUTPUT = "input", "embeddings"
_INPUT_HWC = (112, 112, 3)

PreluForm = Literal["fast", "plain"]


@dataclass
class _Node:
    op: str
    inputs: list[str]
    output: str
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Onnx:
    """The graph being built: nodes in execution order and their constant inputs (NCHW)."""

    nodes: list[_Node] = field(default_factory=list)
    consts: dict[str, np.ndarray] = field(default_factory=dict)

    def const(self, name: str, value: np.ndarray) -> str:
        while name in self.consts:
            name += "_"
        self.consts[name] = value
        return name

    def add(self, op: str, inputs: list[str], output: str, **attrs: Any) -> str:
        self.nodes.append(_Node(op, inputs, output, attrs))
        return output

    def consumers(self) -> dict[str, list[_Node]]:
        uses: dict[str, list[_Node]] = {}
        for node in self.nodes:
            for name in node.inputs:
                uses.setdefault(name, []).append(node)
        return uses


def build_sirius_onnx(tflite_path: Path, prelu: PreluForm = "fast") -> onnx.ModelProto:
    """Return the ONNX model; `prelu="plain"` keeps PRelu nodes and exists for the equality test."""
    graph = read_tflite(tflite_path)
    try:
        out = _Translator(graph).run()
    except ModelError as exc:
        raise ModelError(f"{tflite_path}: {exc}") from None
    _fuse_prelu(out)
    _fold_linear_convs(out)
    if prelu == "fast":
        _fast_prelu(out)
    return _to_onnx(out, graph, tflite_path)


class _Translator:
    """Translate TFLite ops one by one; constants stay numpy (NHWC) until an activation uses them."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.out = _Onnx()
        self.batch = 0
        # TFLite tensor index -> ONNX value name (activations, NCHW when rank 4) or constant.
        self.values: dict[int, str | np.ndarray] = {}
        # TFLite does not require tensor names to be unique; ONNX value names must be.
        self.names: list[str] = []
        seen = {_INPUT, _OUTPUT}
        for t in graph.tensors:
            name = t.name or f"t{t.index}"
            if name in seen:
                name = f"{name}#{t.index}"
            seen.add(name)
            self.names.append(name)

    def run(self) -> _Onnx:
        g = self.graph
        if len(g.inputs) != 1 or len(g.outputs) != 1:
            raise ModelError(f"expected one input and one output, found {len(g.inputs)} and {len(g.outputs)}")
        x = g.tensors[g.inputs[0]]
        if x.dtype != np.float32 or len(x.shape) != 4 or tuple(x.shape[1:]) != _INPUT_HWC:
            raise ModelError(f"input {x.name!r} is {x.dtype}{list(x.shape)}, expected float32 [N,112,112,3]")
        self.batch = x.shape[0]  # fixed in the file (2 for sirius); ours is free
        self.values[x.index] = _INPUT
        for t in g.tensors:
            if t.data is not None:
                if t.quantized:
                    raise ModelError(f"tensor {t.name!r} is quantized; only float models are supported")
                self.values[t.index] = np.asarray(t.data)
        for op in g.operators:
            handler = _HANDLERS.get(op.op)
            if handler is None or not op.outputs:
                raise ModelError(f"unsupported TFLite op {op.op}")
            missing = [i for i in op.inputs if i >= 0 and i not in self.values]
            if missing:
                raise ModelError(f"{op.op} reads tensor {self._name(missing[0])!r} before anything writes it")
            handler(self, op)
        result = self.values[g.outputs[0]]
        if not isinstance(result, str) or result == _INPUT:
            raise ModelError("the output is not computed from the input")
        for node in self.out.nodes:  # give the output its public name
            node.inputs = [_OUTPUT if i == result else i for i in node.inputs]
            if node.output == result:
                node.output = _OUTPUT
        return self.out

    # -- helpers -------------------------------------------------------------------------

    def _name(self, index: int) -> str:
        return self.names[index]

    def _shape(self, index: int) -> tuple[int, ...]:
        return tuple(self.graph.tensors[index].shape)

    def _act(self, op: Operator, k: int) -> str:
        v = self.values.get(op.inputs[k])
        if not isinstance(v, str):
            raise ModelError(f"{op.op} input {k} ({self._name(op.inputs[k])!r}) must be computed, not constant")
        return v

    def _weight(self, op: Operator, k: int, required: bool = False) -> np.ndarray | None:
        if k >= len(op.inputs) or op.inputs[k] < 0:
            if required:
                raise ModelError(f"{op.op} writing {self._name(op.outputs[0])!r} has no input {k}")
            return None
        v = self.values.get(op.inputs[k])
        if not isinstance(v, np.ndarray):
            raise ModelError(f"{op.op} input {k} ({self._name(op.inputs[k])!r}) must be a constant")
        return v.astype(np.float32)

    def _emit(self, op: Operator, onnx_op: str, inputs: list[str], **attrs: Any) -> None:
        """Add the node and then its fused activation, if any."""
        out = self._name(op.outputs[0])
        act = op.options.get("fused_activation", "NONE")
        if act == "NONE":
            self.values[op.outputs[0]] = self.out.add(onnx_op, inputs, out, **attrs)
            return
        pre = self.out.add(onnx_op, inputs, out + "/pre_activation", **attrs)
        self.values[op.outputs[0]] = self._activation(act, pre, out)

    def _activation(self, act: str, x: str, out: str) -> str:
        if act == "RELU":
            return self.out.add("Relu", [x], out)
        clip = {"RELU6": (0.0, 6.0), "RELU_N1_TO_1": (-1.0, 1.0)}.get(act)
        if clip is None:
            raise ModelError(f"unsupported fused activation {act}")
        lo = self.out.const(out + "/min", np.array(clip[0], np.float32))
        hi = self.out.const(out + "/max", np.array(clip[1], np.float32))
        return self.out.add("Clip", [x, lo, hi], out)

    def _pads(self, op: Operator, kernel: tuple[int, int]) -> list[int]:
        """ONNX pads [top, left, bottom, right] reproducing TF's SAME or VALID padding."""
        if op.options["padding"] == "VALID":
            return [0, 0, 0, 0]
        if op.options["padding"] != "SAME":
            raise ModelError(f"{op.op}: unsupported padding {op.options['padding']}")
        in_hw = self._shape(op.inputs[0])[1:3]
        begin, end = [], []
        for size, k, s, d in zip(in_hw, kernel, op.options["stride"], op.options["dilation"]):
            out = -(-size // s)
            total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
            begin.append(total // 2)  # TF puts the odd pixel at the end (bottom/right)
            end.append(total - total // 2)
        return begin + end

    def _conv(self, op: Operator, w: np.ndarray, group: int) -> None:
        x = self._act(op, 0)
        b = self._weight(op, 2)
        name = self._name(op.outputs[0])
        inputs = [x, self.out.const(name + "/W", w)]
        if b is not None:
            inputs.append(self.out.const(name + "/B", b))
        kernel = (w.shape[2], w.shape[3])
        self._emit(op, "Conv", inputs, kernel_shape=list(kernel), strides=list(op.options["stride"]),
                   dilations=list(op.options["dilation"]), pads=self._pads(op, kernel), group=group)

    # -- op handlers ----------------------------------------------------------------------

    def conv_2d(self, op: Operator) -> None:
        w = self._weight(op, 1, required=True)
        assert w is not None
        self._conv(op, np.ascontiguousarray(w.transpose(0, 3, 1, 2)), group=1)  # OHWI -> OIHW

    def depthwise_conv_2d(self, op: Operator) -> None:
        w = self._weight(op, 1, required=True)
        assert w is not None
        channels = self._shape(op.inputs[0])[3]
        if w.shape[0] != 1 or w.shape[3] % channels:
            raise ModelError(f"{op.op}: weights {list(w.shape)} do not fit {channels} input channels")
        # TF's output channel c*M + m reads input channel c, as ONNX's group c does.
        self._conv(op, np.ascontiguousarray(w[0].transpose(2, 0, 1)[:, None]), group=channels)

    def unary(self, op: Operator) -> None:
        v = self.values[op.inputs[0]]
        name = self._name(op.outputs[0])
        if isinstance(v, np.ndarray):
            self.values[op.outputs[0]] = _UNARY_FOLD[op.op](v).astype(v.dtype)
        elif op.op == "ABS":
            self.values[op.outputs[0]] = self.out.add("Abs", [v], name)
        else:
            self.values[op.outputs[0]] = self._activation(op.op, v, name)

    def binary(self, op: Operator) -> None:
        onnx_op, fold = _BINARY[op.op]
        a, b = (self.values[i] for i in op.inputs[:2])
        if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
            if op.options.get("fused_activation", "NONE") != "NONE":
                raise ModelError(f"{op.op} on constants with a fused activation")
            self.values[op.outputs[0]] = fold(a, b).astype(np.result_type(a, b))
            return
        rank = len(self._shape(op.outputs[0]))
        inputs = [v if isinstance(v, str) else self.out.const(
            f"{self._name(op.outputs[0])}/{k}", _broadcast_const(v, rank)) for k, v in enumerate((a, b))]
        self._emit(op, onnx_op, inputs)

    def reshape(self, op: Operator) -> None:
        x = self._act(op, 0)
        in_shape = self._shape(op.inputs[0])
        out_shape = self._shape(op.outputs[0])
        # Only the flattening of [N,H,W,C] into [N,H*W*C] is supported: that is how the
        # embedding leaves the network, and N must stay free.
        if len(in_shape) != 4 or len(out_shape) != 2 or out_shape[0] != self.batch \
                or out_shape[1] != int(np.prod(in_shape[1:])):
            raise ModelError(f"unsupported RESHAPE {list(in_shape)} -> {list(out_shape)}")
        name = self._name(op.outputs[0])
        if in_shape[1:3] != (1, 1):
            x = self.out.add("Transpose", [x], name + "/nhwc", perm=[0, 2, 3, 1])  # TF's element order
        self.values[op.outputs[0]] = self.out.add("Flatten", [x], name, axis=1)


_UNARY_FOLD: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "RELU": lambda a: np.maximum(a, 0), "RELU6": lambda a: np.clip(a, 0, 6), "ABS": np.abs,
}

_BINARY: dict[str, tuple[str, Callable[[np.ndarray, np.ndarray], np.ndarray]]] = {
    "ADD": ("Add", np.add), "SUB": ("Sub", np.subtract), "MUL": ("Mul", np.multiply),
}

_HANDLERS: dict[str, Callable[[_Translator, Operator], None]] = {
    "CONV_2D": _Translator.conv_2d,
    "DEPTHWISE_CONV_2D": _Translator.depthwise_conv_2d,
    "RELU": _Translator.unary,
    "RELU6": _Translator.unary,
    "ABS": _Translator.unary,
    "ADD": _Translator.binary,
    "SUB": _Translator.binary,
    "MUL": _Translator.binary,
    "RESHAPE": _Translator.reshape,
}


def _broadcast_const(c: np.ndarray, rank: int) -> np.ndarray:
    """Re-lay a constant that broadcasts against an NHWC activation so it broadcasts against NCHW."""
    c = c.astype(np.float32)
    if rank != 4:
        return c
    if c.ndim > 4:
        raise ModelError(f"constant of shape {list(c.shape)} against a rank-4 activation")
    c4 = c.reshape((1,) * (4 - c.ndim) + c.shape)
    if c4.shape[0] != 1:
        raise ModelError(f"constant of shape {list(c.shape)} varies over the batch")
    return np.ascontiguousarray(c4.transpose(0, 3, 1, 2)[0])  # [C,H,W], numpy-broadcast as NCHW


# -- passes ------------------------------------------------------------------------------


def _fuse_prelu(g: _Onnx) -> None:
    """Rewrite `Add(Relu(x), Mul(c, Sub(x, Abs(x))))` into `PRelu(x, 2c)`."""
    producer = {n.output: n for n in g.nodes}
    uses = g.consumers()

    def made_by(name: str, op: str) -> _Node | None:
        node = producer.get(name)
        return node if node is not None and node.op == op and len(uses.get(name, [])) == 1 else None

    dead: set[int] = set()
    for add in g.nodes:
        if add.op != "Add":
            continue
        for relu_in, mul_in in (add.inputs, add.inputs[::-1]):
            relu, mul = made_by(relu_in, "Relu"), made_by(mul_in, "Mul")
            if relu is None or mul is None:
                continue
            x = relu.inputs[0]
            consts = [i for i in mul.inputs if i in g.consts]
            others = [i for i in mul.inputs if i not in g.consts]
            if len(consts) != 1 or len(others) != 1:
                continue
            sub = made_by(others[0], "Sub")
            if sub is None or sub.inputs[0] != x:
                continue
            ab = made_by(sub.inputs[1], "Abs")
            if ab is None or ab.inputs[0] != x:
                continue
            slope = g.const(add.output + "/slope", (2 * g.consts[consts[0]]).astype(np.float32))
            add.op, add.inputs, add.attrs = "PRelu", [x, slope], {}
            dead.update(id(n) for n in (relu, mul, sub, ab))
            break
    g.nodes = [n for n in g.nodes if id(n) not in dead]
    _drop_unused_consts(g)


def _is_pointwise(n: _Node) -> bool:
    return (n.op == "Conv" and n.attrs["group"] == 1 and n.attrs["kernel_shape"] == [1, 1]
            and n.attrs["strides"] == [1, 1] and not any(n.attrs["pads"]))


def _fold_linear_convs(g: _Onnx) -> None:
    """Merge a 1x1 conv into the 1x1 conv that is its only consumer: W = W2 W1, b = W2 b1 + b2."""
    uses = g.consumers()
    producer = {n.output: n for n in g.nodes}
    dead: set[int] = set()
    for second in g.nodes:
        first = producer.get(second.inputs[0])
        if first is None or not (_is_pointwise(first) and _is_pointwise(second)):
            continue
        if len(uses[first.output]) != 1:
            continue
        w1 = g.consts[first.inputs[1]][:, :, 0, 0].astype(np.float64)
        w2 = g.consts[second.inputs[1]][:, :, 0, 0].astype(np.float64)
        b1 = _bias(g, first, w1.shape[0])
        b2 = _bias(g, second, w2.shape[0])
        w = (w2 @ w1).astype(np.float32)[:, :, None, None]
        b = (w2 @ b1 + b2).astype(np.float32)
        second.inputs = [first.inputs[0], g.const(second.output + "/W_folded", w),
                         g.const(second.output + "/B_folded", b)]
        dead.add(id(first))
    g.nodes = [n for n in g.nodes if id(n) not in dead]
    _drop_unused_consts(g)


def _bias(g: _Onnx, conv: _Node, channels: int) -> np.ndarray:
    if len(conv.inputs) > 2 and conv.inputs[2]:
        return g.consts[conv.inputs[2]].astype(np.float64)
    return np.zeros(channels)


def _fast_prelu(g: _Onnx) -> None:
    """Replace PRelu(x, a) by Relu(x) + (-a) * Relu(-x), written as Relu and 1x1 depthwise convs.

    ONNX Runtime's CPU provider runs Conv in a blocked NCHWc layout and only keeps a tensor in
    it across Conv, Relu, Add/Sum, Mul-of-two-tensors and a few others; PRelu is not one of
    them.  Here every op stays inside: Relu(-x) is a depthwise 1x1 conv with weight -1 and a
    fused Relu, and the product with -a is a depthwise 1x1 conv whose Add ORT fuses in as the
    conv's sum input.  It is bit-exact, not just close: negation and Relu are exact, the only
    rounding left is the product a*x that PRelu itself rounds, and adding a zero is exact.
    Measured (see the builder's tests and README numbers): about twice the plain PRelu
    model's throughput.  Forms that fold the slope into the next conv measured ~6 % faster
    still, but round differently (1.5e-5 on embeddings of norm ~65), so they were not kept.
    """
    nodes: list[_Node] = []
    for n in g.nodes:
        slope = g.consts.get(n.inputs[1]) if n.op == "PRelu" else None
        if slope is None or slope.ndim != 3 or slope.shape[1:] != (1, 1):
            nodes.append(n)
            continue
        x, y, c = n.inputs[0], n.output, slope.shape[0]
        dw = {"group": c, "kernel_shape": [1, 1], "strides": [1, 1], "dilations": [1, 1], "pads": [0, 0, 0, 0]}
        minus_one = f"minus_one_{c}"  # shared by every layer of this width
        g.consts.setdefault(minus_one, np.full((c, 1, 1, 1), -1.0, np.float32))
        minus_a = g.const(y + "/minus_slope", (-slope).reshape(c, 1, 1, 1))
        nodes += [
            _Node("Relu", [x], y + "/pos"),
            _Node("Conv", [x, minus_one], y + "/neg_x", dict(dw)),
            _Node("Relu", [y + "/neg_x"], y + "/neg"),
            _Node("Conv", [y + "/neg", minus_a], y + "/neg_part", dict(dw)),
            _Node("Add", [y + "/neg_part", y + "/pos"], y),
        ]
    g.nodes = nodes
    _drop_unused_consts(g)


def _drop_unused_consts(g: _Onnx) -> None:
    used = {i for n in g.nodes for i in n.inputs}
    g.consts = {k: v for k, v in g.consts.items() if k in used}


def _to_onnx(g: _Onnx, graph: Graph, source: Path) -> onnx.ModelProto:
    _drop_unused_consts(g)
    out_dim = graph.tensors[graph.outputs[0]].shape[1]
    nodes = [helper.make_node(n.op, n.inputs, [n.output], name=n.output, **n.attrs) for n in g.nodes]
    inits = [numpy_helper.from_array(v, k) for k, v in g.consts.items()]
    onnx_graph = helper.make_graph(
        nodes, "mobilefacenet_sirius",
        [helper.make_tensor_value_info(_INPUT, TensorProto.FLOAT, ["batch", 3, 112, 112])],
        [helper.make_tensor_value_info(_OUTPUT, TensorProto.FLOAT, ["batch", out_dim])],
        inits)
    model = helper.make_model(onnx_graph, opset_imports=[helper.make_opsetid("", _OPSET)],
                              producer_name="facewatch",
                              doc_string=f"sirius-ai MobileFaceNet converted from {source.name}; "
                                         "input RGB (x - 127.5) / 128, NCHW; embeddings not L2-normalised")
    model.ir_version = 7  # the oldest IR that carries opset 13, for older ONNX Runtime releases
    onnx.checker.check_model(model, full_check=True)
    return model
