"""The TensorRT backend without a GPU: cache keys, P-Net profiles against the detector's real
canvases, the errors a GPU-less machine gets, and that nothing loads TensorRT unasked.  The
tests that need a GPU are marked `gpu` and skip with the reason where none is present."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from facewatch.detection.detector import MtcnnSettings
from facewatch.engines.backends.base import BackendOptions
from facewatch.engines.backends.select import open_runner
from facewatch.engines.backends.tensorrt import cuda as gpu
from facewatch.engines.backends.tensorrt.plans import EngineCache, EngineKey, Profile
from facewatch.engines.backends.tensorrt.profiles import (
    DEFAULT_FRAME_SIZES,
    pnet_canvases,
    profiles_for,
)
from facewatch.engines.store import ModelStore
from facewatch.errors import BackendUnavailableError

KEY = EngineKey(onnx_sha256="a" * 64, tensorrt_version="10.3.0", gpu_name="NVIDIA L4",
                compute_capability=(8, 9), precision="int8",
                profiles=(Profile("input", (1, 3, 24, 24), (8, 3, 24, 24), (1024, 3, 24, 24)),),
                recipe="qdq:symmetric-int8-v1")


@pytest.mark.parametrize("change", [
    {"onnx_sha256": "b" * 64}, {"tensorrt_version": "10.4.0"}, {"gpu_name": "Orin"},
    {"compute_capability": (8, 7)}, {"precision": "fp16"}, {"recipe": "onnx"},
    {"profiles": (Profile("input", (1, 3, 24, 24), (8, 3, 24, 24), (512, 3, 24, 24)),)},
])
def test_cache_key_changes_with_each_component(change: dict) -> None:
    other = replace(KEY, **change)
    assert other.digest() != KEY.digest()
    assert EngineKey.from_dict(other.as_dict()) == other


def test_cache_finds_only_engines_for_the_same_target(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path)
    mine = cache.store("mtcnn-rnet.int8", KEY, b"engine-a")
    cache.store("mtcnn-rnet.int8", replace(KEY, gpu_name="Orin"), b"engine-b")
    cache.store("mtcnn-rnet.int8", replace(KEY, tensorrt_version="8.5.2"), b"engine-c")
    found = cache.find(replace(KEY, profiles=()))  # the runner does not know the profiles
    assert [p for _, p in found] == [mine]
    # A sidecar edited to claim another target no longer matches its engine's name.
    sidecar = mine.with_suffix(".json")
    sidecar.write_text(sidecar.read_text().replace('"10.3.0"', '"10.3.1"'))
    assert cache.find(replace(KEY, tensorrt_version="10.3.1")) == []
    assert cache.find(KEY) == []


@pytest.mark.parametrize("min_face", [20.0, 40.0])
def test_pnet_profiles_cover_the_detectors_canvases(models_dir: Path, min_face: float) -> None:
    """Run the real detector on frames of each default camera size and check that every P-Net
    input it builds fits a profile exactly (min_face 20: the CLI; 40: the daemon's default)."""
    store = ModelStore(models_dir)
    settings = MtcnnSettings(min_face=min_face)
    pnet_manifest = store.manifest("mtcnn-pnet")
    profiles = profiles_for(pnet_manifest, 4, DEFAULT_FRAME_SIZES, settings)
    assert len(profiles) == len(DEFAULT_FRAME_SIZES)
    seen: list[tuple[int, ...]] = []

    class Recorder:
        def __init__(self, inner: object) -> None:
            self.inner = inner
            self.input_names = ["input"]

        def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            seen.append(inputs["input"].shape)
            return self.inner.run(inputs)  # type: ignore[attr-defined]

    from facewatch.detection.detector import MtcnnDetector

    _, pnet = store.open("mtcnn-pnet", BackendOptions())
    _, rnet = store.open("mtcnn-rnet", BackendOptions())
    _, onet = store.open("mtcnn-onet", BackendOptions())
    det = MtcnnDetector(Recorder(pnet), rnet, onet, settings=settings)  # type: ignore[arg-type]
    rng = np.random.default_rng(0)
    for width, height in DEFAULT_FRAME_SIZES:
        frames = [rng.integers(0, 255, (height, width, 3), np.uint8) for _ in range(2)]
        det.detect_batch(frames)
    assert len(seen) == len(DEFAULT_FRAME_SIZES)
    for shape in seen:
        assert any(p.covers(shape) and p.min[2:] == shape[2:] for p in profiles), (shape, profiles)
    assert pnet_canvases([(640, 360)], settings) == [seen[0][2:]]


def test_fixed_size_nets_get_a_free_batch(models_dir: Path) -> None:
    store = ModelStore(models_dir)
    (rnet,) = profiles_for(store.manifest("mtcnn-rnet"), 8)
    assert rnet.min == (1, 3, 24, 24) and rnet.max[0] >= 512
    (emb,) = profiles_for(store.manifest("mobilefacenet-foamliu"), 16)
    assert emb.min == (1, 3, 112, 112) and emb.opt == (16, 3, 112, 112)


def test_runner_splits_batches_larger_than_the_profile() -> None:
    from facewatch.engines.backends.tensorrt.runner import TensorRTRunner

    runner = TensorRTRunner.__new__(TensorRTRunner)
    runner.input_names, runner.output_names = ["input"], ["prob"]
    runner._profiles = [((1, 3, 24, 24), (8, 3, 24, 24), (10, 3, 24, 24))]
    runner.engine_path = Path("rnet.engine")
    calls: list[int] = []

    def once(profile: int, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        calls.append(inputs["input"].shape[0])
        return {"prob": inputs["input"][:, 0, 0, :2]}

    runner._run_once = once  # type: ignore[method-assign]
    x = np.random.default_rng(0).random((23, 3, 24, 24), np.float32)
    out = runner.run({"input": x})
    assert calls == [10, 10, 3]
    np.testing.assert_array_equal(out["prob"], x[:, 0, 0, :2])
    with pytest.raises(BackendUnavailableError, match="no optimisation profile takes input"):
        runner.run({"input": np.zeros((1, 3, 48, 48), np.float32)})


def _no_gpu() -> str:
    problem = gpu.gpu_problem()
    if problem is None:
        pytest.skip("a GPU is present: the GPU-less errors cannot be observed")
    return problem


def test_backend_choice_without_gpu_is_one_line(models_dir: Path) -> None:
    problem = _no_gpu()
    assert problem.startswith(("no NVIDIA GPU: cuda-python reports 0 devices",
                               "cuda-python not installed"))
    with pytest.raises(BackendUnavailableError) as exc:
        open_runner(models_dir / "mtcnn-rnet.onnx", BackendOptions(backend="tensorrt"))
    assert str(exc.value) == f"inference.backend tensorrt: {problem}"


def test_missing_cuda_python_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gpu, "cudart", lambda: None)
    assert gpu.gpu_problem() == "cuda-python not installed (pip install 'facewatch[tensorrt]')"


def test_engines_build_without_gpu_fails_before_any_work(models_dir: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    problem = _no_gpu()
    from facewatch.cli.main import main

    assert main(["engines", "build", "--models", str(models_dir), "--precision", "int8"]) == 2
    assert capsys.readouterr().err.strip() == f"facewatch: error: tensorrt build: {problem}"


def test_nothing_imports_tensorrt_unless_chosen(models_dir: Path) -> None:
    code = f"""
import sys
from pathlib import Path
import facewatch.engines.backends.tensorrt.runner, facewatch.engines.backends.select
import facewatch.engines.backends.tensorrt.plans, facewatch.engines.backends.tensorrt.profiles
from facewatch.cli.main import build_parser
from facewatch.cli.doctor import _tensorrt
from facewatch.engines.backends.base import BackendOptions
from facewatch.engines.backends.select import open_runner
build_parser()
_tensorrt()
open_runner(Path({str(models_dir / 'mtcnn-rnet.onnx')!r}), BackendOptions())
print(sorted(m for m in sys.modules if m == "tensorrt" or m.startswith("tensorrt.")))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# GPU only ----------------------------------------------------------------------------------

def _tensorrt_or_skip() -> None:
    problem = gpu.gpu_problem()
    if problem is not None:
        pytest.skip(f"needs an NVIDIA GPU: {problem}")
    try:
        import tensorrt  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        pytest.skip("TensorRT's Python package is not installed")


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_gpu_engine_matches_onnxruntime(models_dir: Path, tmp_path: Path, precision: str) -> None:
    _tensorrt_or_skip()
    from facewatch.engines.backends.tensorrt.runner import BuildRequest, build_engine
    from tests.calibration.conftest import copy_models

    root = copy_models(models_dir, tmp_path / "models")
    store = ModelStore(root)
    manifest = store.manifest("mtcnn-onet")
    path = root / "mtcnn-onet.onnx"
    request = BuildRequest(path, "mtcnn-onet", precision, profiles_for(manifest, 8))
    engine, built = build_engine(request, EngineCache(root / "engines"))
    assert built and engine.is_file()
    assert build_engine(request, EngineCache(root / "engines")) == (engine, False)
    x = np.random.default_rng(0).standard_normal((37, 3, 48, 48)).astype(np.float32)
    ref = open_runner(path, BackendOptions()).run({"input": x})
    got = open_runner(path, BackendOptions(backend="tensorrt", precision=precision)).run({"input": x})  # type: ignore[arg-type]
    tol = 1e-3 if precision == "fp32" else 2e-2
    for name in ("prob", "reg", "landmarks"):
        np.testing.assert_allclose(got[name], ref[name], atol=tol)


@pytest.mark.gpu
def test_gpu_runner_refuses_an_engine_for_another_file(models_dir: Path, tmp_path: Path) -> None:
    _tensorrt_or_skip()
    from tests.calibration.conftest import copy_models

    root = copy_models(models_dir, tmp_path / "models")
    with pytest.raises(BackendUnavailableError, match="run `facewatch tensorrt build"):
        open_runner(root / "mtcnn-rnet.onnx", BackendOptions(backend="tensorrt"))
