"""TensorRT backend (NVIDIA GPUs): engine building and a Runner over serialized engines.

Written against TensorRT >= 10's Python API (named I/O tensors, `execute_async_v3`,
`build_serialized_network`), checked name by name against TensorRT 11's bindings
(tests/engines/test_tensorrt_api.py), with the few branches TensorRT 8.6 needs.  CUDA memory
and streams come from cuda-python; host buffers are pinned and copies are asynchronous.

Importing this module imports neither TensorRT nor CUDA: both are loaded, after
`gpu_problem()` has confirmed a GPU, when a runner or a build is created.

Precision (`engine_recipe`, recorded in every engine's cache key):
- fp32: the FP32 ONNX.
- fp16, TensorRT < 11: the FP32 ONNX with BuilderFlag.FP16 (TensorRT picks FP16 per layer).
- fp16, TensorRT >= 11 (no FP16 flag: strongly typed networks only): the `<name>.fp16.onnx`
  model (`facewatch.engines.backends.tensorrt.fp16`, FP32 inputs, outputs and Softmax), in a
  strongly typed network.
- int8, TensorRT >= 10: explicit quantisation, from the `<name>.int8.onnx` QDQ model that
  `facewatch calibrate` made for ONNX Runtime, rewritten to symmetric int8 with 8-bit-only
  dequantisation (`facewatch.calibration.symmetric`), in a strongly typed network.
- int8, TensorRT 8.x: implicit quantisation of the FP32 ONNX with an IInt8EntropyCalibrator2
  that streams the same calibration set, and TensorRT's calibration cache file beside the engines.

Every TensorRT call that reports failure by its return value (False, None, -1) is checked and
raises naming the tensor, shape or profile.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from facewatch.engines.backends.base import BackendOptions
from facewatch.engines.backends.tensorrt.cuda import check, cudart, gpu_info, gpu_problem
from facewatch.engines.backends.tensorrt.dispatch import ProfileDispatch, ProfileShapes
from facewatch.engines.backends.tensorrt.plans import (
    EngineCache,
    EngineKey,
    Profile,
    choose_engine,
)
from facewatch.engines.files import sha256_file
from facewatch.errors import BackendUnavailableError, ModelError

log = logging.getLogger(__name__)

BUILD_COMMAND = "facewatch tensorrt build"


def _runtime() -> Any:
    """cuda-python's runtime; callers run only after `gpu_problem()` found a usable GPU."""
    rt = cudart()
    if rt is None:
        raise BackendUnavailableError("inference.backend tensorrt: cuda-python is not installed "
                                      "(pip install 'facewatch[tensorrt]')")
    return rt


def require_gpu(what: str = "inference.backend tensorrt") -> None:
    """Raise the one-line reason when TensorRT cannot run here; call before any TensorRT object."""
    problem = gpu_problem()
    if problem is not None:
        raise BackendUnavailableError(f"{what}: {problem}")


def import_tensorrt(what: str = "inference.backend tensorrt") -> Any:
    require_gpu(what)
    try:
        import tensorrt as trt  # type: ignore[import-not-found,unused-ignore]
    except ImportError as exc:
        raise BackendUnavailableError(
            f"{what}: TensorRT's Python package is not importable ({exc}); "
            "install it from NVIDIA's index or JetPack") from None
    return trt


def trt_major(trt: Any) -> int:
    return int(str(trt.__version__).split(".")[0])


def _shape(shape: Sequence[int]) -> str:
    return "x".join(str(int(d)) for d in shape)


def target_key(model_path: Path, precision: str, trt: Any, profiles: tuple[Profile, ...] = (),
               recipe: str | None = None) -> EngineKey:
    """The cache key of an engine for `model_path` on this GPU and TensorRT."""
    info = gpu_info(0)
    if recipe is None:
        recipe = engine_recipe(precision, trt)
    return EngineKey(onnx_sha256=sha256_file(model_path), tensorrt_version=str(trt.__version__),
                     gpu_name=info.name, compute_capability=info.compute_capability,
                     precision=precision, profiles=profiles, recipe=recipe)


def engine_recipe(precision: str, trt: Any) -> str:
    if precision == "fp16":
        if hasattr(trt.BuilderFlag, "FP16"):
            return "fp32-onnx+fp16-flag"
        from facewatch.engines.backends.tensorrt.fp16 import FP16_VERSION

        return f"fp16-onnx:{FP16_VERSION}"
    if precision != "int8":
        return "onnx"
    if hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
        from facewatch.calibration.symmetric import REWRITE_VERSION

        return f"qdq:{REWRITE_VERSION}"
    return "calibrator:IInt8EntropyCalibrator2"


def strongly_typed(recipe: str) -> bool:
    """Recipes whose ONNX fixes every tensor's type (QDQ int8, the FP16 ONNX)."""
    return recipe.startswith(("qdq:", "fp16-onnx:"))


# Building ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class BuildRequest:
    model_path: Path  # the ONNX the store resolves for this precision
    model_stem: str  # manifest name, names the engine file
    precision: str
    profiles: tuple[Profile, ...]
    workspace_mb: int = 1024
    # The FP32 ONNX: what fp16 with the builder flag and TensorRT 8.x INT8 build from.
    fp32_path: Path | None = None
    # TensorRT 8.x INT8 only: batches of the model's input to calibrate on.
    calibration_batches: Callable[[], Sequence[np.ndarray]] | None = None


def build_engine(request: BuildRequest, cache: EngineCache) -> tuple[Path, bool]:
    """Build (or find) the engine for `request`; returns (path, built now)."""
    trt = import_tensorrt("tensorrt build")
    key = target_key(request.model_path, request.precision, trt, request.profiles)
    existing = cache.lookup(request.model_stem, key)
    if existing is not None:
        return existing, False
    logger = trt.Logger(trt.Logger.WARNING)
    builder = _made(trt.Builder(logger), "TensorRT could not create a builder")
    recipe = key.recipe
    flags = 0
    if trt_major(trt) < 10:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    if strongly_typed(recipe):
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = _made(builder.create_network(flags), "TensorRT could not create a network")
    parser = trt.OnnxParser(network, logger)
    onnx_bytes = _network_source(request, recipe)
    if not parser.parse(onnx_bytes):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ModelError(f"{request.model_path}: TensorRT cannot parse it ({errors})")
    config = _made(builder.create_builder_config(), "TensorRT could not create a builder config")
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, request.workspace_mb << 20)
    if recipe == "fp32-onnx+fp16-flag":
        config.set_flag(trt.BuilderFlag.FP16)
    add_profiles(builder, config, request.profiles, request.model_stem)
    calibrator = None
    if recipe.startswith("calibrator:"):
        calibrator, shape = _calibrator(trt, request, key, cache)
        config.set_flag(trt.BuilderFlag.INT8)
        config.int8_calibrator = calibrator
        calib_profile = builder.create_optimization_profile()
        calib_profile.set_shape(request.profiles[0].input, shape, shape, shape)
        if not config.set_calibration_profile(calib_profile):
            raise BackendUnavailableError(
                f"{request.model_stem}: TensorRT refused the calibration profile "
                f"{request.profiles[0].input} {_shape(shape)}")
    timing_path = cache.timing_cache_path(key.tensorrt_version, key.gpu_name,
                                          key.compute_capability)
    use_timing_cache(config, timing_path)
    log.info("building %s (%s, %d profile(s)); this can take minutes",
             cache.engine_path(request.model_stem, key).name, request.precision,
             len(request.profiles))
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ModelError(f"{request.model_path}: TensorRT could not build an engine "
                         f"({request.precision}); see the TensorRT log above")
    from facewatch.engines.files import atomic_write_bytes

    atomic_write_bytes(timing_path, bytes(config.get_timing_cache().serialize()))
    return cache.store(request.model_stem, key, bytes(serialized)), True


def _made(obj: Any, what: str) -> Any:
    if obj is None:
        raise BackendUnavailableError(f"{what} (out of GPU memory?)")
    return obj


def add_profiles(builder: Any, config: Any, profiles: Sequence[Profile], model: str) -> None:
    """One optimisation profile per entry; TensorRT says -1 for one it cannot use."""
    for p in profiles:
        profile = _made(builder.create_optimization_profile(),
                        f"{model}: TensorRT could not create an optimisation profile")
        profile.set_shape(p.input, p.min, p.opt, p.max)
        if config.add_optimization_profile(profile) < 0:
            raise BackendUnavailableError(
                f"{model}: TensorRT refused the optimisation profile for input {p.input}: "
                f"min {_shape(p.min)}, opt {_shape(p.opt)}, max {_shape(p.max)}")


def use_timing_cache(config: Any, path: Path) -> None:
    """Give the build the timing cache of this TensorRT and GPU; one that does not load or
    does not match (a file from elsewhere) is replaced by a new, empty one."""
    data = path.read_bytes() if path.is_file() else b""
    timing = config.create_timing_cache(data)
    if timing is not None and config.set_timing_cache(timing, False):
        return
    if data:
        log.warning("%s: TensorRT cannot use this timing cache; starting a new one", path)
        timing = config.create_timing_cache(b"")
        if timing is not None and config.set_timing_cache(timing, False):
            return
    raise BackendUnavailableError(f"{path}: TensorRT could not set up a timing cache")


def _network_source(request: BuildRequest, recipe: str) -> bytes:
    if recipe.startswith("qdq:"):
        import onnx

        from facewatch.calibration.symmetric import is_symmetric_int8, to_symmetric_int8

        model = onnx.load(str(request.model_path))
        if not is_symmetric_int8(model):
            model = to_symmetric_int8(model)
        return bytes(model.SerializeToString())
    if recipe.startswith("calibrator:") or recipe == "fp32-onnx+fp16-flag":
        if request.fp32_path is None:
            raise ModelError(f"{request.model_path}: this TensorRT builds {request.precision} "
                             f"from the FP32 model; it was not given")
        return request.fp32_path.read_bytes()
    return request.model_path.read_bytes()


def _calibrator(trt: Any, request: BuildRequest, key: EngineKey, cache: EngineCache
                ) -> tuple[Any, tuple[int, ...]]:
    """TensorRT 8.x's entropy calibrator streaming the calibration set, with TensorRT's cache
    file (once written, later builds need no data); and the one input shape it calibrates at."""
    assert request.fp32_path is not None
    table = cache.calibration_cache_path(sha256_file(request.fp32_path), key.tensorrt_version)
    batches: list[np.ndarray] = []
    if not table.is_file():
        if request.calibration_batches is None:
            raise BackendUnavailableError(
                f"{request.model_stem}: TensorRT {key.tensorrt_version} calibrates INT8 itself; "
                f"give the calibration set (--video, --images or --gallery) to `facewatch "
                f"tensorrt build`")
        batches = [np.ascontiguousarray(b, np.float32) for b in request.calibration_batches()]
    # One shape: the calibration profile is fixed (P-Net canvases of one frame size).
    shape = tuple(batches[0].shape) if batches else request.profiles[0].opt
    if not any(p.covers(shape) for p in request.profiles):
        raise BackendUnavailableError(
            f"{request.model_stem}: calibration input {shape} is outside the engine's profiles "
            f"(calibrate on frames of a configured size)")
    batches = [b for b in batches if b.shape == shape]

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):  # type: ignore[misc]
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self._next = 0
            self._device = DeviceBuffer(max((b.nbytes for b in batches), default=1))

        def get_batch_size(self) -> int:
            return int(shape[0])

        def get_batch(self, names: list[str]) -> list[int] | None:
            if self._next >= len(batches):
                return None
            self._device.upload(batches[self._next])
            self._next += 1
            return [self._device.ptr]

        def read_calibration_cache(self) -> bytes | None:
            return table.read_bytes() if table.is_file() else None

        def write_calibration_cache(self, data: Any) -> None:
            from facewatch.engines.files import atomic_write_bytes

            atomic_write_bytes(table, bytes(data))

    return EntropyCalibrator(), shape


# CUDA memory -----------------------------------------------------------------------------

class DeviceBuffer:
    """A device allocation that grows on demand."""

    def __init__(self, nbytes: int) -> None:
        self._rt: Any = _runtime()
        self.nbytes = 0
        self.ptr = 0
        self.reserve(nbytes)

    def reserve(self, nbytes: int) -> None:
        if nbytes <= self.nbytes:
            return
        self.free()
        self.ptr = int(check(self._rt.cudaMalloc(nbytes), "cudaMalloc"))
        self.nbytes = nbytes

    def upload(self, array: np.ndarray) -> None:
        self.reserve(array.nbytes)
        check(self._rt.cudaMemcpy(self.ptr, array.ctypes.data, array.nbytes,
                                  self._rt.cudaMemcpyKind.cudaMemcpyHostToDevice), "cudaMemcpy")

    def free(self) -> None:
        if self.ptr:
            self._rt.cudaFree(self.ptr)
            self.ptr, self.nbytes = 0, 0


class PinnedBuffer:
    """Page-locked host memory (cudaMallocHost), viewed as numpy arrays; grows on demand."""

    def __init__(self) -> None:
        self._rt: Any = _runtime()
        self.nbytes = 0
        self.ptr = 0

    def view(self, shape: tuple[int, ...], dtype: np.dtype[Any]) -> np.ndarray:
        nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        if nbytes > self.nbytes:
            self.free()
            self.ptr = int(check(self._rt.cudaMallocHost(max(nbytes, 1)), "cudaMallocHost"))
            self.nbytes = nbytes
        raw = memoryview((ctypes.c_byte * max(nbytes, 1)).from_address(self.ptr)).cast("B")
        view: np.ndarray = np.frombuffer(raw, dtype=dtype, count=int(np.prod(shape)))
        return view.reshape(shape)

    def free(self) -> None:
        if self.ptr:
            self._rt.cudaFreeHost(self.ptr)
            self.ptr, self.nbytes = 0, 0


# Running ---------------------------------------------------------------------------------

@dataclass
class _Tensor:
    name: str
    dtype: np.dtype[Any]
    device: DeviceBuffer
    host: PinnedBuffer


class TensorRTRunner:
    """A serialized engine behind the Runner interface: run(dict) -> dict.

    `role` is the manifest's (P-Net inputs larger than every profile are tiled); `expected`
    are the input shapes the caller will send (P-Net: the canvases of its cameras' frames), by
    which the engine is chosen among those built for this model, TensorRT and GPU."""

    def __init__(self, model_path: Path, options: BackendOptions, role: str | None = None,
                 expected: Sequence[tuple[int, ...]] = ()) -> None:
        trt = import_tensorrt()  # checks the GPU first: no TensorRT object before that
        self.model_path = model_path
        self._rt: Any = _runtime()
        self._trt = trt
        want = target_key(model_path, options.precision, trt)
        cache = EngineCache.beside(model_path)
        chosen = choose_engine(cache.find(want), list(expected))
        if chosen is None:
            raise BackendUnavailableError(
                f"{model_path.name}: no TensorRT engine for {options.precision} on "
                f"{want.gpu_name} (sm_{want.compute_capability[0]}{want.compute_capability[1]}, "
                f"TensorRT {want.tensorrt_version}) in {cache.root}; run `{BUILD_COMMAND} "
                f"--precision {options.precision}`")
        self.key, self.engine_path = chosen
        tiling = None
        if role == "mtcnn.pnet":
            from facewatch.engines.backends.tensorrt.profiles import PNET_TILING

            tiling = PNET_TILING
        check_expected(self.key, self.engine_path.name, expected, tiling is not None)
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self._engine = self._runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
        if self._engine is None:
            raise ModelError(f"{self.engine_path}: TensorRT cannot deserialise it (rebuild with "
                             f"`{BUILD_COMMAND}`)")
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        is_input = {n: self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
        self.input_names = [n for n in names if is_input[n]]
        self.output_names = [n for n in names if not is_input[n]]
        self._tensors = {n: _Tensor(n, np.dtype(trt.nptype(self._engine.get_tensor_dtype(n))),
                                    DeviceBuffer(1), PinnedBuffer()) for n in names}
        profiles: list[ProfileShapes] = []
        for i in range(self._engine.num_optimization_profiles):
            lo, opt, hi = (tuple(int(d) for d in s) for s in
                           self._engine.get_tensor_profile_shape(self.input_names[0], i))
            profiles.append((lo, opt, hi))
        self._contexts: dict[int, Any] = {}
        self._stream = check(self._rt.cudaStreamCreate(), "cudaStreamCreate")
        # One call at a time through the shared contexts, stream and buffers (see dispatch).
        self._dispatch = ProfileDispatch(self.engine_path.name, profiles, self._run_once, tiling)
        self._warm_up()

    def input_shape(self, name: str) -> list[int | str] | None:
        shape = self._engine.get_tensor_shape(name)
        return [int(d) if int(d) >= 0 else "dynamic" for d in shape]

    def _warm_up(self) -> None:
        name = self.input_names[0]
        lo = self._dispatch.profiles[0][0]
        self.run({name: np.zeros(lo, self._tensors[name].dtype)})

    def _context(self, profile: int) -> Any:
        ctx = self._contexts.get(profile)
        if ctx is None:
            ctx = new_context(self._trt, self._engine, profile, int(self._stream),
                              self.engine_path.name, self._dispatch.profiles[profile])
            self._contexts[profile] = ctx
        return ctx

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self._dispatch.run(inputs)

    def _run_once(self, profile: int, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rt, stream = self._rt, self._stream
        h2d = rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        d2h = rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        ctx = self._context(profile)
        where = self.engine_path.name
        for name in self.input_names:
            t = self._tensors[name]
            x = inputs[name]
            host = t.host.view(x.shape, t.dtype)
            np.copyto(host, x, casting="same_kind")
            t.device.reserve(host.nbytes)
            set_input_shape(ctx, name, tuple(x.shape), where)
            check(rt.cudaMemcpyAsync(t.device.ptr, t.host.ptr, host.nbytes, h2d, stream),
                  "cudaMemcpyAsync")
            set_tensor_address(ctx, name, t.device.ptr, where)
        views = {}
        for name in self.output_names:
            t = self._tensors[name]
            shape = output_shape(ctx, name, where)
            views[name] = t.host.view(shape, t.dtype)
            t.device.reserve(max(views[name].nbytes, 1))
            set_tensor_address(ctx, name, t.device.ptr, where)
        if not ctx.execute_async_v3(int(stream)):
            shapes = ", ".join(f"{n} {_shape(inputs[n].shape)}" for n in self.input_names)
            raise BackendUnavailableError(f"{where}: TensorRT execution failed ({shapes})")
        for name, view in views.items():
            check(rt.cudaMemcpyAsync(view.ctypes.data, self._tensors[name].device.ptr,
                                     view.nbytes, d2h, stream), "cudaMemcpyAsync")
        check(rt.cudaStreamSynchronize(stream), "cudaStreamSynchronize")
        # The pinned buffers are reused by the next call: hand out copies.
        return {name: view.copy() for name, view in views.items()}

    def close(self) -> None:
        self._contexts.clear()
        for t in getattr(self, "_tensors", {}).values():
            t.device.free()
            t.host.free()
        if getattr(self, "_stream", None) is not None:
            self._rt.cudaStreamDestroy(self._stream)
            self._stream = None

    def __del__(self) -> None:  # pragma: no cover - GPU only
        try:
            self.close()
        except Exception:  # noqa: BLE001, S110 - interpreter shutdown: CUDA may be gone
            pass


def check_expected(key: EngineKey, engine_name: str, expected: Sequence[tuple[int, ...]],
                   can_tile: bool) -> None:
    """Fail at load, not at the first frame, when the chosen engine cannot take an input the
    caller said it will send; say so when one runs on the range instead of an exact profile."""
    profiles = key.profiles
    missing = [s for s in expected if not any(p.covers_but_batch(s) for p in profiles)]
    inexact = [s for s in expected if not any(p.exact and p.covers_but_batch(s) for p in profiles)]
    if missing and not (can_tile and any(not p.exact for p in profiles)):
        sizes = ", ".join(_shape(s[1:]) for s in missing)
        raise BackendUnavailableError(
            f"{engine_name}: no optimisation profile takes input {sizes} (the P-Net canvas of "
            f"a configured camera at this min_face); build engines for the daemon's settings: "
            f"`{BUILD_COMMAND} --config FILE`")
    if inexact:
        log.warning("%s: no exact optimisation profile for input %s: it runs on the ranged "
                    "profile, tuned for other sizes; `%s --config FILE` builds exact ones",
                    engine_name, ", ".join(_shape(s[1:]) for s in inexact), BUILD_COMMAND)


# Checked TensorRT calls --------------------------------------------------------------------
# TensorRT's Python API reports these failures by return value, not by raising.

def new_context(trt: Any, engine: Any, profile: int, stream: int, where: str,
                shapes: ProfileShapes) -> Any:
    """An execution context owning one optimisation profile (TensorRT forbids two contexts on
    one profile).  On TensorRT >= 10 its memory is sized for its own profile
    (ON_PROFILE_CHANGE), not for the largest of the engine's: P-Net has one context per canvas
    size, which on a Jetson's shared memory would otherwise each hold the largest's."""
    strategies = getattr(trt, "ExecutionContextAllocationStrategy", None)
    if strategies is not None and hasattr(strategies, "ON_PROFILE_CHANGE"):
        ctx = engine.create_execution_context(strategies.ON_PROFILE_CHANGE)
    else:
        ctx = engine.create_execution_context()
    lo, _opt, hi = shapes
    if ctx is None:
        raise BackendUnavailableError(
            f"{where}: TensorRT could not create an execution context for profile {profile} "
            f"({_shape(lo)} to {_shape(hi)}): out of GPU memory?")
    if not ctx.set_optimization_profile_async(profile, stream):
        raise BackendUnavailableError(
            f"{where}: TensorRT refused optimisation profile {profile} ({_shape(lo)} to "
            f"{_shape(hi)})")
    return ctx


def set_input_shape(ctx: Any, name: str, shape: tuple[int, ...], where: str) -> None:
    if not ctx.set_input_shape(name, shape):
        raise BackendUnavailableError(
            f"{where}: TensorRT refused input {name} of shape {_shape(shape)} for its "
            f"optimisation profile")


def set_tensor_address(ctx: Any, name: str, address: int, where: str) -> None:
    if not ctx.set_tensor_address(name, address):
        raise BackendUnavailableError(f"{where}: TensorRT refused the device address of "
                                      f"tensor {name}")


def output_shape(ctx: Any, name: str, where: str) -> tuple[int, ...]:
    shape = tuple(int(d) for d in ctx.get_tensor_shape(name))
    if any(d < 0 for d in shape):
        raise BackendUnavailableError(f"{where}: output {name} has no shape yet "
                                      f"({_shape(shape)}): an input shape was not accepted")
    return shape
