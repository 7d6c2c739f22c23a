"""ONNX graphs for MTCNN's P-, R- and O-Net from facenet-pytorch's state_dicts.

The layer order follows facenet-pytorch 2.6.0 (`models/mtcnn.py`).  Two details matter for
exactness: pools use ceil_mode, and R/O-Net permute their feature map to (N, W, H, C) before the
dense layer.  That permute is folded into the dense weights here, so the graph flattens NCHW
directly and carries no Transpose.
"""

from __future__ import annotations

import numpy as np
import onnx

from facewatch.engines.builders.graph import GraphBuilder

# PNet is fully convolutional: height and width stay free, so one call runs a whole
# (packed) image pyramid.
PNET_INPUT: list[int | str] = ["batch", 3, "height", "width"]


def _permuted_dense_weight(weight: np.ndarray, channels: int, height: int, width: int) -> np.ndarray:
    """Reorder a dense weight that expects an (N, W, H, C) flatten to accept an NCHW flatten."""
    out = weight.shape[0]
    w = weight.reshape(out, width, height, channels)  # columns in (w, h, c) order
    return np.ascontiguousarray(w.transpose(0, 3, 2, 1).reshape(out, -1))


def build_pnet(sd: dict[str, np.ndarray]) -> onnx.ModelProto:
    g = GraphBuilder("mtcnn_pnet")
    x = g.input("input", PNET_INPUT)
    x = g.prelu(g.conv(x, sd["conv1.weight"], sd["conv1.bias"]), sd["prelu1.weight"])
    x = g.maxpool(x, 2, 2)
    x = g.prelu(g.conv(x, sd["conv2.weight"], sd["conv2.bias"]), sd["prelu2.weight"])
    x = g.prelu(g.conv(x, sd["conv3.weight"], sd["conv3.bias"]), sd["prelu3.weight"])
    prob = g.softmax(g.conv(x, sd["conv4_1.weight"], sd["conv4_1.bias"]), axis=1)
    reg = g.conv(x, sd["conv4_2.weight"], sd["conv4_2.bias"])
    g.output(reg, "reg", ["batch", 4, "h", "w"])
    g.output(prob, "prob", ["batch", 2, "h", "w"])
    return g.model("MTCNN PNet (Zhang et al. 2016), weights from facenet-pytorch 2.6.0 (MIT)")


def build_rnet(sd: dict[str, np.ndarray]) -> onnx.ModelProto:
    g = GraphBuilder("mtcnn_rnet")
    x = g.input("input", ["batch", 3, 24, 24])
    x = g.prelu(g.conv(x, sd["conv1.weight"], sd["conv1.bias"]), sd["prelu1.weight"])
    x = g.maxpool(x, 3, 2)
    x = g.prelu(g.conv(x, sd["conv2.weight"], sd["conv2.bias"]), sd["prelu2.weight"])
    x = g.maxpool(x, 3, 2)
    x = g.prelu(g.conv(x, sd["conv3.weight"], sd["conv3.bias"]), sd["prelu3.weight"])
    x = g.flatten(x)  # (N, 64, 3, 3)
    dense4 = _permuted_dense_weight(sd["dense4.weight"], 64, 3, 3)
    x = g.prelu_2d(g.dense(x, dense4, sd["dense4.bias"]), sd["prelu4.weight"])
    prob = g.softmax(g.dense(x, sd["dense5_1.weight"], sd["dense5_1.bias"]))
    reg = g.dense(x, sd["dense5_2.weight"], sd["dense5_2.bias"])
    g.output(reg, "reg", ["batch", 4])
    g.output(prob, "prob", ["batch", 2])
    return g.model("MTCNN RNet (Zhang et al. 2016), weights from facenet-pytorch 2.6.0 (MIT)")


def build_onet(sd: dict[str, np.ndarray]) -> onnx.ModelProto:
    g = GraphBuilder("mtcnn_onet")
    x = g.input("input", ["batch", 3, 48, 48])
    x = g.prelu(g.conv(x, sd["conv1.weight"], sd["conv1.bias"]), sd["prelu1.weight"])
    x = g.maxpool(x, 3, 2)
    x = g.prelu(g.conv(x, sd["conv2.weight"], sd["conv2.bias"]), sd["prelu2.weight"])
    x = g.maxpool(x, 3, 2)
    x = g.prelu(g.conv(x, sd["conv3.weight"], sd["conv3.bias"]), sd["prelu3.weight"])
    x = g.maxpool(x, 2, 2)
    x = g.prelu(g.conv(x, sd["conv4.weight"], sd["conv4.bias"]), sd["prelu4.weight"])
    x = g.flatten(x)  # (N, 128, 3, 3)
    dense5 = _permuted_dense_weight(sd["dense5.weight"], 128, 3, 3)
    x = g.prelu_2d(g.dense(x, dense5, sd["dense5.bias"]), sd["prelu5.weight"])
    prob = g.softmax(g.dense(x, sd["dense6_1.weight"], sd["dense6_1.bias"]))
    reg = g.dense(x, sd["dense6_2.weight"], sd["dense6_2.bias"])
    landmarks = g.dense(x, sd["dense6_3.weight"], sd["dense6_3.bias"])
    g.output(reg, "reg", ["batch", 4])
    g.output(landmarks, "landmarks", ["batch", 10])
    g.output(prob, "prob", ["batch", 2])
    return g.model("MTCNN ONet (Zhang et al. 2016), weights from facenet-pytorch 2.6.0 (MIT)")
