"""ONNX graph for foamliu's MobileFaceNet (ReLU6 inverted residuals, 128-d) from its state_dict.

Layer order follows foamliu/MobileFaceNet `models.py` at a6cc9032: a 3x3 stem, a depthwise-
separable block, fifteen MobileNetV2 inverted residuals, a 1x1 conv to 512, a 7x7 global
depthwise conv and a linear 1x1 conv to 128.  Every BatchNorm is folded into the conv before it,
so the graph is convolutions, clips and adds only.
"""

from __future__ import annotations

import numpy as np
import onnx

from facewatch.engines.builders.graph import GraphBuilder, fold_batchnorm

# Inverted residuals whose depthwise conv has stride 2 (the rest have stride 1).
_STRIDE2_BLOCKS = {0, 5, 12}
EMBEDDING_SIZE = 128


class _Folded:
    """Reads a conv and the BatchNorm after it from the state_dict, folded together."""

    def __init__(self, sd: dict[str, np.ndarray]) -> None:
        self.sd = sd

    def __call__(self, conv: str, bn: str) -> tuple[np.ndarray, np.ndarray]:
        sd = self.sd
        return fold_batchnorm(sd[f"{conv}.weight"], sd.get(f"{conv}.bias"), sd[f"{bn}.weight"],
                              sd[f"{bn}.bias"], sd[f"{bn}.running_mean"], sd[f"{bn}.running_var"])


def build_foamliu_onnx(sd: dict[str, np.ndarray]) -> onnx.ModelProto:
    g = GraphBuilder("mobilefacenet_foamliu")
    fold = _Folded(sd)
    zero, six = g.const(np.array(0.0, np.float32), "zero"), g.const(np.array(6.0, np.float32), "six")

    def relu6(x: str) -> str:
        return g.node("Clip", [x, zero, six])

    x = g.input("input", ["batch", 3, 112, 112])
    x = relu6(g.conv(x, *fold("conv1.0", "conv1.1"), stride=2, pads=(1, 1, 1, 1)))
    x = g.node("Relu", [g.conv(x, *fold("dw_conv.depthwise", "dw_conv.bn1"), pads=(1, 1, 1, 1),
                               groups=64)])
    x = g.node("Relu", [g.conv(x, *fold("dw_conv.pointwise", "dw_conv.bn2"))])

    for i in range(15):
        p = f"features.{i}.conv"
        w_dw, b_dw = fold(f"{p}.1.0", f"{p}.1.1")
        stride = 2 if i in _STRIDE2_BLOCKS else 1
        h = relu6(g.conv(x, *fold(f"{p}.0.0", f"{p}.0.1")))
        h = relu6(g.conv(h, w_dw, b_dw, stride=stride, pads=(1, 1, 1, 1), groups=w_dw.shape[0]))
        w_out, b_out = fold(f"{p}.2", f"{p}.3")
        h = g.conv(h, w_out, b_out)
        residual = stride == 1 and w_out.shape[0] == sd[f"{p}.0.0.weight"].shape[1]
        x = g.node("Add", [x, h]) if residual else h

    x = relu6(g.conv(x, *fold("conv2.0", "conv2.1")))
    w_gd, b_gd = fold("gdconv.depthwise", "gdconv.bn")
    x = g.conv(x, w_gd, b_gd, groups=w_gd.shape[0])
    x = g.conv(x, *fold("conv3", "bn"))
    x = g.flatten(x)
    g.output(x, "embedding", ["batch", EMBEDDING_SIZE])
    return g.model("MobileFaceNet (Chen et al. 2018), foamliu/MobileFaceNet weights (Apache-2.0); "
                   "trained on MS1M, research use")
