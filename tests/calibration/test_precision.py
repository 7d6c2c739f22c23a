"""Precision selection: `--precision int8` / `inference.precision: int8` open the `.int8`
variants, per net, and say in one line what to run when they have not been made yet."""

from __future__ import annotations

from pathlib import Path

import pytest

from facewatch.calibration.run import CalibrationReport
from facewatch.config import parse_config
from facewatch.engines.backends.base import BackendOptions
from facewatch.engines.store import ModelStore, variant_name
from facewatch.errors import ModelError
from facewatch.pipeline import FacePipeline, PipelineSettings
from tests.calibration.conftest import EMBEDDER


def test_variant_names() -> None:
    assert variant_name(EMBEDDER, "int8") == f"{EMBEDDER}.int8"
    assert variant_name(f"{EMBEDDER}.int8", "int8") == f"{EMBEDDER}.int8"
    assert variant_name(EMBEDDER, "fp32") == EMBEDDER
    assert variant_name(EMBEDDER, "fp16") == f"{EMBEDDER}.fp16"
    assert variant_name(f"{EMBEDDER}.fp16", "fp16") == f"{EMBEDDER}.fp16"


def test_int8_opens_the_calibrated_files(calibrated: tuple[Path, CalibrationReport]) -> None:
    root, report = calibrated
    store = ModelStore(root)
    manifest, runner = store.open(EMBEDDER, BackendOptions(precision="int8"))
    assert manifest.name == f"{EMBEDDER}.int8" and manifest.precision == "int8"
    assert Path(runner.model_path).name == f"{EMBEDDER}.int8.onnx"
    manifest, runner = store.open(EMBEDDER, BackendOptions(precision="fp32"))
    assert Path(runner.model_path).name == f"{EMBEDDER}.onnx"
    decisions = {r.name: r.decision for r in report.results}
    for name in ("mtcnn-pnet", "mtcnn-rnet", "mtcnn-onet"):
        manifest, runner = store.open(name, BackendOptions(precision="int8"))
        expected = f"{name}.int8.onnx" if decisions[name] == "int8" else f"{name}.onnx"
        assert Path(runner.model_path).name == expected


def test_pipeline_signature_changes_with_precision(calibrated: tuple[Path, CalibrationReport]
                                                  ) -> None:
    store = ModelStore(calibrated[0])
    fp32 = FacePipeline.load(PipelineSettings(embedder=EMBEDDER), store)
    int8 = FacePipeline.load(
        PipelineSettings(embedder=EMBEDDER, backend=BackendOptions(precision="int8")), store)
    # Caches of embeddings (gallery, analysis) are keyed by it: no FP32 vector is reused.
    assert fp32.signature != int8.signature


def test_missing_variant_is_one_line_naming_the_command(models_dir: Path) -> None:
    with pytest.raises(ModelError) as exc:
        ModelStore(models_dir).open(EMBEDDER, BackendOptions(precision="int8"))
    message = str(exc.value)
    assert "\n" not in message
    assert f"{EMBEDDER} has not been calibrated for int8" in message
    assert "facewatch calibrate" in message
    assert not (models_dir / f"{EMBEDDER}.int8.json").exists()


def test_config_precision_reaches_the_backend_options() -> None:
    text = ("cameras:\n  - name: door\n    url: /dev/video0\ngallery: g.yaml\n"
            "inference:\n  precision: int8\n")
    config = parse_config(text)
    assert config.inference.backend_options().precision == "int8"
    assert config.inference.pipeline_settings().backend.precision == "int8"
