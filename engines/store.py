"""Where models live and how a stage gets a loaded one.

The models directory is `$FACEWATCH_MODELS` when set, else a per-user data directory.  It
holds `<name>.onnx` + `<name>.json` pairs; any manifest dropped there is a usable model.
"""

from __future__ import annotations

import os
from pathlib import Path

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

    def open(self, name: str, options: BackendOptions) -> tuple[ModelManifest, Runner]:
        """Load a model after checking its file's sha256 and that it has the manifest's input."""
        manifest = self.manifest(name)
        path = verify_model_file(manifest, self.manifest_path(name))
        from facewatch.engines.backends.select import open_runner

        runner = open_runner(path, options)
        if manifest.input.name not in runner.input_names:
            raise ModelError(f"{self.manifest_path(name)}: input {manifest.input.name!r} is not "
                             f"in the model (it has {runner.input_names})")
        missing = [o for o in manifest.outputs if o not in runner.output_names]
        if missing:
            raise ModelError(f"{self.manifest_path(name)}: outputs {missing} are not in the model "
                             f"(it has {runner.output_names})")
        _check_input_shape(self.manifest_path(name), manifest, runner)
        return manifest, runner


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
