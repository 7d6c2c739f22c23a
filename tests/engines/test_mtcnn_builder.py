"""Our MTCNN ONNX graphs (built from facenet-pytorch's weights without torch) against the
reference export by torch, on real faces and real video frames."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest

from facewatch.engines.backends.base import BackendOptions
from facewatch.engines.backends.onnxruntime import OnnxRuntimeRunner
from facewatch.engines.builders import mtcnn_nets
from facewatch.engines.readers.torch_legacy import load_state_dict

PEOPLE = ["Aaron_Peirsol", "George_W_Bush", "Colin_Powell", "Serena_Williams", "Tony_Blair"]
OUTPUTS = {"pnet": ["reg", "prob"], "rnet": ["reg", "prob"], "onet": ["reg", "landmarks", "prob"]}
TOLERANCE = 1e-4


def _normalise(rgb: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 → MTCNN's NCHW input, (x - 127.5) / 128."""
    return np.ascontiguousarray(((rgb.astype(np.float32) - 127.5) * 0.0078125).transpose(0, 3, 1, 2))


@pytest.fixture(scope="module")
def nets(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, OnnxRuntimeRunner]]:
    out = tmp_path_factory.mktemp("mtcnn_built")
    runners: dict[str, dict[str, OnnxRuntimeRunner]] = {}
    for net in ("pnet", "rnet", "onet"):
        model = getattr(mtcnn_nets, f"build_{net}")(load_state_dict(shared_dir / "models" / "mtcnn" / f"{net}.pt"))
        onnx.save(model, out / f"{net}.onnx")
        runners[net] = {
            "ours": OnnxRuntimeRunner(out / f"{net}.onnx", BackendOptions()),
            "reference": OnnxRuntimeRunner(shared_dir / "models" / "mtcnn" / f"{net}.reference.onnx",
                                           BackendOptions()),
        }
    return runners


@pytest.fixture(scope="module")
def lfw_faces(lfw_dir: Path) -> np.ndarray:
    """The first LFW photo of five people, the face and a margin (as MTCNN boxes are), RGB."""
    faces = []
    for name in PEOPLE:
        bgr = cv2.imread(str(lfw_dir / name / f"{name}_0001.jpg"))
        assert bgr is not None, name
        faces.append(bgr[50:200, 50:200, ::-1])
    return np.stack(faces)


@pytest.fixture(scope="module")
def frames(shared_dir: Path) -> np.ndarray:
    """Two frames of the Hamilton clip (640x360) with faces in them, RGB."""
    cap = cv2.VideoCapture(str(shared_dir / "data" / "videos" / "short_hamilton_clip.mp4"))
    out = []
    try:
        for index in range(241):
            ok, frame = cap.read()
            assert ok, f"frame {index} of the Hamilton clip"
            if index in (60, 240):
                out.append(frame[:, :, ::-1])
    finally:
        cap.release()
    return np.stack(out)


def _compare(runners: dict[str, OnnxRuntimeRunner], net: str, x: np.ndarray) -> dict[str, np.ndarray]:
    ours = runners["ours"].run({"input": x})
    reference = runners["reference"].run({"input": x})
    for name in OUTPUTS[net]:
        assert ours[name].shape == reference[name].shape, name
        assert np.abs(ours[name] - reference[name]).max() <= TOLERANCE, name
    return ours


@pytest.mark.parametrize("size", [(360, 640), (97, 131)], ids=["640x360", "131x97"])
@pytest.mark.parametrize("batch", [1, 2])
def test_pnet_matches_reference_on_real_frames(nets: dict, frames: np.ndarray,
                                               size: tuple[int, int], batch: int) -> None:
    h, w = size
    resized = np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in frames[:batch]])
    out = _compare(nets["pnet"], "pnet", _normalise(resized))
    # PNet has no padding: 3x3 conv, 2x2 ceil pool, two 3x3 convs
    oh, ow = (h - 2 + 1) // 2 - 4, (w - 2 + 1) // 2 - 4
    assert out["prob"].shape == (batch, 2, oh, ow)
    np.testing.assert_allclose(out["prob"].sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("net, side", [("rnet", 24), ("onet", 48)])
@pytest.mark.parametrize("batch", [1, len(PEOPLE)])
def test_rnet_onet_match_reference_on_real_faces(nets: dict, lfw_faces: np.ndarray,
                                                 net: str, side: int, batch: int) -> None:
    crops = np.stack([cv2.resize(f, (side, side), interpolation=cv2.INTER_AREA) for f in lfw_faces])
    x = _normalise(crops)
    outs = [_compare(nets[net], net, x[i:i + batch]) for i in range(0, len(x), batch)]
    prob = np.concatenate([o["prob"] for o in outs])
    # they are faces, and both nets say so: a graph that merely agreed on noise would not
    assert prob[:, 1].min() > 0.9


def test_built_graphs_carry_no_transpose(shared_dir: Path) -> None:
    """R/O-Net's permute before the dense layer is folded into its weights."""
    for net in ("rnet", "onet"):
        model = getattr(mtcnn_nets, f"build_{net}")(load_state_dict(shared_dir / "models" / "mtcnn" / f"{net}.pt"))
        ops = {node.op_type for node in model.graph.node}
        assert "Transpose" not in ops
        # PRelu after convs is written as Relu/Conv/Add (ORT keeps those in its fast layout)
        assert ops <= {"Conv", "Relu", "Add", "PRelu", "MaxPool", "Flatten", "Gemm", "Softmax",
                       "Identity"}
        conv_prelus = [n for n in model.graph.node if n.op_type == "PRelu"]
        assert len(conv_prelus) == 1  # only the one after the dense layer stays PRelu
        assert [o.name for o in model.graph.output] == OUTPUTS[net]
