"""Is there a usable NVIDIA GPU?  Asked through cuda-python, never through TensorRT.

cuda-python imports and answers on machines without a GPU or driver, so this is safe to call
anywhere (`facewatch doctor` does).  TensorRT objects must not be created before it says yes: a
TensorRT Runtime made without a GPU crashes the process when it deserialises an engine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

# Jetson's L4T release file; its major release names the JetPack (R36: 6, R38/R39: 7).
TEGRA_RELEASE = Path("/etc/nv_tegra_release")
# JetPack 7 (L4T R38 on Thor, R39 with 7.2 for Orin): Ubuntu 24.04's Python 3.12, CUDA 13,
# TensorRT 10.13+.  Earlier JetPacks ship TensorRT bindings for Python 3.8 (5) or 3.10 (6)
# only, and facewatch needs Python >= 3.11.
MIN_L4T = 38
_JETPACK = {32: "4", 35: "5", 36: "6", 38: "7", 39: "7.2"}


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


def _cuda_version(result: Any) -> int:
    """A CUDA version query's value (12090 for 12.9), 0 when it failed."""
    try:
        err, version = result
        return int(version) if int(err) == 0 and version else 0
    except (TypeError, ValueError):
        return 0


def _dotted(version: int) -> str:
    return f"{version // 1000}.{version % 1000 // 10}"


def _insufficient_driver(rt: Any) -> str:
    """cudaErrorInsufficientDriver means no driver at all, or one older than the CUDA that
    cuda-python was built for (cuda-python 13 on a CUDA 12 host or JetPack 6)."""
    driver = _cuda_version(rt.cudaDriverGetVersion())
    runtime = _cuda_version(rt.cudaRuntimeGetVersion())
    if not driver:
        return ("no NVIDIA GPU: no NVIDIA driver is installed (cuda-python finds no libcuda; "
                "cudaErrorInsufficientDriver)")
    major = runtime // 1000
    return (f"NVIDIA driver and cuda-python do not match: the driver runs CUDA up to "
            f"{_dotted(driver)}, this cuda-python is built for CUDA {_dotted(runtime)} "
            f"(cudaErrorInsufficientDriver); install the cuda-python of the driver's CUDA "
            f"(pip install 'cuda-python>={driver // 1000}.0,<{driver // 1000 + 1}': "
            f"facewatch[tensorrt] pins CUDA 12, facewatch[tensorrt-cu13] CUDA 13) or a driver "
            f"for CUDA {major}")


def jetson_problem(release: Path | None = None) -> str | None:
    """Why this Jetson's JetPack cannot run facewatch's TensorRT backend, or None (not a
    Jetson, or JetPack 7)."""
    try:
        text = (release or TEGRA_RELEASE).read_text(errors="replace")
    except OSError:
        return None
    found = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", text)
    if found is None:
        return None
    major = int(found.group(1))
    if major >= MIN_L4T:
        return None
    jetpack = _JETPACK.get(major, f"for L4T R{major}")
    return (f"Jetson with L4T R{major}.{found.group(2)} (JetPack {jetpack}) is not supported: "
            f"its TensorRT Python bindings are built for the system Python "
            f"({'3.10' if major == 36 else '3.8' if major == 35 else 'older'}), facewatch needs "
            f"3.11+; flash JetPack 7 (7.2 on Orin), or use inference.backend onnxruntime")


def device_count() -> tuple[int, str | None]:
    """(devices, why none) from cudaGetDeviceCount."""
    rt = cudart()
    if rt is None:
        return 0, "cuda-python not installed (pip install 'facewatch[tensorrt]')"
    try:
        err, count = rt.cudaGetDeviceCount()
    except Exception as exc:  # noqa: BLE001 - a broken CUDA install raises anything
        return 0, f"cuda-python cannot query devices ({type(exc).__name__}: {exc})"
    if _error_name(err) == "cudaErrorInsufficientDriver":
        return 0, _insufficient_driver(rt)
    if int(err) != 0:
        return 0, f"no NVIDIA GPU: cuda-python reports 0 devices ({_error_name(err)})"
    if not count:
        return 0, "no NVIDIA GPU: cuda-python reports 0 devices"
    return int(count), None


def gpu_problem() -> str | None:
    """Why TensorRT cannot run here, or None when a GPU is usable (TensorRT itself may still be
    missing: that is reported when the backend is chosen)."""
    jetson = jetson_problem()
    if jetson is not None:
        return jetson
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
