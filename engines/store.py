"""Where models live and how a stage gets a loaded one.

The models directory is `$FACEWATCH_MODELS` when set, else a per-user data directory.  It
holds `<name>.onnx` + `<name>.json` pairs; any manifest dropped there is a usable model.
`facewatch calibrate` adds `<name>.int8.onnx` + `<name>.int8.json` beside them, and
`facewatch tensorrt fp16` adds `<name>.fp16.onnx` + `<name>.fp16.json`; precision int8 and fp16
open those variants instead (`variant_name`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import platformdirs

from facewatch.engines.backends.base import BackendOptions, Runner
from facewatch.engines.manifest import (
    MANIFEST_SUFFIX,
    ModelManifest,
    load_manifest,
    verify_model_file,
)
from facewatch.errors import ModelError

MODELS_ENV = "FACEWATCH_MODELS"
INT8_SUFFIX = ".int8"
FP16_SUFFIX = ".fp16"
_SUFFIXES = {"int8": INT8_SUFFIX, "fp16": FP16_SUFFIX}


def variant_name(name: str, precision: str) -> str:
    """The model a precision runs: `<name>.int8` for int8, `<name>.fp16` for fp16 (TensorRT
    before 11 builds its fp16 engine from the FP32 model with a builder flag, but keys it by
    this file too); the FP32 model otherwise."""
    suffix = _SUFFIXES.get(precision)
    if suffix is None or name.endswith(suffix):
        return name
    return name + suffix


def default_models_dir() -> Path:
    env = os.environ.get(MODELS_ENV)
    if env:
        return Path(env).expanduser()
    return platformdirs.user_data_path("facewatch") / "models"


class ModelStore:
    def __init__(self, root: Path | None = None) -> None:
        self.root = root if root is not None else default_models_dir()

    def manifest_path(self, name: str) -> Path:
        return self.root / f"{name}{MANIFEST_SUFFIX}"

    def manifest(self, name: str) -> ModelManifest:
        path = self.manifest_path(name)
        if not path.is_file():
            known = ", ".join(self.names()) or "none"
            raise ModelError(f"{path}: no model named {name!r} in {self.root} (installed: {known}; "
                             f"run `facewatch models fetch`, or set {MODELS_ENV})")
        return load_manifest(path)

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.stem for p in self.root.glob(f"*{MANIFEST_SUFFIX}"))

    def resolve(self, name: str, precision: str) -> str:
        """The name of the model to open for `name` at `precision`; a one-line error when the
        int8 variant has not been made yet."""
        variant = variant_name(name, precision)
        if variant != name and not self.manifest_path(variant).is_file() and precision == "fp16":
            raise ModelError(f"{self.manifest_path(variant)}: {name} has no FP16 model in "
                             f"{self.root} (run `facewatch tensorrt fp16`; `facewatch tensorrt "
                             f"build --precision fp16` makes it too)")
        if variant != name and not self.manifest_path(variant).is_file():
            raise ModelError(f"{self.manifest_path(variant)}: {name} has not been calibrated for "
                             f"int8 in {self.root} (run `facewatch calibrate --video FILE` or "
                             f"`facewatch calibrate --images DIR` first, or use precision fp32)")
        return variant

    def open(self, name: str, options: BackendOptions,
             expected: Sequence[tuple[int, ...]] = ()) -> tuple[ModelManifest, Runner]:
        """Load a model after checking its file's sha256 and that it has the manifest's input.

        At precision int8 or fp16 the `<name>.int8` / `<name>.fp16` variant is loaded instead.
        `expected`: the input shapes the caller will send, if known (TensorRT chooses its
        engine by them).
        """
        name = self.resolve(name, options.precision)
        manifest = self.manifest(name)
        path = verify_model_file(manifest, self.manifest_path(name))
        from facewatch.engines.backends.select import open_runner

        runner = open_runner(path, options, role=manifest.role, expected=expected)
        if manifest.input.name not in runner.input_names:
            raise ModelError(f"{self.manifest_path(name)}: input {manifest.input.name!r} is not "
                             f"in the model (it has {runner.input_names})")
        missing = [o for o in manifest.outputs if o not in runner.output_names]
        if missing:
            raise ModelError(f"{self.manifest_path(name)}: outputs {missing} are not in the model "
                             f"(it has {runner.output_names})")
        _check_input_shape(self.manifest_path(name), manifest, runner)
        if options.backend == "onnxruntime":  # TensorRT engines are checked when they are built
            _check_outputs(self.manifest_path(name), manifest, runner)
        return manifest, runner


# Axes of every output, per role: the MTCNN P-Net is fully convolutional
# (N, C, H, W maps); R-Net, O-Net and embedders give one row per face (N, K).
_OUTPUT_AXES = {"mtcnn.pnet": 4, "mtcnn.rnet": 2, "mtcnn.onet": 2, "embedder": 2}
# Free spatial axes are given this size for the check (P-Net's smallest useful input is 12).
_CHECK_SIDE = 48


def _check_outputs(where: Path, manifest: ModelManifest, runner: Runner) -> None:
    """Run the model once on zeros of its declared input shape (a free batch as 1; this
    doubles as a warm-up) and check that its outputs have the axes its role needs.  A pinned
    sha256 only proves the file is the one the manifest names; a manifest written for the wrong network (a P-Net file under an R-Net
    manifest) would otherwise load and then fail deep inside the detector."""
    axes = _OUTPUT_AXES.get(manifest.role)
    if axes is None:
        return
    shape = [d if isinstance(d, int) else (1 if i == 0 else _CHECK_SIDE)
             for i, d in enumerate(manifest.input.shape)]
    try:
        outputs = runner.run({manifest.input.name: np.zeros(shape, np.float32)})
    except Exception as exc:  # noqa: BLE001 - the runtime raises its own error types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{where}: the model does not run on an input of shape {shape} "
                         f"({first})") from None
    for name in manifest.outputs:
        got = list(np.shape(outputs[name]))
        if len(got) != axes or got[0] != shape[0]:
            raise ModelError(f"{where}: output {name!r} has shape {got} for an input of shape "
                             f"{shape}; a {manifest.role} model gives {axes} axes, the first "
                             f"the batch (is {manifest.file} the right network?)")


def _check_input_shape(where: Path, manifest: ModelManifest, runner: Runner) -> None:
    shape = getattr(runner, "input_shape", lambda _n: None)(manifest.input.name)
    if shape is None:
        return
    declared = manifest.input.shape
    if len(shape) != len(declared):
        raise ModelError(f"{where}: input.shape {declared} has {len(declared)} axes, "
                         f"the model's input has {len(shape)} ({shape})")
    for axis, (d, m) in enumerate(zip(declared, shape)):
        if isinstance(d, int) and isinstance(m, int) and d != m:
            raise ModelError(f"{where}: input.shape[{axis}] is {d}, the model's input has {m} "
                             f"({shape})")
