"""Every TensorRT name the backend uses, found in the real bindings of the newest TensorRT.

The `tensorrt-cu12-bindings` wheel is a real wheel (its `tensorrt.so` cannot load without
TensorRT's libraries, which the package index only stubs), and a pybind11 module keeps every
class, method, property and enum value it registers as a NUL-terminated string.  The backend's
source is read with `ast`: every `trt.X.Y` chain, every name probed with hasattr/getattr on a
TensorRT object, and every method called on the TensorRT objects it holds.  Each must be in
the wheel, or be listed in `OLDER_TENSORRT_ONLY` with the versions that need it; those the
newest TensorRT removed are checked to be absent, so the version guards around them are needed.

The wheel is fetched by tests/run.sh into ~/.cache/facewatch/tensorrt-wheel (with pip, outside
the repository); where it is absent (offline) the test skips saying so.
"""

from __future__ import annotations

import ast
import os
import re
import zipfile
from pathlib import Path

import pytest

import facewatch.engines.backends.tensorrt.runner as runner_module

WHEEL_DIR = Path(os.environ.get("FACEWATCH_TENSORRT_WHEELS",
                                Path.home() / ".cache" / "facewatch" / "tensorrt-wheel"))
# Local names the backend gives TensorRT objects; attributes read on them are TensorRT's.
TRT_OBJECTS = {"builder", "network", "parser", "config", "profile", "calib_profile", "ctx",
               "engine", "timing", "strategies", "serialized"}
TRT_SELF = {"_engine", "_runtime", "_logger"}
# Used only where the running TensorRT has them (version checks or hasattr guards).
OLDER_TENSORRT_ONLY = {
    "FP16": "BuilderFlag.FP16, TensorRT < 11 (11 builds fp16 from the FP16 ONNX, strongly typed)",
    "EXPLICIT_BATCH": "TensorRT < 10 (explicit batch is the only mode since)",
    "INT8": "BuilderFlag.INT8, TensorRT 8.x implicit quantisation",
    "IInt8EntropyCalibrator2": "TensorRT 8.x implicit quantisation",
    "int8_calibrator": "TensorRT 8.x implicit quantisation",
    "set_calibration_profile": "TensorRT 8.x implicit quantisation",
}
# What TensorRT 11 removed: must be absent, or the guards would be dead.
REMOVED_IN_NEWEST = {"FP16", "EXPLICIT_BATCH", "IInt8EntropyCalibrator2", "int8_calibrator",
                     "set_calibration_profile"}


def _wheel() -> Path:
    wheels = sorted(WHEEL_DIR.glob("tensorrt_cu12_bindings-*.whl"),
                    key=lambda p: [int(x) for x in re.findall(r"\d+", p.name.split("-")[1])])
    if not wheels:
        pytest.skip(f"no tensorrt-cu12-bindings wheel in {WHEEL_DIR} (tests/run.sh fetches it "
                    f"with `pip download`; it could not, or the tests run without it)")
    return wheels[-1]


def wheel_names(wheel: Path) -> tuple[str, set[str]]:
    """(version, identifiers in the bindings: the .so's strings and __init__.py's names)."""
    with zipfile.ZipFile(wheel) as z:
        so = next(n for n in z.namelist() if n.endswith("/tensorrt.so"))
        data = z.read(so)
        init = z.read(so.rsplit("/", 1)[0] + "/__init__.py").decode()
    strings = {m.group(1).decode() for m in re.finditer(rb"([\x20-\x7e]{2,})\x00", data)}
    names = {s for s in strings if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", s)}
    for node in ast.walk(ast.parse(init)):
        if isinstance(node, ast.FunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    version = re.search(r'__version__ = "([^"]+)"', init)
    return (version.group(1) if version else "?"), names


def has(names: set[str], name: str) -> bool:
    """The linker stores a string that ends another one only once, inside the longer one
    ("serialize" in "plugins_to_serialize"), so a name may be a suffix of a stored string."""
    return name in names or any(n.endswith(name) for n in names)


def backend_uses() -> dict[str, set[str]]:
    """Each TensorRT name the backend uses, with where (for the failure message)."""
    uses: dict[str, set[str]] = {}
    sources = [Path(runner_module.__file__)]
    for path in sources:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            chain = _trt_chain(node)
            if chain:
                for name in chain:
                    uses.setdefault(name, set()).add(f"{path.name}: trt.{'.'.join(chain)}")
            if isinstance(node, ast.Attribute) and _is_trt_object(node.value):
                uses.setdefault(node.attr, set()).add(f"{path.name}: .{node.attr}")
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
                    node.func.id in ("hasattr", "getattr") and len(node.args) >= 2 and \
                    isinstance(node.args[1], ast.Constant) and \
                    (_trt_chain(node.args[0]) or _is_trt_object(node.args[0])
                     or (isinstance(node.args[0], ast.Name) and node.args[0].id == "trt")):
                uses.setdefault(str(node.args[1].value), set()).add(
                    f"{path.name}: {node.func.id}(..., {node.args[1].value!r})")
    return uses


def _trt_chain(node: ast.AST) -> list[str]:
    """['BuilderFlag', 'FP16'] for the expression `trt.BuilderFlag.FP16`; [] otherwise."""
    names = []
    while isinstance(node, ast.Attribute):
        names.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name) and node.id == "trt" and names:
        return [n for n in reversed(names) if not n.startswith("__")]
    return []


def _is_trt_object(node: ast.AST) -> bool:
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return _is_trt_object(node.func.value)  # what a TensorRT method returns
    if isinstance(node, ast.Name):
        return node.id in TRT_OBJECTS
    return isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and \
        node.value.id == "self" and node.attr in TRT_SELF


def test_the_scan_sees_the_calls_the_issue_lists() -> None:
    uses = backend_uses()
    for name in ("set_input_shape", "set_optimization_profile_async", "create_execution_context",
                 "set_timing_cache", "add_optimization_profile", "execute_async_v3",
                 "ON_PROFILE_CHANGE", "STRONGLY_TYPED", "FP16", "nptype", "serialize"):
        assert name in uses, name


def test_every_tensorrt_name_the_backend_uses_is_in_the_newest_bindings() -> None:
    version, names = wheel_names(_wheel())
    uses = backend_uses()
    missing = {n: sorted(w) for n, w in uses.items()
               if n not in OLDER_TENSORRT_ONLY and not has(names, n)}
    assert missing == {}, f"not in TensorRT {version}'s bindings: {missing}"
    still_there = {n for n in REMOVED_IN_NEWEST if has(names, n)}
    assert still_there == set(), f"TensorRT {version} still has {still_there}"
    assert set(OLDER_TENSORRT_ONLY) <= set(uses), "an entry of OLDER_TENSORRT_ONLY is unused"
