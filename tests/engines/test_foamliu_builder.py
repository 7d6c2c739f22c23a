"""foamliu's MobileFaceNet: our ONNX build (BatchNorm folded by us) against torch's export, on
real LFW faces."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest

from facewatch.engines.backends.base import BackendOptions
from facewatch.engines.backends.onnxruntime import OnnxRuntimeRunner
from facewatch.engines.builders.mobilefacenet_foamliu import (
    EMBEDDING_SIZE,
    build_foamliu_onnx,
)
from facewatch.engines.readers.torch_legacy import load_state_dict

PEOPLE = ["Aaron_Peirsol", "George_W_Bush", "Colin_Powell", "Serena_Williams", "Tony_Blair"]
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


@pytest.fixture(scope="module")
def built(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, onnx.ModelProto]:
    model = build_foamliu_onnx(load_state_dict(shared_dir / "models" / "mobilefacenet" / "mobilefacenet.pt"))
    path = tmp_path_factory.mktemp("foamliu") / "foamliu.onnx"
    onnx.save(model, path)
    return path, model


@pytest.fixture(scope="module")
def faces(lfw_dir: Path) -> np.ndarray:
    """The centre of LFW's first photo of five people (the face), 112x112, as foamliu normalises."""
    crops = []
    for name in PEOPLE:
        bgr = cv2.imread(str(lfw_dir / name / f"{name}_0001.jpg"))
        assert bgr is not None, name
        rgb = cv2.resize(bgr[60:190, 60:190, ::-1], (112, 112), interpolation=cv2.INTER_AREA)
        crops.append((rgb.astype(np.float32) / 255 - MEAN) / STD)
    return np.ascontiguousarray(np.stack(crops).transpose(0, 3, 1, 2))


def _embed(model: Path, faces: np.ndarray, batch: int) -> np.ndarray:
    runner = OnnxRuntimeRunner(model, BackendOptions())
    return np.concatenate([runner.run({"input": faces[i:i + batch]})["embedding"]
                           for i in range(0, len(faces), batch)])


@pytest.mark.parametrize("batch", [1, len(PEOPLE)])
def test_matches_reference_onnx(built: tuple[Path, onnx.ModelProto], faces: np.ndarray,
                                shared_dir: Path, batch: int) -> None:
    ours = _embed(built[0], faces, batch)
    reference = _embed(shared_dir / "models" / "mobilefacenet" / "mobilefacenet.reference.onnx",
                       faces, batch)
    assert ours.shape == (len(PEOPLE), EMBEDDING_SIZE)
    assert np.abs(ours - reference).max() <= 1e-4
    # five different people: the embeddings are far from each other (not a constant output)
    unit = ours / np.linalg.norm(ours, axis=1, keepdims=True)
    off_diagonal = (unit @ unit.T)[~np.eye(len(PEOPLE), dtype=bool)]
    assert off_diagonal.max() < 0.5


def test_same_layers_as_the_reference_with_batchnorm_folded(built: tuple[Path, onnx.ModelProto],
                                                             shared_dir: Path) -> None:
    def count(model: onnx.ModelProto, op: str) -> int:
        return sum(node.op_type == op for node in model.graph.node)

    ours = built[1]
    reference = onnx.load(str(shared_dir / "models" / "mobilefacenet" / "mobilefacenet.reference.onnx"))
    assert {node.op_type for node in ours.graph.node} <= {"Conv", "Clip", "Relu", "Add", "Flatten",
                                                          "Identity"}
    for op in ("Conv", "Clip", "Relu", "Add"):  # 51 convs, 32 ReLU6, 12 residual adds
        assert count(ours, op) == count(reference, op), op
