"""The TensorRT backend without a GPU: cache keys and engine choice, P-Net profiles against the
detector's real canvases and photos of any size (tiles run through the real P-Net on ONNX
Runtime), the runner's locking, the checks of TensorRT's return values, the errors a GPU-less
machine gets, and that nothing loads TensorRT unasked.  TensorRT's own objects are replaced by
small stand-ins only where a test is about what facewatch does with a refusal.  The tests that
need a GPU are marked `gpu` and skip with the reason where none is present."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from facewatch.detection.detector import MtcnnSettings, pyramid_layout
from facewatch.engines.backends.base import BackendOptions
from facewatch.engines.backends.select import open_runner
from facewatch.engines.backends.tensorrt import cuda as gpu
from facewatch.engines.backends.tensorrt.dispatch import (
    ProfileDispatch,
    axis_tiles,
    choose_profile,
    is_exact,
    takes,
)
from facewatch.engines.backends.tensorrt.plans import (
    EngineCache,
    EngineKey,
    Profile,
    choose_engine,
)
from facewatch.engines.backends.tensorrt.profiles import (
    DEFAULT_FRAME_SIZES,
    PNET_TILING,
    pnet_canvases,
    pnet_profiles,
    profiles_for,
)
from facewatch.engines.store import ModelStore
from facewatch.errors import BackendUnavailableError
from facewatch.pipeline import FacePipeline

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


class _Recorder:
    """Hands P-Net's inputs to a real ONNX Runtime P-Net, keeping their shapes."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.input_names = ["input"]
        self.seen: list[tuple[int, ...]] = []

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.seen.append(inputs["input"].shape)
        return self.inner.run(inputs)  # type: ignore[attr-defined, no-any-return]


def _profile_shapes(profiles: tuple[Profile, ...]) -> list[tuple[tuple[int, ...], ...]]:
    return [(p.min, p.opt, p.max) for p in profiles]


@pytest.mark.parametrize("min_face", [20.0, 40.0])
def test_pnet_profiles_cover_the_detectors_canvases(models_dir: Path, min_face: float) -> None:
    """Run the real detector on frames of each default camera size and check that every P-Net
    input it builds has an exact profile (min_face 20 and the daemon's default 40)."""
    store = ModelStore(models_dir)
    settings = MtcnnSettings(min_face=min_face)
    profiles = profiles_for(store.manifest("mtcnn-pnet"), 4, DEFAULT_FRAME_SIZES, settings)
    assert len(profiles) == len(DEFAULT_FRAME_SIZES) + 1  # one exact per size, and the range
    from facewatch.detection.detector import MtcnnDetector

    _, pnet = store.open("mtcnn-pnet", BackendOptions())
    _, rnet = store.open("mtcnn-rnet", BackendOptions())
    _, onet = store.open("mtcnn-onet", BackendOptions())
    recorder = _Recorder(pnet)
    det = MtcnnDetector(recorder, rnet, onet, settings=settings)  # type: ignore[arg-type]
    rng = np.random.default_rng(0)
    for width, height in DEFAULT_FRAME_SIZES:
        det.detect_batch([rng.integers(0, 255, (height, width, 3), np.uint8) for _ in range(2)])
    assert len(recorder.seen) == len(DEFAULT_FRAME_SIZES)
    shapes = _profile_shapes(profiles)
    for shape in recorder.seen:
        index = choose_profile(shapes, shape)
        assert index is not None and is_exact(shapes[index], shape), (shape, profiles)
    assert pnet_canvases([(640, 360)], settings) == [recorder.seen[0][2:]]


def test_the_daemons_defaults_fit_engines_built_without_options(models_dir: Path) -> None:
    """`tensorrt build` with no options builds for the daemon's own detector settings (min_face
    40), so the canvases (height x width) the daemon asks for at 640x360 (242x192) and 1080p
    (718x576) are
    exact profiles; at min_face 20 they were not."""
    from facewatch.cli.main import build_parser
    from facewatch.cli.tensorrt import _plan
    from facewatch.config.inference import InferenceConfig

    args = build_parser().parse_args(["tensorrt", "build"])
    detector, sizes, embedder = _plan(args)
    daemon = InferenceConfig().detector_settings()
    assert detector == daemon and embedder == InferenceConfig().embedder
    profiles = profiles_for(ModelStore(models_dir).manifest("mtcnn-pnet"), 8, sizes, detector)
    canvases = pnet_canvases(DEFAULT_FRAME_SIZES, daemon)
    assert (242, 192) in canvases and (718, 576) in canvases  # (height, width)
    for h, w in canvases:
        assert any(p.exact and p.min[2:] == (h, w) for p in profiles)


def test_cli_frame_sizes_include_the_configs_cameras(tmp_path: Path) -> None:
    from facewatch.cli.main import build_parser
    from facewatch.cli.tensorrt import _plan

    config = tmp_path / "config.yaml"
    config.write_text("cameras:\n  - name: door\n    url: /dev/video0\n    max_size: 800x600\n"
                      "  - name: yard\n    url: /dev/video1\ngallery: g.yaml\n"
                      "inference:\n  min_face: 30\n")
    args = build_parser().parse_args(["tensorrt", "build", "--config", str(config),
                                      "--frame-size", "1024x576"])
    detector, sizes, _ = _plan(args)
    assert detector.min_face == 30
    # yard has no max_size: the largest frame the daemon takes without one.
    assert sizes == sorted({*DEFAULT_FRAME_SIZES, (800, 600), (1024, 576), (1920, 1080)})


@settings(max_examples=300, deadline=None)
@given(width=st.integers(12, 7000), height=st.integers(12, 7000),
       min_face=st.sampled_from([12.0, 20.0, 40.0, 80.0]))
def test_every_photo_canvas_falls_inside_a_profile_or_tiles_that_do(
        width: int, height: int, min_face: float) -> None:
    """Gallery photos reach P-Net at their own size: a canvas no exact profile has runs on the
    range, and one larger than the range is cut into tiles the range takes."""
    assume(width * height <= 40_000_000)  # load_image's limit
    settings_ = MtcnnSettings(min_face=min_face)
    profiles = _profile_shapes(pnet_profiles("input", pnet_canvases(DEFAULT_FRAME_SIZES,
                                                                    MtcnnSettings(40.0)), 8))
    layout = pyramid_layout(height, width, settings_)
    if not layout.levels:
        return  # smaller than one P-Net window: the detector does not call P-Net
    shape = (1, 3, layout.canvas_height, layout.canvas_width)
    if choose_profile(profiles, shape) is not None:
        return
    _lo, _opt, hi = profiles[-1]
    for top, rows in axis_tiles(shape[2], hi[2], PNET_TILING):
        for left, cols in axis_tiles(shape[3], hi[3], PNET_TILING):
            assert takes(profiles[-1], (1, 3, rows, cols)), (shape, rows, cols)
            assert top % 2 == 0 and left % 2 == 0


def _ort_dispatch(pnet: object, profiles: list[tuple[tuple[int, ...], ...]],
                  calls: list[tuple[int, tuple[int, ...]]]) -> ProfileDispatch:
    def execute(index: int, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = inputs["input"]
        lo, _opt, hi = profiles[index]
        assert all(a <= d <= b for a, d, b in zip(lo, x.shape, hi)), (x.shape, lo, hi)
        calls.append((index, x.shape))
        return pnet.run(inputs)  # type: ignore[attr-defined, no-any-return]

    return ProfileDispatch("pnet.engine", profiles, execute, PNET_TILING)


def test_tiled_pnet_equals_pnet_on_the_whole_canvas(models_dir: Path, examples: Path) -> None:
    """The tiles' output maps, put together, are P-Net's output on the whole canvas: every
    cell, the partial edge cells of its ceil-mode pooling included."""
    from facewatch.images import load_image

    store = ModelStore(models_dir)
    _, pnet = store.open("mtcnn-pnet", BackendOptions())
    image = load_image(examples / "obama.jpg")
    layout = pyramid_layout(*image.shape[:2], MtcnnSettings(min_face=20))
    rng = np.random.default_rng(1)
    for h, w in ((layout.canvas_height, layout.canvas_width), (301, 517)):  # odd sizes too
        x = rng.standard_normal((2, 3, h, w)).astype(np.float32)
        whole = pnet.run({"input": x})
        calls: list[tuple[int, tuple[int, ...]]] = []
        profiles = [((1, 3, 12, 12), (1, 3, 64, 64), (1, 3, 100, 130))]
        tiled = _ort_dispatch(pnet, profiles, calls).run({"input": x})
        assert len(calls) > 4  # cut into tiles, and batches of one
        for name in whole:
            assert tiled[name].shape == whole[name].shape
            np.testing.assert_allclose(tiled[name], whole[name], atol=2e-6, rtol=0)


def test_detections_through_profiles_and_tiles_equal_the_plain_detector(
        models_dir: Path, photos: Path, pipeline: FacePipeline) -> None:
    """A real group photo through P-Net on profiles that do not fit it (a small range: tiles)
    finds the same faces, to the pixel, as the detector on ONNX Runtime alone."""
    from facewatch.detection.detector import MtcnnDetector
    from facewatch.images import load_image

    image = load_image(photos / "facenet_pytorch" / "data" / "multiface.jpg")
    det = pipeline.detector
    calls: list[tuple[int, tuple[int, ...]]] = []
    profiles = [((1, 3, 242, 192), (1, 3, 242, 192), (8, 3, 242, 192)),
                ((1, 3, 12, 12), (1, 3, 200, 200), (8, 3, 320, 320))]
    tiled = MtcnnDetector(_ort_dispatch(det.pnet, profiles, calls), det.rnet, det.onet,  # type: ignore[arg-type]
                          settings=det.settings)
    want, got = det.detect(image), tiled.detect(image)
    assert len(want) >= 4 and len(got) == len(want)
    np.testing.assert_allclose(got.boxes, want.boxes, atol=1e-3)
    assert {i for i, _ in calls} == {1} and len(calls) > 1


def test_runner_prefers_exact_profiles_then_the_range_and_splits_batches() -> None:
    profiles = [((1, 3, 24, 24), (8, 3, 24, 24), (10, 3, 24, 24)),
                ((1, 3, 12, 12), (1, 3, 64, 64), (4, 3, 64, 64)),
                ((1, 3, 24, 24), (1, 3, 24, 24), (2, 3, 24, 24))]
    assert choose_profile(profiles, (5, 3, 24, 24)) == 0  # exact beats the range, first wins
    assert choose_profile(profiles, (5, 3, 30, 40)) == 1
    assert choose_profile(profiles, (1, 3, 65, 20)) is None
    calls: list[tuple[int, int]] = []

    def execute(profile: int, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        calls.append((profile, inputs["input"].shape[0]))
        return {"prob": inputs["input"][:, 0, 0, :2]}

    dispatch = ProfileDispatch("rnet.engine", profiles[:1], execute)
    x = np.random.default_rng(0).random((23, 3, 24, 24), np.float32)
    out = dispatch.run({"input": x})
    assert calls == [(0, 10), (0, 10), (0, 3)]
    np.testing.assert_array_equal(out["prob"], x[:, 0, 0, :2])
    with pytest.raises(BackendUnavailableError) as exc:
        dispatch.run({"input": np.zeros((1, 3, 48, 48), np.float32)})
    assert str(exc.value) == (
        "rnet.engine: no optimisation profile takes input 1x3x48x48 (the engine takes 3x24x24); "
        "the engine was built for another model or shape: rebuild with `facewatch tensorrt "
        "build`")


def test_two_threads_through_the_runner_run_one_at_a_time() -> None:
    """The gallery watcher and the inference loop share one runner: its contexts, stream and
    buffers.  `execute_async_v3` releases the GIL (here: a sleep does); the runner's dispatch
    lock lets one call in at a time, and each thread gets its own answers back."""
    active, peak = 0, 0
    count = threading.Lock()

    def execute(profile: int, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        nonlocal active, peak
        with count:
            active += 1
            peak = max(peak, active)
        time.sleep(0.002)
        with count:
            active -= 1
        return {"prob": inputs["input"][:, 0, 0, :2].copy()}

    dispatch = ProfileDispatch("rnet.engine", [((1, 3, 24, 24), (8, 3, 24, 24), (4, 3, 24, 24))],
                               execute)
    errors: list[str] = []

    def worker(seed: int) -> None:
        rng = np.random.default_rng(seed)
        for _ in range(25):
            x = rng.random((6, 3, 24, 24), np.float32)  # two chunks per call
            if not np.array_equal(dispatch.run({"input": x})["prob"], x[:, 0, 0, :2]):
                errors.append(f"thread {seed} got another call's output")

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and peak == 1


def test_engine_choice_takes_the_one_whose_profiles_fit_the_cameras(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path)
    base = replace(KEY, precision="fp32", recipe="onnx")

    def pnet_key(*canvases: tuple[int, int], ranged: bool = True) -> EngineKey:
        profiles = pnet_profiles("input", canvases, 8)
        return replace(base, profiles=profiles if ranged else profiles[:-1])

    old_exact = cache.store("mtcnn-pnet", pnet_key((242, 192), (718, 576)), b"a")
    os.utime(old_exact, (1, 1))
    newer_other = cache.store("mtcnn-pnet", pnet_key((384, 480)), b"b")
    os.utime(newer_other, (2, 2))
    newest_no_range = cache.store("mtcnn-pnet", pnet_key((100, 100), ranged=False), b"c")
    found = cache.find(replace(base, profiles=()))
    assert [p for _, p in found] == [newest_no_range, newer_other, old_exact]
    cameras = [(1, 3, 242, 192), (1, 3, 718, 576)]
    assert choose_engine(found, cameras)[1] == old_exact  # type: ignore[index]
    # A camera nobody built for: any engine with the range takes it; the newest such wins.
    assert choose_engine(found, [(1, 3, 300, 300)])[1] == newer_other  # type: ignore[index]
    assert choose_engine(found, [])[1] == newer_other  # type: ignore[index]
    assert choose_engine([], cameras) is None


def test_an_engine_without_its_sidecar_is_absent_and_rebuilt(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path)
    engine = cache.store("mtcnn-rnet.int8", KEY, b"engine")
    assert cache.lookup("mtcnn-rnet.int8", KEY) == engine
    engine.with_suffix(".json").unlink()  # a build killed between the two writes
    assert cache.lookup("mtcnn-rnet.int8", KEY) is None  # so build_engine builds it again
    assert cache.find(KEY) == [] and cache.orphans() == [engine]
    assert cache.store("mtcnn-rnet.int8", KEY, b"rebuilt") == engine
    assert cache.lookup("mtcnn-rnet.int8", KEY) == engine and engine.read_bytes() == b"rebuilt"
    # A sidecar for other profiles under this name (edited by hand) does not count either.
    other = replace(KEY, profiles=())
    engine.with_suffix(".json").write_text(json.dumps(other.as_dict()))
    assert cache.lookup("mtcnn-rnet.int8", KEY) is None


# TensorRT's failures by return value, with stand-ins for its objects (no GPU here) ----------

class _Refuses:
    """A TensorRT object whose every method answers `value` (False, None or -1)."""

    def __init__(self, value: object) -> None:
        self.value = value

    def __getattr__(self, name: str) -> object:
        return lambda *args, **kwargs: self.value


def test_refused_input_shape_names_the_tensor_and_shape() -> None:
    from facewatch.engines.backends.tensorrt.runner import set_input_shape, set_tensor_address

    with pytest.raises(BackendUnavailableError, match=r"^pnet.engine: TensorRT refused input "
                                                      r"input of shape 2x3x242x192 "):
        set_input_shape(_Refuses(False), "input", (2, 3, 242, 192), "pnet.engine")
    with pytest.raises(BackendUnavailableError, match="device address of tensor prob"):
        set_tensor_address(_Refuses(False), "prob", 1 << 20, "pnet.engine")


def test_no_context_is_out_of_memory_naming_the_profile() -> None:
    from facewatch.engines.backends.tensorrt.runner import new_context

    class Strategies:
        ON_PROFILE_CHANGE = "on-profile-change"

    class Trt:
        ExecutionContextAllocationStrategy = Strategies

    asked: list[object] = []

    class Engine:
        def __init__(self, ctx: object) -> None:
            self.ctx = ctx

        def create_execution_context(self, *strategy: object) -> object:
            asked.extend(strategy)
            return self.ctx

    shapes = ((1, 3, 12, 12), (1, 3, 576, 718), (8, 3, 1024, 1024))
    with pytest.raises(BackendUnavailableError) as exc:
        new_context(Trt, Engine(None), 3, 0, "pnet.engine", shapes)
    assert str(exc.value) == ("pnet.engine: TensorRT could not create an execution context for "
                              "profile 3 (1x3x12x12 to 8x3x1024x1024): out of GPU memory?")
    assert asked == ["on-profile-change"]  # each context sized for its own profile
    with pytest.raises(BackendUnavailableError, match="refused optimisation profile 3 "):
        new_context(Trt, Engine(_Refuses(False)), 3, 0, "pnet.engine", shapes)


def test_refused_build_settings_raise_naming_what() -> None:
    from facewatch.engines.backends.tensorrt.runner import add_profiles, use_timing_cache

    class Builder:
        def create_optimization_profile(self) -> object:
            return _Refuses(None)

    profile = Profile("input", (1, 3, 12, 12), (1, 3, 64, 64), (8, 3, 1024, 1024))
    with pytest.raises(BackendUnavailableError) as exc:
        add_profiles(Builder(), _Refuses(-1), [profile], "mtcnn-pnet")
    assert str(exc.value) == ("mtcnn-pnet: TensorRT refused the optimisation profile for input "
                              "input: min 1x3x12x12, opt 1x3x64x64, max 8x3x1024x1024")
    with pytest.raises(BackendUnavailableError, match="could not set up a timing cache"):
        use_timing_cache(_Refuses(False), Path("/nonexistent/timing.cache"))


def test_a_timing_cache_from_elsewhere_is_replaced(tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    from facewatch.engines.backends.tensorrt.runner import use_timing_cache

    class Config:
        def create_timing_cache(self, data: bytes) -> bytes:
            return data

        def set_timing_cache(self, cache: bytes, ignore_mismatch: bool) -> bool:
            return cache == b""  # only a new cache matches

    path = tmp_path / "timing.cache"
    path.write_bytes(b"from another GPU")
    use_timing_cache(Config(), path)
    assert "cannot use this timing cache" in caplog.text


def test_the_gallery_cache_key_names_backend_and_precision(pipeline: FacePipeline) -> None:
    """A cached CPU analysis must not stand in for one the GPU never made."""
    assert pipeline.signature.startswith("onnxruntime/fp32;")


def _no_gpu() -> str:
    problem = gpu.gpu_problem()
    if problem is None:
        pytest.skip("a GPU is present: the GPU-less errors cannot be observed")
    return problem


def test_backend_choice_without_gpu_is_one_line(models_dir: Path) -> None:
    problem = _no_gpu()
    assert problem.startswith(("no NVIDIA GPU: ", "cuda-python not installed"))
    with pytest.raises(BackendUnavailableError) as exc:
        open_runner(models_dir / "mtcnn-rnet.onnx", BackendOptions(backend="tensorrt"))
    assert str(exc.value) == f"inference.backend tensorrt: {problem}"


def test_no_driver_at_all_is_named_as_such() -> None:
    """Here (no NVIDIA driver) the real cuda-python answers cudaErrorInsufficientDriver, as it
    does for a driver too old for it; the driver version (0: none) tells the two apart."""
    if gpu.cudart() is None:
        pytest.skip("cuda-python is not installed (pip install -e '.[test]')")
    problem = _no_gpu()
    assert problem == ("no NVIDIA GPU: no NVIDIA driver is installed (cuda-python finds no "
                       "libcuda; cudaErrorInsufficientDriver)")


def test_a_driver_older_than_cuda_python_is_a_mismatch(monkeypatch: pytest.MonkeyPatch) -> None:
    """cuda-python 13 on a CUDA 12.2 driver (a CUDA 12 host, JetPack 6): not "no GPU"."""
    real = gpu.cudart()
    if real is None:
        pytest.skip("cuda-python is not installed (pip install -e '.[test]')")
    errors = real.cudaError_t

    class Cuda13OnA122Driver:
        cudaError_t = errors

        def cudaGetDeviceCount(self) -> tuple[object, None]:
            return errors.cudaErrorInsufficientDriver, None

        def cudaDriverGetVersion(self) -> tuple[object, int]:
            return errors.cudaSuccess, 12020

        def cudaRuntimeGetVersion(self) -> tuple[object, int]:
            return errors.cudaSuccess, 13000

    monkeypatch.setattr(gpu, "cudart", Cuda13OnA122Driver)
    monkeypatch.setattr(gpu, "TEGRA_RELEASE", Path("/nonexistent"))
    assert gpu.device_count()[0] == 0
    assert gpu.gpu_problem() == (
        "NVIDIA driver and cuda-python do not match: the driver runs CUDA up to 12.2, this "
        "cuda-python is built for CUDA 13.0 (cudaErrorInsufficientDriver); install the "
        "cuda-python of the driver's CUDA (pip install 'cuda-python>=12.0,<13': "
        "facewatch[tensorrt] pins CUDA 12, facewatch[tensorrt-cu13] CUDA 13) or a driver for "
        "CUDA 13")


def test_the_tensorrt_extra_pins_cuda_python_to_one_cuda_major() -> None:
    import tomllib

    extras = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())[
        "project"]["optional-dependencies"]
    assert extras["tensorrt"] == ["cuda-python>=12.6,<13"]
    assert extras["tensorrt-cu13"] == ["cuda-python>=13,<14"]


@pytest.mark.parametrize(("release", "problem"), [
    ("# R36 (release), REVISION: 4.7, GCID: 41523960, BOARD: generic, EABI: aarch64",
     ("Jetson with L4T R36.4.7 (JetPack 6) is not supported: its TensorRT Python bindings are "
      "built for the system Python (3.10), facewatch needs 3.11+; flash JetPack 7 (7.2 on "
      "Orin), or use inference.backend onnxruntime")),
    ("# R35 (release), REVISION: 6.0, GCID: 35762338, BOARD: t186ref, EABI: aarch64",
     ("Jetson with L4T R35.6.0 (JetPack 5) is not supported: its TensorRT Python bindings are "
      "built for the system Python (3.8), facewatch needs 3.11+; flash JetPack 7 (7.2 on "
      "Orin), or use inference.backend onnxruntime")),
    ("# R38 (release), REVISION: 2.0, GCID: 42014411, BOARD: generic, EABI: aarch64", None),
    ("# R39 (release), REVISION: 2.0, GCID: 43131337, BOARD: generic, EABI: aarch64", None),
])
def test_doctor_names_an_unsupported_jetpack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             release: str, problem: str | None) -> None:
    path = tmp_path / "nv_tegra_release"
    path.write_text(release + "\n")
    assert gpu.jetson_problem(path) == problem
    if problem is not None:
        monkeypatch.setattr(gpu, "TEGRA_RELEASE", path)
        from facewatch.cli.doctor import _tensorrt

        assert _tensorrt() == {"ok": False, "problem": problem}


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


def test_tensorrt_list_shows_engines_and_those_without_a_sidecar(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from facewatch.cli.main import main

    cache = EngineCache(tmp_path / "engines")
    kept = cache.store("mtcnn-rnet.int8", KEY, b"engine")
    orphan = cache.store("mtcnn-onet.int8", replace(KEY, precision="fp32"), b"engine")
    orphan.with_suffix(".json").unlink()
    assert main(["tensorrt", "list", "--models", str(tmp_path), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [e["engine"] for e in listed["engines"]] == [str(kept)]
    assert listed["without_sidecar"] == [str(orphan)]


def test_an_engine_that_cannot_take_the_cameras_fails_at_load_naming_the_fix(
        caplog: pytest.LogCaptureFixture) -> None:
    from facewatch.engines.backends.tensorrt.runner import check_expected

    exact_only = replace(KEY, profiles=pnet_profiles("input", [(242, 192)], 8)[:-1])
    with pytest.raises(BackendUnavailableError) as exc:
        check_expected(exact_only, "pnet.engine", [(1, 3, 718, 576)], can_tile=True)
    assert str(exc.value) == (
        "pnet.engine: no optimisation profile takes input 3x718x576 (the P-Net canvas of a "
        "configured camera at this min_face); build engines for the daemon's settings: "
        "`facewatch tensorrt build --config FILE`")
    ranged = replace(KEY, profiles=pnet_profiles("input", [(242, 192)], 8))
    check_expected(ranged, "pnet.engine", [(1, 3, 242, 192)], can_tile=True)
    assert caplog.text == ""
    check_expected(ranged, "pnet.engine", [(1, 3, 718, 576), (1, 3, 2000, 3000)], can_tile=True)
    assert "no exact optimisation profile for input 3x718x576, 3x2000x3000" in caplog.text
