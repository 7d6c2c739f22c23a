"""Serialized TensorRT engines on disk, keyed so that nothing stale is ever loaded.

An engine is only valid for the exact ONNX file, TensorRT version, GPU model and compute
capability, precision and optimisation profiles it was built with.  All of those go into the
key; its digest names the file (`<models>/engines/<model>.<precision>.<digest16>.engine`) and a
JSON sidecar beside it records the key in full.  The runner computes every component but the
profiles from what it is about to run, and loads only an engine whose sidecar matches; among
those it takes the one whose profiles fit the inputs it expects (`choose_engine`).

The sidecar is written after the engine, so an engine file without one (a build killed
between the two writes) is treated as absent: never loaded, and built again.

Nothing here imports TensorRT.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from facewatch.engines.files import atomic_write_bytes

ENGINE_DIR = "engines"


@dataclass(frozen=True)
class Profile:
    """One optimisation profile of the (single) image input: min, opt and max NCHW shapes."""

    input: str
    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]

    def covers(self, shape: tuple[int, ...]) -> bool:
        return len(shape) == len(self.min) and all(
            lo <= d <= hi for lo, d, hi in zip(self.min, shape, self.max))

    @property
    def exact(self) -> bool:
        """One shape but the batch (P-Net's per-canvas profiles, the fixed-size nets)."""
        return self.min[1:] == self.max[1:]

    def covers_but_batch(self, shape: tuple[int, ...]) -> bool:
        """Every axis but the batch fits (a larger batch can be run in chunks)."""
        return len(shape) == len(self.min) and shape[0] >= 1 and all(
            lo <= d <= hi for lo, d, hi in zip(self.min[1:], shape[1:], self.max[1:]))


@dataclass(frozen=True)
class EngineKey:
    onnx_sha256: str
    tensorrt_version: str
    gpu_name: str
    compute_capability: tuple[int, int]
    precision: str
    profiles: tuple[Profile, ...]
    # How the ONNX was turned into a network, e.g. the symmetric-int8 rewrite's version.
    recipe: str = ""

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["compute_capability"] = list(self.compute_capability)
        d["profiles"] = [{"input": p.input, "min": list(p.min), "opt": list(p.opt),
                          "max": list(p.max)} for p in self.profiles]
        return d

    def digest(self) -> str:
        text = json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def same_target(self, other: EngineKey) -> bool:
        """Equal in everything but the profiles."""
        return (self.onnx_sha256, self.tensorrt_version, self.gpu_name, self.compute_capability,
                self.precision, self.recipe) == (
            other.onnx_sha256, other.tensorrt_version, other.gpu_name,
            other.compute_capability, other.precision, other.recipe)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> EngineKey:
        return EngineKey(
            onnx_sha256=d["onnx_sha256"], tensorrt_version=d["tensorrt_version"],
            gpu_name=d["gpu_name"], compute_capability=(int(d["compute_capability"][0]), int(d["compute_capability"][1])),
            precision=d["precision"], recipe=d.get("recipe", ""),
            profiles=tuple(Profile(p["input"], tuple(p["min"]), tuple(p["opt"]), tuple(p["max"]))
                           for p in d["profiles"]))


class EngineCache:
    def __init__(self, root: Path) -> None:
        self.root = root

    @staticmethod
    def beside(model_path: Path) -> EngineCache:
        """The cache of a models directory: `<models>/engines`."""
        return EngineCache(model_path.parent / ENGINE_DIR)

    def engine_path(self, model_stem: str, key: EngineKey) -> Path:
        return self.root / f"{model_stem}.{key.precision}.{key.digest()[:16]}.engine"

    def lookup(self, model_stem: str, key: EngineKey) -> Path | None:
        """The engine built for exactly `key`, or None; an engine file whose sidecar is missing
        or says otherwise counts as absent (it is rebuilt, and replaced atomically)."""
        path = self.engine_path(model_stem, key)
        try:
            recorded = EngineKey.from_dict(json.loads(path.with_suffix(".json").read_text()))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return path if recorded == key and path.is_file() else None

    def store(self, model_stem: str, key: EngineKey, engine: bytes) -> Path:
        path = self.engine_path(model_stem, key)
        atomic_write_bytes(path, engine)
        atomic_write_bytes(path.with_suffix(".json"),
                           (json.dumps({**key.as_dict(), "digest": key.digest(),
                                        "model": model_stem}, indent=2) + "\n").encode())
        return path

    def find(self, want: EngineKey) -> list[tuple[EngineKey, Path]]:
        """Engines built for the same file, TensorRT, GPU, precision and recipe as `want`
        (its profiles are ignored), newest first."""
        found = []
        for sidecar in self.root.glob("*.json"):
            try:
                key = EngineKey.from_dict(json.loads(sidecar.read_text()))
            except (OSError, ValueError, KeyError, TypeError):
                continue
            engine = sidecar.with_suffix(".engine")
            # The digest is recomputed: a hand-edited sidecar does not match its engine.
            if key.same_target(want) and engine.is_file() and \
                    engine.name.endswith(f".{key.digest()[:16]}.engine"):
                found.append((key, engine))
        return sorted(found, key=lambda kp: kp[1].stat().st_mtime, reverse=True)

    def orphans(self) -> list[Path]:
        """Engine files without a sidecar (a build that died between the two writes)."""
        return sorted(e for e in self.root.glob("*.engine") if not e.with_suffix(".json").is_file())

    def timing_cache_path(self, tensorrt_version: str, gpu_name: str,
                          compute_capability: tuple[int, int]) -> Path:
        """One timing cache per TensorRT version and GPU (it is only valid for those)."""
        tag = hashlib.sha256(f"{tensorrt_version}|{gpu_name}|{compute_capability}".encode())
        return self.root / f"timing.{tag.hexdigest()[:16]}.cache"

    def calibration_cache_path(self, onnx_sha256: str, tensorrt_version: str) -> Path:
        """TensorRT 8's own INT8 calibration table for one FP32 model."""
        return self.root / f"calibration.{onnx_sha256[:16]}.trt{tensorrt_version}.cache"


def choose_engine(found: list[tuple[EngineKey, Path]], expected: list[tuple[int, ...]]
                  ) -> tuple[EngineKey, Path] | None:
    """Of the engines `find` returned (newest first), the one to load for inputs of the
    `expected` shapes (batch ignored): one with an exact profile for each, else one whose
    profiles take each, else one with a ranged profile (the runner can tile a P-Net input
    larger than it), else the newest.  Ties go to the newer engine."""
    if not found:
        return None

    def rank(kp: tuple[EngineKey, Path]) -> tuple[bool, bool, bool]:
        profiles = kp[0].profiles
        exact = all(any(p.exact and p.covers_but_batch(s) for p in profiles) for s in expected)
        taken = all(any(p.covers_but_batch(s) for p in profiles) for s in expected)
        return exact, taken, any(not p.exact for p in profiles)

    return max(found, key=rank)  # max keeps the first (newest) of equal ranks
