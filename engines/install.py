"""`facewatch models fetch`: pinned sources in, our own ONNX models and manifests out."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import onnx

from facewatch.engines import catalog
from facewatch.engines.calibrations import OPEN_SET
from facewatch.engines.fetch import acquire
from facewatch.engines.files import atomic_write_bytes, sha256_file
from facewatch.engines.manifest import (
    MANIFEST_SUFFIX,
    InputSpec,
    ModelManifest,
    Role,
    write_manifest,
)

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class InstalledModel:
    name: str
    manifest_path: Path
    sha256: str
    obtained: str


@dataclass(frozen=True)
class _Recipe:
    name: str
    role: Role
    sources: tuple[catalog.PinnedFile, ...]
    build: Callable[[list[Path]], onnx.ModelProto]
    input: InputSpec
    outputs: list[str]
    embedding_size: int | None
    notes: str
    threshold: float | None = None


def _mtcnn_recipe(net: str, pinned: catalog.PinnedFile, shape: list[int | str],
                  outputs: list[str]) -> _Recipe:
    def build(paths: list[Path]) -> onnx.ModelProto:
        from facewatch.engines.builders import mtcnn_nets
        from facewatch.engines.readers.torch_legacy import load_state_dict

        model: onnx.ModelProto = getattr(mtcnn_nets, f"build_{net}")(load_state_dict(paths[0]))
        return model

    return _Recipe(catalog.MTCNN_NAMES[net], f"mtcnn.{net}", (pinned,), build,  # type: ignore[arg-type]
                   InputSpec(name="input", shape=shape, layout="NCHW", color="RGB",
                             mean=[127.5] * 3, std=[128.0] * 3), outputs, None,
                   "MTCNN (Zhang et al. 2016); prob[:, 1] is the face probability")


def _build_sirius(paths: list[Path]) -> onnx.ModelProto:
    from facewatch.engines.builders.mobilefacenet_sirius import build_sirius_onnx

    return build_sirius_onnx(paths[0])


def _build_foamliu(paths: list[Path]) -> onnx.ModelProto:
    from facewatch.engines.builders.mobilefacenet_foamliu import build_foamliu_onnx
    from facewatch.engines.readers.torch_legacy import load_state_dict

    return build_foamliu_onnx(load_state_dict(paths[0]))


_FOAMLIU_INPUT = InputSpec(name="input", shape=["batch", 3, 112, 112], layout="NCHW", color="RGB",
                           mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375])
_SIRIUS_INPUT = InputSpec(name="input", shape=["batch", 3, 112, 112], layout="NCHW", color="RGB",
                          mean=[127.5] * 3, std=[128.0] * 3)


def _build_fused(paths: list[Path]) -> onnx.ModelProto:
    """foamliu and sirius in one graph (engines/builders/fused.py): cosine = their mean cosine."""
    from facewatch.engines.builders.fused import FusedPart, build_fused_onnx

    def part(model: onnx.ModelProto, spec: InputSpec, output: str, size: int) -> FusedPart:
        mean, std = spec.mean, spec.std
        return FusedPart(model, spec.name, output, (mean[0], mean[1], mean[2]),
                         (std[0], std[1], std[2]), size)

    return build_fused_onnx([part(_build_foamliu(paths[:1]), _FOAMLIU_INPUT, "embedding", 128),
                             part(_build_sirius(paths[1:]), _SIRIUS_INPUT, "embeddings", 192)],
                            "mobilefacenet_fused")


# Same-person thresholds, from `facewatch eval lfw` with each model: the similarity that only
# 1 in 1,000 different-person LFW pairs reaches (`threshold_at_far_1e-3`).  The accuracy-
# optimal threshold (0.274 for foamliu) is too lenient for a gallery: against 1,680 enrolled
# LFW people it let 99 % of strangers match someone (`facewatch eval identify`).
FOAMLIU_THRESHOLD = 0.307
SIRIUS_THRESHOLD = 0.412
# The same point for the fused model (0.346 with flip).  Naming uses the open-set calibration
# (engines/calibrations.py); this one is for what compares two faces (the face library's
# grouping, search's floor).
FUSED_THRESHOLD = 0.352

RECIPES = (
    _mtcnn_recipe("pnet", catalog.PNET, ["batch", 3, "height", "width"], ["reg", "prob"]),
    _mtcnn_recipe("rnet", catalog.RNET, ["batch", 3, 24, 24], ["reg", "prob"]),
    _mtcnn_recipe("onet", catalog.ONET, ["batch", 3, 48, 48], ["reg", "landmarks", "prob"]),
    _Recipe(catalog.FOAMLIU, "embedder", (catalog.FOAMLIU_PT,), _build_foamliu,
            _FOAMLIU_INPUT, ["embedding"], 128,
            "MobileFaceNet (Chen et al. 2018), foamliu/MobileFaceNet weights, ReLU6",
            FOAMLIU_THRESHOLD),
    _Recipe(catalog.SIRIUS, "embedder", (catalog.SIRIUS_TFLITE,), _build_sirius,
            _SIRIUS_INPUT, ["embeddings"], 192,
            "MobileFaceNet (Chen et al. 2018), sirius-ai/MobileFaceNet_TF weights, PReLU",
            SIRIUS_THRESHOLD),
    _Recipe(catalog.FUSED, "embedder", (catalog.FOAMLIU_PT, catalog.SIRIUS_TFLITE), _build_fused,
            InputSpec(name="input", shape=["batch", 3, 112, 112], layout="NCHW", color="RGB"),
            ["embedding"], 320,
            "mobilefacenet-foamliu and mobilefacenet-sirius in one graph: each part's unit "
            "embedding, concatenated / sqrt(2), so a cosine is the mean of the two",
            FUSED_THRESHOLD),
)


def install_models(dest: Path, from_dir: Path | None = None,
                   mirror: str | None = None) -> list[InstalledModel]:
    """Fetch every pinned source into dest/sources, build each ONNX model and its manifest."""
    sources_dir = dest / "sources"
    installed = []
    acquired: dict[str, tuple[Path, str]] = {}  # a source two models share is fetched once
    for recipe in RECIPES:
        paths, how = [], []
        for pinned in recipe.sources:
            if pinned.sha256 not in acquired:
                acquired[pinned.sha256] = acquire(pinned, sources_dir, from_dir, mirror)
            path, obtained = acquired[pinned.sha256]
            paths.append(path)
            how.append(obtained)
        model_path = dest / f"{recipe.name}.onnx"
        atomic_write_bytes(model_path, recipe.build(paths).SerializeToString())
        digest = sha256_file(model_path)
        origin = "; ".join(f"{p.origin.describe()} (sha256 {p.sha256})" for p in recipe.sources)
        manifest = ModelManifest(
            name=recipe.name, role=recipe.role, file=model_path.name, sha256=digest,
            input=recipe.input, outputs=recipe.outputs,
            embedding_output=recipe.outputs[0] if recipe.role == "embedder" else None,
            embedding_size=recipe.embedding_size, threshold=recipe.threshold,
            open_set=list(OPEN_SET.get(recipe.name, ())), source=origin,
            licence="; ".join(p.licence for p in recipe.sources), notes=recipe.notes)
        manifest_path = dest / f"{recipe.name}{MANIFEST_SUFFIX}"
        write_manifest(manifest_path, manifest)
        log.info("built %s (%s)", model_path, ", ".join(how))
        installed.append(InstalledModel(recipe.name, manifest_path, digest,
                                        ", ".join(dict.fromkeys(how))))
    return installed
