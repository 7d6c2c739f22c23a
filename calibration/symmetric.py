"""The QDQ model rewritten for TensorRT: activations as zero-point-free int8.

TensorRT accepts only symmetric int8 quantisation (zero point 0).  `facewatch calibrate` stores
uint8-activation QDQ models because ONNX Runtime's CPU kernels need that form to fold ReLU/Clip
into the quantisation range (see `facewatch.calibration.quantize`).  The rewrite keeps the
calibrated range of every activation: a uint8 QuantizeLinear with scale s and zero point z
saturates to [-z*s, (255-z)*s]; it becomes a Clip to exactly that interval (which restores the
ReLU/ReLU6 the quantiser folded away, and TensorRT fuses into the convolution) followed by an
int8 QuantizeLinear with scale max(|lo|, |hi|)/127 and zero point 0.  Weights are already int8
symmetric and are left alone.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# Recorded in engine cache keys, so engines built by an older rewrite are never reused.
REWRITE_VERSION = "symmetric-int8-v1"


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


def is_symmetric_int8(model: onnx.ModelProto) -> bool:
    """True when every QuantizeLinear/DequantizeLinear has a zero point of 0 and none is uint8
    (int32 biases with zero point 0 are fine)."""
    inits = {i.name: i for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") and len(node.input) > 2:
            zp = inits.get(node.input[2])
            if zp is None:
                continue
            if zp.data_type == TensorProto.UINT8 or np.any(numpy_helper.to_array(zp) != 0):
                return False
    return True
