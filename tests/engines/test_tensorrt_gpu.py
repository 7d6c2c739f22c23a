"""The TensorRT backend on a GPU: engines built and run against ONNX Runtime's answers.

Every test here needs an NVIDIA GPU and TensorRT's Python package; they are marked `gpu` and
skip, before any fixture runs, with the reason where either is missing (as on the machine
facewatch is developed on)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from facewatch.engines.backends.base import BackendOptions
from facewatch.engines.backends.select import open_runner
from facewatch.engines.backends.tensorrt import cuda as gpu
from facewatch.engines.backends.tensorrt.plans import EngineCache
from facewatch.engines.backends.tensorrt.profiles import profiles_for
from facewatch.engines.store import ModelStore
from facewatch.errors import BackendUnavailableError
from tests.calibration.conftest import copy_models


def _why_not() -> str | None:
    problem = gpu.gpu_problem()
    if problem is not None:
        return f"needs an NVIDIA GPU: {problem}"
    try:
        import tensorrt  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        return "TensorRT's Python package is not installed"
    return None


_REASON = _why_not()
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(_REASON is not None, reason=_REASON or "")]


@pytest.fixture
def store(models_dir: Path, tmp_path: Path) -> ModelStore:
    return ModelStore(copy_models(models_dir, tmp_path / "models"))


def _build(store: ModelStore, name: str, precision: str, **profile_args: object) -> Path:
    from facewatch.engines.backends.tensorrt.runner import BuildRequest, build_engine

    if precision == "fp16":
        from facewatch.engines.backends.tensorrt.fp16 import fp16_variant

        fp16_variant(store, name)
    variant = store.resolve(name, precision)
    manifest = store.manifest(variant)
    request = BuildRequest(manifest.path(store.manifest_path(variant)), variant, precision,
                           profiles_for(store.manifest(name), 8, **profile_args),  # type: ignore[arg-type]
                           fp32_path=store.root / f"{name}.onnx")
    engine, built = build_engine(request, EngineCache(store.root / "engines"))
    assert built and engine.is_file()
    assert build_engine(request, EngineCache(store.root / "engines")) == (engine, False)
    return engine


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_gpu_engine_matches_onnxruntime(store: ModelStore, precision: str) -> None:
    """fp16: TensorRT 11 builds the FP16 ONNX strongly typed, older ones the builder flag."""
    import tensorrt as trt

    from facewatch.engines.backends.tensorrt.runner import engine_recipe

    engine = _build(store, "mtcnn-onet", precision)
    if precision == "fp16":
        recipe = engine_recipe("fp16", trt)
        assert recipe.startswith("fp16-onnx:") == (not hasattr(trt.BuilderFlag, "FP16"))
        assert f'"recipe": "{recipe}"' in engine.with_suffix(".json").read_text()
    x = np.random.default_rng(0).standard_normal((37, 3, 48, 48)).astype(np.float32)
    ref = open_runner(store.root / "mtcnn-onet.onnx", BackendOptions()).run({"input": x})
    _, runner = store.open("mtcnn-onet", BackendOptions(backend="tensorrt", precision=precision))  # type: ignore[arg-type]
    got = runner.run({"input": x})
    tol = 1e-3 if precision == "fp32" else 2e-2
    for name in ("prob", "reg", "landmarks"):
        np.testing.assert_allclose(got[name], ref[name], atol=tol)


def test_gpu_pnet_runs_shapes_no_profile_has(store: ModelStore) -> None:
    """Engines for 640x360 cameras only: a gallery photo's canvas runs on the range, a canvas
    larger than the range in tiles; both equal ONNX Runtime's P-Net."""
    _build(store, "mtcnn-pnet", "fp32", frame_sizes=[(640, 360)])
    _, runner = store.open("mtcnn-pnet", BackendOptions(backend="tensorrt"))
    ref = open_runner(store.root / "mtcnn-pnet.onnx", BackendOptions())
    rng = np.random.default_rng(0)
    for h, w in ((301, 517), (1700, 1300)):
        x = rng.standard_normal((2, 3, h, w)).astype(np.float32)
        want, got = ref.run({"input": x}), runner.run({"input": x})
        for name in want:
            np.testing.assert_allclose(got[name], want[name], atol=1e-3)


def test_gpu_int8_engine_builds_from_the_calibrated_qdq_model(
        store: ModelStore, shared_dir: Path, examples: Path) -> None:
    from facewatch.calibration.run import CalibrationOptions, calibrate
    from facewatch.calibration.sources import chain, folder_source, video_source
    from facewatch.pipeline import PipelineSettings

    clip = shared_dir / "data" / "videos" / "short_hamilton_clip.mp4"
    # foamliu: the embedder that has an INT8 variant (the default, fused, is refused by the gate)
    settings = PipelineSettings(embedder="mobilefacenet-foamliu")
    calibrate(store, settings, chain([video_source(clip, 10), folder_source(examples)]),
              CalibrationOptions(nets=("onet", "embedder"), speed_check=False, progress=False,
                                 force=True))
    _build(store, "mtcnn-onet", "int8")
    _build(store, "mobilefacenet-foamliu", "int8")
    _, runner = store.open("mtcnn-onet", BackendOptions(backend="tensorrt", precision="int8"))
    x = np.random.default_rng(0).standard_normal((8, 3, 48, 48)).astype(np.float32)
    assert runner.run({"input": x})["prob"].shape == (8, 2)


def test_gpu_two_threads_at_once_get_their_own_answers(store: ModelStore) -> None:
    _build(store, "mtcnn-rnet", "fp32")
    _, runner = store.open("mtcnn-rnet", BackendOptions(backend="tensorrt"))
    ref = open_runner(store.root / "mtcnn-rnet.onnx", BackendOptions())
    errors: list[str] = []

    def worker(seed: int) -> None:
        rng = np.random.default_rng(seed)
        for _ in range(50):
            x = rng.standard_normal((int(rng.integers(1, 300)), 3, 24, 24)).astype(np.float32)
            if not np.allclose(runner.run({"input": x})["prob"], ref.run({"input": x})["prob"],
                               atol=1e-3):
                errors.append(f"thread {seed}: wrong answer")

    threads = [threading.Thread(target=worker, args=(s,)) for s in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_gpu_runner_refuses_an_engine_for_another_file(store: ModelStore) -> None:
    with pytest.raises(BackendUnavailableError, match="run `facewatch tensorrt build"):
        open_runner(store.root / "mtcnn-rnet.onnx", BackendOptions(backend="tensorrt"))
