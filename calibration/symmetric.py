"""The QDQ model rewritten for TensorRT: activations as zero-point-free int8.

TensorRT accepts only symmetric int8 quantisation (zero point 0).  `facewatch calibrate` stores
uint8-activation QDQ models because ONNX Runtime's CPU kernels need that form to fold ReLU/Clip
into the quantisation range (see `facewatch.calibration.quantize`).  The rewrite keeps the
calibrated range of every activation: a uint8 QuantizeLinear with scale s and zero point z
saturates to [-z*s, (255-z)*s]; it becomes a Clip to exactly that interval (which restores the
ReLU/ReLU6 the quantiser folded away, and TensorRT fuses into the convolution) followed by an
int8 QuantizeLinear with scale max(|lo|, |hi|)/127 and zero point 0.  Weights are already int8
symmetric and are left alone.

TensorRT >= 10 also refuses a DequantizeLinear whose input is not an 8-bit (or FP8/INT4/FP4)
activation type ("only activation types allowed as input to this layer", onnx-tensorrt #850):
ONNX Runtime's quantiser stores Conv and Gemm biases as int32 with a DequantizeLinear in front
(R-Net had 4, O-Net 5).  Every such constant DequantizeLinear is folded into the float tensor it
computes, `(q - zero_point) * scale`, which is what TensorRT would do with the bias anyway.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# Recorded in engine cache keys, so engines built by an older rewrite are never reused.
REWRITE_VERSION = "symmetric-int8-v2"
# What TensorRT's dequantize layer takes as input; any other constant is folded to float.
DEQUANTIZABLE = frozenset({TensorProto.INT8, TensorProto.INT4, TensorProto.FLOAT8E4M3FN,
                           TensorProto.FLOAT4E2M1})


def to_symmetric_int8(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of a uint8-activation QDQ model with every activation quantised as TensorRT needs."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    inits = {i.name: i for i in graph.initializer}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    new_nodes: list[onnx.NodeProto] = []
    new_inits: list[onnx.TensorProto] = []
    for node in graph.node:
        if node.op_type != "QuantizeLinear" or len(node.input) < 3:
            new_nodes.append(node)
            continue
        zp_init = inits.get(node.input[2])
        scale_init = inits.get(node.input[1])
        if zp_init is None or scale_init is None or zp_init.data_type != TensorProto.UINT8:
            new_nodes.append(node)
            continue
        zp = numpy_helper.to_array(zp_init).astype(np.float64)
        scale = numpy_helper.to_array(scale_init).astype(np.float64)
        if zp.size != 1 or scale.size != 1:
            raise ValueError(f"{node.name}: per-channel uint8 activations are not supported")
        lo, hi = float(-zp.item() * scale.item()), float((255 - zp.item()) * scale.item())
        tag = node.output[0]
        names = {k: f"{tag}_{k}_s8" for k in ("lo", "hi", "scale", "zp", "clipped")}
        new_inits += [
            numpy_helper.from_array(np.array(lo, np.float32), names["lo"]),
            numpy_helper.from_array(np.array(hi, np.float32), names["hi"]),
            numpy_helper.from_array(np.array(max(abs(lo), abs(hi)) / 127.0, np.float32),
                                    names["scale"]),
            numpy_helper.from_array(np.array(0, np.int8), names["zp"]),
        ]
        new_nodes.append(helper.make_node("Clip", [node.input[0], names["lo"], names["hi"]],
                                          [names["clipped"]], name=f"{node.name}_saturate"))
        node.input[0] = names["clipped"]
        node.input[1] = names["scale"]
        node.input[2] = names["zp"]
        new_nodes.append(node)
        for dq in consumers.get(node.output[0], []):
            if dq.op_type == "DequantizeLinear":
                dq.input[1] = names["scale"]
                if len(dq.input) > 2:
                    dq.input[2] = names["zp"]
    new_nodes, folded = _fold_constant_dequantize(new_nodes, inits)
    new_inits += folded
    del graph.node[:]
    graph.node.extend(new_nodes)
    graph.initializer.extend(new_inits)
    # The old uint8 scale/zero-point initialisers may now be unused; drop those.
    used = {i for n in graph.node for i in n.input}
    keep = [i for i in graph.initializer if i.name in used
            or i.name in {g.name for g in graph.output}]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    # value_info for the old uint8 tensors would now lie about their type.
    del graph.value_info[:]
    onnx.checker.check_model(out)
    return out


def _fold_constant_dequantize(nodes: list[onnx.NodeProto], inits: dict[str, onnx.TensorProto]
                              ) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """Replace each DequantizeLinear of a constant TensorRT cannot dequantize (int32 biases,
    uint8 constants) by the float initialiser it computes."""
    kept: list[onnx.NodeProto] = []
    folded: list[onnx.TensorProto] = []
    for node in nodes:
        q = inits.get(node.input[0]) if node.op_type == "DequantizeLinear" else None
        if q is None or q.data_type in DEQUANTIZABLE:
            kept.append(node)
            continue
        folded.append(numpy_helper.from_array(_dequantize(node, q, inits), node.output[0]))
    return kept, folded


def _dequantize(node: onnx.NodeProto, q: onnx.TensorProto, inits: dict[str, onnx.TensorProto]
                ) -> np.ndarray:
    """DequantizeLinear's own arithmetic, per tensor or along its `axis` (default 1)."""
    values = numpy_helper.to_array(q).astype(np.float64)
    scale_init = inits.get(node.input[1])
    if scale_init is None:
        raise ValueError(f"{node.name}: the scale of a constant DequantizeLinear is not constant")
    scale = numpy_helper.to_array(scale_init).astype(np.float64)
    zp = np.zeros_like(scale)
    if len(node.input) > 2 and node.input[2]:
        zp_init = inits.get(node.input[2])
        if zp_init is None:
            raise ValueError(f"{node.name}: the zero point of a constant DequantizeLinear is "
                             f"not constant")
        zp = numpy_helper.to_array(zp_init).astype(np.float64)
    if scale.size > 1:  # per channel along `axis`
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1) % values.ndim
        shape = [1] * values.ndim
        shape[axis] = scale.size
        scale, zp = scale.reshape(shape), zp.reshape(shape)
    return ((values - zp) * scale).astype(np.float32)


def dequantize_inputs(model: onnx.ModelProto) -> dict[str, int]:
    """The element type of every DequantizeLinear's input, by node name: a constant's own type,
    otherwise the type of the QuantizeLinear zero point that produced it."""
    inits = {i.name: i for i in model.graph.initializer}
    producer = {out: node for node in model.graph.node for out in node.output}
    types = {}
    for i, node in enumerate(model.graph.node):
        if node.op_type != "DequantizeLinear":
            continue
        name = node.name or f"DequantizeLinear_{i}"
        source = node.input[0]
        if source in inits:
            types[name] = inits[source].data_type
            continue
        q = producer.get(source)
        zp = inits.get(q.input[2]) if q is not None and q.op_type == "QuantizeLinear" \
            and len(q.input) > 2 else None
        types[name] = zp.data_type if zp is not None else TensorProto.UINT8  # ONNX's default
    return types


def is_symmetric_int8(model: onnx.ModelProto) -> bool:
    """True when TensorRT can build the model as it is: every QuantizeLinear/DequantizeLinear
    has a zero point of 0, none is uint8, and every DequantizeLinear dequantizes an 8-bit type."""
    if any(t not in DEQUANTIZABLE for t in dequantize_inputs(model).values()):
        return False
    inits = {i.name: i for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") and len(node.input) > 2:
            zp = inits.get(node.input[2])
            if zp is None:
                continue
            if zp.data_type == TensorProto.UINT8 or np.any(numpy_helper.to_array(zp) != 0):
                return False
    return True
