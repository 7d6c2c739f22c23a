"""Static INT8 quantisation: a QDQ model that agrees with FP32 on real crops, calibrated on
exactly what each net sees in the pipeline, and its symmetric rewrite for TensorRT."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import onnx
import pytest

from facewatch.calibration.collect import Caps, RecordingRunner, _Recorder
from facewatch.calibration.quantize import named_copy, tail_nodes
from facewatch.calibration.run import CalibrationReport
from facewatch.calibration.symmetric import is_symmetric_int8, to_symmetric_int8
from facewatch.engines.backends.base import BackendOptions
from facewatch.engines.backends.select import open_runner
from facewatch.engines.backends.tensorrt.profiles import pnet_canvases
from facewatch.engines.store import ModelStore
from facewatch.images import load_image
from facewatch.pipeline import FacePipeline, PipelineSettings
from tests.calibration.conftest import EMBEDDER

# Measured on these 60 LFW faces with the ~50-image calibration of conftest: mean 0.9977,
# min 0.9963 (the 314-frame proof calibration: 0.993 mean on 96 held-out video crops).
COSINE_MEAN = 0.995
COSINE_MIN = 0.99


@pytest.fixture(scope="module")
def lfw_crops(pipeline: FacePipeline, lfw_dir: Path) -> np.ndarray:
    """Aligned crops of 60 LFW people, none of them in the calibration set."""
    rng = random.Random(7)
    people = sorted(p for p in lfw_dir.iterdir() if p.is_dir())
    files = [min(d.glob("*.jpg")) for d in rng.sample(people, 60)]
    crops = [a.crops[:1] for a in pipeline.analyze([load_image(f) for f in files], embed=False)]
    return np.concatenate(crops)


def _embed(store: ModelStore, precision: str, crops: np.ndarray) -> np.ndarray:
    backend = BackendOptions(precision=precision)  # type: ignore[arg-type]
    p = FacePipeline.load(PipelineSettings(embedder=EMBEDDER, backend=backend), store)
    assert p.embedder is not None
    return p.embedder.embed(crops)


def test_int8_embedder_agrees_with_fp32_on_real_crops(calibrated: tuple[Path, CalibrationReport],
                                                      lfw_crops: np.ndarray) -> None:
    store = ModelStore(calibrated[0])
    cos = np.einsum("ij,ij->i", _embed(store, "fp32", lfw_crops), _embed(store, "int8", lfw_crops))
    assert cos.mean() >= COSINE_MEAN, cos.mean()
    assert cos.min() >= COSINE_MIN, cos.min()


def test_int8_file_is_qdq_with_per_channel_int8_weights(calibrated: tuple[Path, CalibrationReport]
                                                        ) -> None:
    model = onnx.load(str(calibrated[0] / f"{EMBEDDER}.int8.onnx"))
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("QuantizeLinear") > 40 and ops.count("DequantizeLinear") > 40
    inits = {i.name: i for i in model.graph.initializer}
    weight_dq = [n for n in model.graph.node if n.op_type == "DequantizeLinear"
                 and n.input[0] in inits and inits[n.input[0]].data_type == onnx.TensorProto.INT8]
    assert weight_dq, "no int8 weights"
    per_channel = [n for n in weight_dq if len(inits[n.input[1]].dims) == 1
                   and inits[n.input[1]].dims[0] > 1]
    assert len(per_channel) >= len(weight_dq) // 2
    # The tail kept in FP32: the output's producer chain ends in float convolutions.
    float_convs = [n for n in model.graph.node if n.op_type == "Conv"
                   and n.input[1] in inits and inits[n.input[1]].data_type == onnx.TensorProto.FLOAT]
    assert len(float_convs) == 3


def test_tail_nodes_walks_back_from_the_output(models_dir: Path) -> None:
    model = named_copy(onnx.load(str(models_dir / f"{EMBEDDER}.onnx")))
    convs = [n.name for n in model.graph.node if n.op_type == "Conv"]
    assert tail_nodes(model, 1) == [convs[-1]]
    assert set(tail_nodes(model, 3)) == set(convs[-3:])
    assert tail_nodes(model, 0) == []


def test_symmetric_rewrite_runs_and_keeps_agreement(calibrated: tuple[Path, CalibrationReport],
                                                    lfw_crops: np.ndarray, tmp_path: Path) -> None:
    root = calibrated[0]
    qdq = onnx.load(str(root / f"{EMBEDDER}.int8.onnx"))
    assert not is_symmetric_int8(qdq)
    sym = to_symmetric_int8(qdq)
    assert is_symmetric_int8(sym)
    path = tmp_path / "sym.onnx"
    onnx.save(sym, str(path))
    store = ModelStore(root)
    manifest = store.manifest(EMBEDDER)
    x = ((lfw_crops.astype(np.float32) - np.array(manifest.input.mean, np.float32))
         / np.array(manifest.input.std, np.float32)).transpose(0, 3, 1, 2).copy()
    opts = BackendOptions()
    ref = open_runner(root / f"{EMBEDDER}.onnx", opts).run({"input": x})["embedding"]
    got = open_runner(path, opts).run({"input": x})["embedding"]
    unit = lambda v: v / np.linalg.norm(v, axis=1, keepdims=True)
    cos = np.einsum("ij,ij->i", unit(ref), unit(got))
    # Symmetric int8 halves the levels of every ReLU output: a little below the uint8 model.
    assert cos.mean() >= 0.98, cos.mean()


def test_pnet_is_calibrated_on_the_detectors_own_canvases(pipeline: FacePipeline,
                                                          hamilton: Path) -> None:
    from facewatch.calibration.sources import video_source

    rng = np.random.default_rng(0)
    recorder = _Recorder("pnet", Caps(), rng)
    det = pipeline.detector
    original = det.pnet
    det.pnet = RecordingRunner(original, recorder)
    try:
        for frame in video_source(hamilton, 3).frames():
            det.detect(frame)
    finally:
        det.pnet = original
    assert recorder.reservoir is not None and len(recorder.reservoir.items) == 3
    (h, w), = pnet_canvases([(640, 360)], pipeline.detector.settings)
    assert recorder.shapes == {(3, h, w)}


def test_report_and_manifests_record_the_calibration(calibrated: tuple[Path, CalibrationReport]
                                                     ) -> None:
    root, report = calibrated
    assert report.frames >= 40 and report.faces > 0
    assert {r.net for r in report.results} == {"embedder", "pnet", "rnet", "onet"}
    store = ModelStore(root)
    for r in report.results:
        m = store.manifest(f"{r.name}.int8")
        assert m.calibration is not None
        assert m.calibration.fp32_sha256 == store.manifest(r.name).sha256
        assert "Hamilton" in m.calibration.source or "hamilton" in m.calibration.source
        assert m.calibration.decision == r.reason
        assert m.precision == r.decision
        if r.decision == "fp32":  # INT8 lost faces here: the variant is the FP32 file
            assert m.file == f"{r.name}.onnx" and not (root / f"{r.name}.int8.onnx").exists()
    embedder = store.manifest(f"{EMBEDDER}.int8")
    assert embedder.precision == "int8"
    assert embedder.threshold == store.manifest(EMBEDDER).threshold
    gate = embedder.calibration.gate  # type: ignore[union-attr]
    assert gate["agreement"]["cosine_mean"] >= 0.98  # 21 held-out video crops: 0.995
    assert gate["thresholds"]["lfw_max_loss_pp"] == 0.3
    pnet = store.manifest("mtcnn-pnet.int8").calibration.gate  # type: ignore[union-attr]
    assert pnet["faces_annotated"] == 43 and pnet["recall_fp32"] == 1.0
