"""Is there a usable NVIDIA GPU?  Asked through cuda-python, never through TensorRT.

cuda-python imports and answers on machines without a GPU or driver, so this is safe to call
anywhere (`facewatch doctor` does).  TensorRT objects must not be created before it says yes: a
TensorRT Runtime made without a GPU crashes the process when it deserialises an engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    compute_capability: tuple[int, int]
    memory_mb: int


def cudart() -> ModuleType | None:
    """cuda-python's runtime module (`cuda.bindings.runtime`, or `cuda.cudart` before 12.6),
    or None when cuda-python is not installed."""
    try:
        from cuda.bindings import runtime

        return runtime  # type: ignore[no-any-return,unused-ignore]
    except ImportError:
        pass
    try:
        from cuda import cudart as legacy  # type: ignore[attr-defined,unused-ignore]

        return legacy  # type: ignore[no-any-return,unused-ignore]
    except ImportError:
        return None


def check(result: Any, what: str) -> Any:
    """cuda-python returns (error, value...); raise on an error, return the value(s)."""
    from facewatch.errors import BackendUnavailableError

    err, *values = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise BackendUnavailableError(f"CUDA {what} failed: {_error_name(err)}")
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


def _error_name(err: Any) -> str:
    return getattr(err, "name", None) or f"error {int(err)}"


def device_count() -> tuple[int, str | None]:
    """(devices, why none) from cudaGetDeviceCount."""
    rt = cudart()
    if rt is None:
        return 0, "cuda-python not installed (pip install 'facewatch[tensorrt]')"
    try:
        err, count = rt.cudaGetDeviceCount()
    except Exception as exc:  # noqa: BLE001 - a broken CUDA install raises anything
        return 0, f"cuda-python cannot query devices ({type(exc).__name__}: {exc})"
    if int(err) != 0:
        return 0, f"no NVIDIA GPU: cuda-python reports 0 devices ({_error_name(err)})"
    if not count:
        return 0, "no NVIDIA GPU: cuda-python reports 0 devices"
    return int(count), None


def gpu_problem() -> str | None:
    """Why TensorRT cannot run here, or None when a GPU is usable (TensorRT itself may still be
    missing: that is reported when the backend is chosen)."""
    _, problem = device_count()
    return problem


def gpu_info(index: int = 0) -> GpuInfo:
    """Name and compute capability of a device (part of every engine cache key)."""
    from facewatch.errors import BackendUnavailableError

    count, problem = device_count()
    if problem is not None:
        raise BackendUnavailableError(problem)
    if index >= count:
        raise BackendUnavailableError(f"GPU {index}: only {count} device(s) present")
    rt = cudart()
    assert rt is not None
    props = check(rt.cudaGetDeviceProperties(index), "cudaGetDeviceProperties")
    name = props.name.decode(errors="replace") if isinstance(props.name, bytes) else str(props.name)
    return GpuInfo(index, name.rstrip("\x00").strip(), (int(props.major), int(props.minor)),
                   int(props.totalGlobalMem) >> 20)
