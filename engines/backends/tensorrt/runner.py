"""TensorRT backend (NVIDIA GPUs): engine building and a Runner over serialized engines.

Written against TensorRT >= 10's Python API (named I/O tensors, `execute_async_v3`,
`build_serialized_network`), with the few branches TensorRT 8.x (JetPack 5) needs.  CUDA memory
and streams come from cuda-python; host buffers are pinned and copies are asynchronous.

Importing this module imports neither TensorRT nor CUDA: both are loaded, after
`gpu_problem()` has confirmed a GPU, when a runner or a build is created.

Precision:
- fp32 / fp16: built from the FP32 ONNX (fp16 through BuilderFlag.FP16, where it exists).
- int8, TensorRT >= 10: explicit quantisation, from the `<name>.int8.onnx` QDQ model that
  `facewatch calibrate` made for ONNX Runtime, rewritten to symmetric int8
  (`facewatch.calibration.symmetric`), in a strongly typed network.
- int8, TensorRT 8.x: implicit quantisation of the FP32 ONNX with an IInt8EntropyCalibrator2
  that streams the same calibration set, and TensorRT's calibration cache file beside the engines.
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
from facewatch.engines.backends.tensorrt.plans import EngineCache, EngineKey, Profile
from facewatch.engines.files import sha256_file
from facewatch.errors import BackendUnavailableError, ModelError


def _runtime() -> Any:
    """cuda-python's runtime; callers run only after `gpu_problem()` found a usable GPU."""
    rt = cudart()
    if rt is None:
        raise BackendUnavailableError("inference.backend tensorrt: cuda-python is not installed "
                                      "(pip install 'facewatch[tensorrt]')")
    return rt

log = logging.getLogger(__name__)


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
    if precision != "int8":
        return "onnx"
    if hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
        from facewatch.calibration.symmetric import REWRITE_VERSION

        return f"qdq:{REWRITE_VERSION}"
    return "calibrator:IInt8EntropyCalibrator2"


# Building ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class BuildRequest:
    model_path: Path  # the ONNX the store resolves for this precision
    model_stem: str  # manifest name, names the engine file
    precision: str
    profiles: tuple[Profile, ...]
    workspace_mb: int = 1024
    # TensorRT 8.x INT8 only: the FP32 ONNX and batches of its input to calibrate on.
    fp32_path: Path | None = None
    calibration_batches: Callable[[], Sequence[np.ndarray]] | None = None


def build_engine(request: BuildRequest, cache: EngineCache) -> tuple[Path, bool]:
    """Build (or find) the engine for `request`; returns (path, built now)."""
    trt = import_tensorrt("tensorrt build")
    key = target_key(request.model_path, request.precision, trt, request.profiles)
    path = cache.engine_path(request.model_stem, key)
    if path.is_file():
        return path, False
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    recipe = key.recipe
    flags = 0
    if trt_major(trt) < 10:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    if recipe.startswith("qdq:"):
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    onnx_bytes = _network_source(request, recipe)
    if not parser.parse(onnx_bytes):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ModelError(f"{request.model_path}: TensorRT cannot parse it ({errors})")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, request.workspace_mb << 20)
    if request.precision == "fp16":
        if not hasattr(trt.BuilderFlag, "FP16"):
            raise BackendUnavailableError(
                f"TensorRT {trt.__version__} has no FP16 builder flag (strong typing only); "
                "use fp32 or int8")
        config.set_flag(trt.BuilderFlag.FP16)
    for p in request.profiles:
        profile = builder.create_optimization_profile()
        profile.set_shape(p.input, p.min, p.opt, p.max)
        config.add_optimization_profile(profile)
    calibrator = None
    if recipe.startswith("calibrator:"):
        calibrator, shape = _calibrator(trt, request, key, cache)
        config.set_flag(trt.BuilderFlag.INT8)
        config.int8_calibrator = calibrator
        calib_profile = builder.create_optimization_profile()
        calib_profile.set_shape(request.profiles[0].input, shape, shape, shape)
        config.set_calibration_profile(calib_profile)
    timing_path = cache.timing_cache_path(key.tensorrt_version, key.gpu_name,
                                          key.compute_capability)
    timing = config.create_timing_cache(timing_path.read_bytes() if timing_path.is_file() else b"")
    config.set_timing_cache(timing, False)
    log.info("building %s (%s, %d profile(s)); this can take minutes", path.name,
             request.precision, len(request.profiles))
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ModelError(f"{request.model_path}: TensorRT could not build an engine "
                         f"({request.precision}); see the TensorRT log above")
    from facewatch.engines.files import atomic_write_bytes

    atomic_write_bytes(timing_path, bytes(config.get_timing_cache().serialize()))
    return cache.store(request.model_stem, key, bytes(serialized)), True


def _network_source(request: BuildRequest, recipe: str) -> bytes:
    if recipe.startswith("qdq:"):
        import onnx

        from facewatch.calibration.symmetric import is_symmetric_int8, to_symmetric_int8

        model = onnx.load(str(request.model_path))
        if not is_symmetric_int8(model):
            model = to_symmetric_int8(model)
        return bytes(model.SerializeToString())
    if recipe.startswith("calibrator:"):
        if request.fp32_path is None:
            raise ModelError(f"{request.model_path}: TensorRT 8 INT8 needs the FP32 model")
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
    """A serialized engine behind the Runner interface: run(dict) -> dict."""

    def __init__(self, model_path: Path, options: BackendOptions) -> None:
        trt = import_tensorrt()  # checks the GPU first: no TensorRT object before that
        self.model_path = model_path
        self._rt: Any = _runtime()
        want = target_key(model_path, options.precision, trt)
        cache = EngineCache.beside(model_path)
        found = cache.find(want)
        if not found:
            raise BackendUnavailableError(
                f"{model_path.name}: no TensorRT engine for {options.precision} on "
                f"{want.gpu_name} (sm_{want.compute_capability[0]}{want.compute_capability[1]}, "
                f"TensorRT {want.tensorrt_version}) in {cache.root}; run `facewatch engines "
                f"build --precision {options.precision}`")
        self.key, self.engine_path = found[0]
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self._engine = self._runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
        if self._engine is None:
            raise ModelError(f"{self.engine_path}: TensorRT cannot deserialise it (rebuild with "
                             f"`facewatch tensorrt build`)")
        self._trt = trt
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        is_input = {n: self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
        self.input_names = [n for n in names if is_input[n]]
        self.output_names = [n for n in names if not is_input[n]]
        self._tensors = {n: _Tensor(n, np.dtype(trt.nptype(self._engine.get_tensor_dtype(n))),
                                    DeviceBuffer(1), PinnedBuffer()) for n in names}
        self._profiles = [tuple(tuple(int(d) for d in s) for s in
                                self._engine.get_tensor_profile_shape(self.input_names[0], i))
                          for i in range(self._engine.num_optimization_profiles)]
        self._contexts: dict[int, Any] = {}
        self._stream = check(self._rt.cudaStreamCreate(), "cudaStreamCreate")
        self._warm_up()

    def input_shape(self, name: str) -> list[int | str] | None:
        shape = self._engine.get_tensor_shape(name)
        return [int(d) if int(d) >= 0 else "dynamic" for d in shape]

    def _warm_up(self) -> None:
        name = self.input_names[0]
        lo = self._profiles[0][0]
        self.run({name: np.zeros(lo, self._tensors[name].dtype)})

    def _profile_for(self, shape: tuple[int, ...]) -> tuple[int, int]:
        """(profile index, largest batch it takes) for an input shape."""
        for i, (lo, _opt, hi) in enumerate(self._profiles):
            if len(shape) == len(lo) and all(a <= d <= b for a, d, b in
                                             zip(lo[1:], shape[1:], hi[1:])):
                return i, hi[0]
        sizes = ", ".join("x".join(str(d) for d in hi[1:]) for _lo, _o, hi in self._profiles)
        raise BackendUnavailableError(
            f"{self.engine_path.name}: no optimisation profile takes input "
            f"{'x'.join(map(str, shape))} (built for {sizes}); rebuild with `facewatch engines "
            f"build --frame-size WxH` for this camera size and min_face")

    def _context(self, profile: int) -> Any:
        ctx = self._contexts.get(profile)
        if ctx is None:
            ctx = self._engine.create_execution_context()
            # Each context owns one profile (TensorRT forbids two contexts on one profile).
            ctx.set_optimization_profile_async(profile, int(self._stream))
            self._contexts[profile] = ctx
        return ctx

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        name = self.input_names[0]
        x = inputs[name]
        profile, max_batch = self._profile_for(tuple(x.shape))
        if x.shape[0] <= max_batch:
            return self._run_once(profile, inputs)
        parts = [self._run_once(profile, {k: v[i:i + max_batch] for k, v in inputs.items()})
                 for i in range(0, x.shape[0], max_batch)]
        return {k: np.concatenate([p[k] for p in parts]) for k in self.output_names}

    def _run_once(self, profile: int, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rt, stream = self._rt, self._stream
        h2d = rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        d2h = rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        ctx = self._context(profile)
        for name in self.input_names:
            t = self._tensors[name]
            x = inputs[name]
            host = t.host.view(x.shape, t.dtype)
            np.copyto(host, x, casting="same_kind")
            t.device.reserve(host.nbytes)
            ctx.set_input_shape(name, tuple(x.shape))
            check(rt.cudaMemcpyAsync(t.device.ptr, t.host.ptr, host.nbytes, h2d, stream),
                  "cudaMemcpyAsync")
            ctx.set_tensor_address(name, t.device.ptr)
        views = {}
        for name in self.output_names:
            t = self._tensors[name]
            shape = tuple(int(d) for d in ctx.get_tensor_shape(name))
            views[name] = t.host.view(shape, t.dtype)
            t.device.reserve(max(views[name].nbytes, 1))
            ctx.set_tensor_address(name, t.device.ptr)
        if not ctx.execute_async_v3(int(stream)):
            raise BackendUnavailableError(f"{self.engine_path.name}: TensorRT execution failed")
        for name, view in views.items():
            check(rt.cudaMemcpyAsync(view.ctypes.data, self._tensors[name].device.ptr,
                                     view.nbytes, d2h, stream), "cudaMemcpyAsync")
        check(rt.cudaStreamSynchronize(stream), "cudaStreamSynchronize")
        # The pinned buffers are reused by the next call: hand out copies.
        return {name: view.copy() for name, view in views.items()}

    def close(self) -> None:
        self._contexts.clear()
        for t in self._tensors.values():
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
