"""One ONNX embedder made of several: each part's own normalisation, the part, its embedding
L2-normalised, and the unit vectors concatenated and scaled by 1/sqrt(parts).

The cosine similarity of two fused embeddings is then the mean of the parts' cosines (score
fusion), and the fused model is an ordinary embedder for every stage: one input of 0..255 RGB
pixels (mean 0, std 1 in its manifest), one output, one file to checksum, calibrate and cache.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, compose, helper, numpy_helper, version_converter

from facewatch.engines.builders.graph import OPSET

INPUT = "input"
OUTPUT = "embedding"


@dataclass(frozen=True)
class FusedPart:
    model: onnx.ModelProto
    input: str  # the part's image input
    output: str  # the part's embedding output
    mean: tuple[float, float, float]  # subtracted from 0..255 pixels, per channel
    std: tuple[float, float, float]  # divisor after the mean
    size: int  # embedding length


def build_fused_onnx(parts: list[FusedPart], name: str) -> onnx.ModelProto:
    if len(parts) < 2:
        raise ValueError("fusion needs at least two embedders")
    nodes: list[onnx.NodeProto] = []
    initializers: list[onnx.TensorProto] = []
    units = []
    for i, part in enumerate(parts):
        prefix = f"p{i}_"
        model = part.model
        if model.opset_import[0].version != OPSET:
            model = version_converter.convert_version(model, OPSET)
        model = compose.add_prefix(model, prefix)
        mean = numpy_helper.from_array(np.array(part.mean, np.float32).reshape(1, 3, 1, 1),
                                       f"{prefix}pixel_mean")
        scale = numpy_helper.from_array(
            (1.0 / np.array(part.std, np.float32)).reshape(1, 3, 1, 1), f"{prefix}pixel_scale")
        initializers += [mean, scale, *model.graph.initializer]
        centred = f"{prefix}centred"
        nodes.append(helper.make_node("Sub", [INPUT, mean.name], [centred]))
        nodes.append(helper.make_node("Mul", [centred, scale.name], [prefix + part.input]))
        nodes += model.graph.node
        unit = f"{prefix}unit"
        nodes.append(helper.make_node("LpNormalization", [prefix + part.output], [unit],
                                      axis=1, p=2))
        units.append(unit)
    nodes.append(helper.make_node("Concat", units, ["concatenated"], axis=1))
    weight = numpy_helper.from_array(np.array(1.0 / np.sqrt(len(parts)), np.float32), "fusion_weight")
    initializers.append(weight)
    nodes.append(helper.make_node("Mul", ["concatenated", weight.name], [OUTPUT]))
    size = sum(p.size for p in parts)
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["batch", 3, 112, 112])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", size])],
        initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="facewatch",
                              doc_string=f"{len(parts)} embedders fused: RGB 0..255 NCHW in, the "
                                         f"parts' unit embeddings concatenated / sqrt({len(parts)}) out")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model
