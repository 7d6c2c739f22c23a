"""sirius-ai MobileFaceNet: our TFLite -> ONNX build against the reference ONNX, on real faces."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest

from facewatch.engines.backends.base import BackendOptions
from facewatch.engines.backends.onnxruntime import OnnxRuntimeRunner
from facewatch.engines.builders import mobilefacenet_sirius as builder
from facewatch.engines.builders.mobilefacenet_sirius import build_sirius_onnx
from facewatch.engines.readers.tflite import read_tflite
from facewatch.errors import ModelError


def _shared() -> Path:
    return Path(os.environ.get("FACEWATCH_SHARED", Path(__file__).resolve().parents[2].parent / "shared"))


SIRIUS = _shared() / "models" / "mobilefacenet_sirius"
TFLITE = SIRIUS / "MobileFaceNet.tflite"
REFERENCE = SIRIUS / "MobileFaceNet.reference.onnx"
LFW = _shared() / "data" / "faces" / "lfw"
PEOPLE = ["Aaron_Peirsol", "George_W_Bush", "Colin_Powell", "Serena_Williams", "Tony_Blair"]

needs_shared = pytest.mark.skipif(
    not (TFLITE.is_file() and REFERENCE.is_file() and LFW.is_dir()),
    reason=f"sirius model or LFW not found under {_shared()} (set FACEWATCH_SHARED)")


def _faces() -> np.ndarray:
    """LFW's first photo of each person: centre 130 px (the face) resized to 112, as the model wants."""
    crops = []
    for name in PEOPLE:
        bgr = cv2.imread(str(LFW / name / f"{name}_0001.jpg"))
        assert bgr is not None, name
        face = cv2.resize(bgr[60:190, 60:190, ::-1], (112, 112), interpolation=cv2.INTER_AREA)
        crops.append((face.astype(np.float32) - 127.5) / 128)
    return np.ascontiguousarray(np.stack(crops).transpose(0, 3, 1, 2))


def _embed(model: Path, faces: np.ndarray, batch: int) -> np.ndarray:
    runner = OnnxRuntimeRunner(model, BackendOptions())
    chunks = [runner.run({"input": faces[i:i + batch]})["embeddings"] for i in range(0, len(faces), batch)]
    return np.concatenate(chunks)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("sirius")
    paths = {}
    for form in ("fast", "plain"):
        paths[form] = out / f"sirius_{form}.onnx"
        onnx.save(build_sirius_onnx(TFLITE, prelu=form), paths[form])
    return paths


@pytest.fixture(scope="module")
def faces() -> np.ndarray:
    return _faces()


@needs_shared
@pytest.mark.parametrize("batch", [1, len(PEOPLE)])
def test_matches_reference_onnx(built: dict[str, Path], faces: np.ndarray, batch: int) -> None:
    ours = _embed(built["fast"], faces, batch)
    reference = _embed(REFERENCE, faces, batch)
    assert ours.shape == (len(PEOPLE), 192)
    # Folding the two 1x1 conv pairs rounds differently; everything else is bit-exact.
    assert np.abs(ours - reference).max() <= 1e-4
    assert np.linalg.norm(ours, axis=1).min() > 10  # not L2-normalised, like the TFLite graph


@needs_shared
@pytest.mark.parametrize("batch", [1, len(PEOPLE)])
def test_fast_prelu_equals_plain_prelu(built: dict[str, Path], faces: np.ndarray, batch: int) -> None:
    fast = _embed(built["fast"], faces, batch)
    plain = _embed(built["plain"], faces, batch)
    assert np.abs(fast - plain).max() <= 1e-5  # measured 0.0: the rewrite rounds as PRelu does


def test_fast_prelu_is_exact_on_extreme_values(tmp_path: Path) -> None:
    """The identity itself, on one PRelu layer: signed zeros, tiny and huge values, every slope sign."""
    rng = np.random.default_rng(0)
    slopes = np.array([-9.4, -1.0, -1e-3, 0.0, 0.25, 1.0, 1.7, 8.9], np.float32)
    x = (rng.standard_normal((3, 8, 5, 5)) * 10.0 ** rng.integers(-30, 30, (3, 8, 5, 5))).astype(np.float32)
    # every channel, so every slope, also sees the awkward values
    x.reshape(3, 8, 25)[0, :, :8] = [0.0, -0.0, 1e-45, -1e-45, 3e38, -3e38, 1.0, -1.0]
    g = builder._Onnx(nodes=[builder._Node("PRelu", ["x", "a"], "y")], consts={"a": slopes.reshape(8, 1, 1)})
    builder._fast_prelu(g)
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node(n.op, n.inputs, [n.output], **n.attrs) for n in g.nodes], "prelu",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n", 8, 5, 5])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["n", 8, 5, 5])],
        [onnx.numpy_helper.from_array(v, k) for k, v in g.consts.items()])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 13)])
    model.ir_version = 7
    onnx.save(model, tmp_path / "prelu.onnx")
    y = OnnxRuntimeRunner(tmp_path / "prelu.onnx", BackendOptions()).run({"x": x})["y"]
    a = slopes.reshape(1, 8, 1, 1)
    with np.errstate(over="ignore"):
        expected = np.where(x > 0, x, a * x)
    np.testing.assert_array_equal(y, expected)


def _dims(value: onnx.ValueInfoProto) -> list[str | int]:
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


@needs_shared
def test_graph_contract(built: dict[str, Path]) -> None:
    model = onnx.load(built["fast"])
    (inp,), (out,) = model.graph.input, model.graph.output
    assert (inp.name, _dims(inp)) == ("input", ["batch", 3, 112, 112])
    assert (out.name, _dims(out)) == ("embeddings", ["batch", 192])
    ops = {n.op_type for n in model.graph.node}
    assert ops == {"Conv", "Relu", "Add", "Flatten"}  # no PRelu, no Transpose on activations
    first = model.graph.node[0]
    pads = next(a.ints for a in first.attribute if a.name == "pads")
    assert list(pads) == [0, 0, 1, 1]  # TF SAME, stride 2 on 112: the extra row/column at the end
    assert sum(n.op_type == "PRelu" for n in onnx.load(built["plain"]).graph.node) == 33


@needs_shared
def test_tflite_graph_as_read() -> None:
    """What the converter relies on about the file: fixed batch 2, PReLU spelt out, no L2 norm at the end."""
    graph = read_tflite(TFLITE)
    (inp,), (out,) = graph.inputs, graph.outputs
    assert graph.tensors[inp].shape == (2, 112, 112, 3)
    assert graph.tensors[out].shape == (2, 192)
    assert [o.op for o in graph.operators[-2:]] == ["CONV_2D", "RESHAPE"]
    assert not any(o.op == "L2_NORMALIZATION" for o in graph.operators)
    conv = graph.operators[0]
    assert conv.options == {"padding": "SAME", "stride": (2, 2), "dilation": (1, 1), "fused_activation": "NONE"}
    assert graph.tensors[conv.inputs[1]].data is not None


def test_garbage_is_a_model_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(np.random.default_rng(1).bytes(4096))
    with pytest.raises(ModelError, match=r"junk\.tflite: not a TFLite model"):
        build_sirius_onnx(junk)
    fake = tmp_path / "fake.tflite"  # right identifier, nonsense tables
    fake.write_bytes(b"\x10\x00\x00\x00TFL3" + np.random.default_rng(2).bytes(4096))
    with pytest.raises(ModelError, match=r"fake\.tflite: "):
        read_tflite(fake)
    with pytest.raises(ModelError, match=r"missing\.tflite: cannot read it"):
        read_tflite(tmp_path / "missing.tflite")


@needs_shared
def test_truncated_model_is_a_model_error(tmp_path: Path) -> None:
    cut = tmp_path / "cut.tflite"
    cut.write_bytes(TFLITE.read_bytes()[:100_000])
    with pytest.raises(ModelError, match=r"cut\.tflite: not a TFLite model"):
        build_sirius_onnx(cut)
