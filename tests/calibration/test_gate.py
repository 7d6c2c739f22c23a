"""The accuracy gate: a badly calibrated embedder is refused (nothing written, exit 1) unless
forced; LFW and detector-recall figures are measured against FP32."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from facewatch.calibration import gate, run
from facewatch.calibration.run import CalibrationOptions, calibrate
from facewatch.calibration.sources import video_source
from facewatch.cli.main import main
from facewatch.engines.store import ModelStore
from facewatch.evaluation.lfw import read_pairs
from facewatch.pipeline import PipelineSettings
from tests.calibration.conftest import EMBEDDER, copy_models


def _black_calibration(monkeypatch: pytest.MonkeyPatch) -> None:
    """Calibrate the embedder on two black crops (what the preprocessing makes of them),
    whatever the source gave: activation ranges then fit nothing real."""
    real = run.quantise

    def on_black(src: Path, dst: Path, batches: Any, settings: Any, tick: Any = None) -> Any:
        if "mobilefacenet" in src.name:
            black = (np.zeros((2, 112, 112, 3), np.float32) - [123.675, 116.28, 103.53]) \
                / [58.395, 57.12, 57.375]
            batches = [black.transpose(0, 3, 1, 2).astype(np.float32)]
        return real(src, dst, batches, settings, tick)

    monkeypatch.setattr(run, "quantise", on_black)


@pytest.fixture
def store_copy(models_dir: Path, tmp_path: Path) -> Path:
    return copy_models(models_dir, tmp_path / "models")


def _small_pairs(lfw_dir: Path, dest: Path) -> Path:
    """LFW's protocol cut to 2 folds of 10 + 10 pairs (the first of each of folds 1-2)."""
    lines = (lfw_dir / "pairs.txt").read_text().split("\n")
    out = ["2\t10"]
    for fold in range(2):
        start = 1 + fold * 600
        out += lines[start:start + 10] + lines[start + 300:start + 310]
    dest.write_text("\n".join(out) + "\n")
    assert len(read_pairs(dest, lfw_dir)) == 40
    return dest


def test_gate_refuses_an_embedder_calibrated_on_black_images(
        store_copy: Path, hamilton: Path, lfw_dir: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    _black_calibration(monkeypatch)
    pairs = _small_pairs(lfw_dir, tmp_path / "pairs.txt")
    settings = PipelineSettings(embedder=EMBEDDER)
    report = calibrate(ModelStore(store_copy), settings, video_source(hamilton, 30),
                       CalibrationOptions(nets=("embedder",), lfw_dir=lfw_dir, pairs=pairs,
                                          progress=False))
    (r,) = report.results
    assert r.decision == "refused"
    assert r.manifest is None
    assert not (store_copy / f"{EMBEDDER}.int8.json").exists()
    assert not (store_copy / f"{EMBEDDER}.int8.onnx").exists()
    assert r.gate["agreement"]["cosine_mean"] < gate.COSINE_MEAN_FLOOR
    assert r.gate["lfw"]["delta_pp"] < -gate.LFW_MAX_LOSS_PP
    assert "LFW" in r.reason and "--force" in r.reason
    assert report.as_dict()["ok"] is False


def test_force_writes_the_refused_model_and_says_so(
        store_copy: Path, hamilton: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _black_calibration(monkeypatch)
    settings = PipelineSettings(embedder=EMBEDDER)
    report = calibrate(ModelStore(store_copy), settings, video_source(hamilton, 20),
                       CalibrationOptions(nets=("embedder",), force=True, progress=False))
    (r,) = report.results
    assert r.decision == "int8" and r.reason.startswith("forced past the gate")
    manifest = ModelStore(store_copy).manifest(f"{EMBEDDER}.int8")
    assert manifest.calibration is not None and "forced" in manifest.calibration.decision


def test_cli_exits_1_on_refusal_with_the_gate_in_json(
        store_copy: Path, hamilton: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    _black_calibration(monkeypatch)
    code = main(["calibrate", "--models", str(store_copy), "--video", str(hamilton),
                 "--frames", "20", "--nets", "embedder", "--embedder", EMBEDDER, "--json"])
    assert code == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is False and doc["nets"][0]["decision"] == "refused"


def test_cli_calibrates_and_int8_then_loads(store_copy: Path, hamilton: Path, examples: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["calibrate", "--models", str(store_copy), "--video", str(hamilton),
                 "--frames", "30", "--nets", "embedder", "--embedder", EMBEDDER,
                 "--no-speed-check", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0, doc
    assert doc["nets"][0]["decision"] == "int8"
    assert main(["embed", "--models", str(store_copy), "--precision", "int8", "--embedder", EMBEDDER,
                 "--json", str(examples / "obama.jpg")]) == 2  # detector nets not calibrated yet
    err = capsys.readouterr().err
    assert "mtcnn-pnet has not been calibrated for int8" in err and "facewatch calibrate" in err


def test_recall_matches_dlib_boxes(photos: Path) -> None:
    annotated = gate.read_dlib_annotations(photos / "dlib_examples_faces")
    assert len(annotated) == 9 and sum(a.boxes.shape[0] for a in annotated) == 43
    truth = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], np.float32)
    assert gate.matched(truth, np.array([[1, 1, 11, 11]], np.float32), 0.3) == 1
    assert gate.matched(truth, np.zeros((0, 4), np.float32), 0.3) == 0
