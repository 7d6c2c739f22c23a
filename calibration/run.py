"""`facewatch calibrate`: record calibration inputs, quantise each net, gate it, write variants.

For each net the outcome is one of:
- "int8": `<name>.int8.onnx` (QDQ) and `<name>.int8.json` written; precision int8 loads them;
- "fp32": INT8 lost faces or was not faster here, so `<name>.int8.json` points at the FP32
  file and says why (precision int8 then runs FP32 for that net: a per-net choice);
- "refused": the embedder failed the gate (LFW loss, cosine floor); nothing is written, an
  earlier variant is left as it was, and the command fails.  `--force` writes INT8 anyway.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
from tqdm import tqdm

from facewatch.calibration import gate
from facewatch.calibration.collect import NETS, CalibrationSet, Caps, collect
from facewatch.calibration.quantize import (
    SCHEME,
    CalibrationMethodName,
    QuantisationSettings,
    quantise,
)
from facewatch.calibration.sources import FrameSource
from facewatch.embedding.embedder import Embedder
from facewatch.engines import catalog
from facewatch.engines.backends.base import BackendOptions, Runner
from facewatch.engines.files import atomic_write_bytes, sha256_file
from facewatch.engines.manifest import CalibrationRecord, ModelManifest, write_manifest
from facewatch.engines.store import INT8_SUFFIX, ModelStore
from facewatch.errors import BadInputError
from facewatch.images import load_image
from facewatch.pipeline import FacePipeline, PipelineSettings

log = logging.getLogger(__name__)

Decision = Literal["int8", "fp32", "refused"]
# FP32 layers kept at the end of each net (see quantize.py): measured on foamliu, keeping its
# last three convolutions (128->512 1x1, the 7x7 global depthwise, 512->128) FP32 lifted the
# cosine to FP32 from 0.993 to 0.997 mean; more bought nothing.
KEEP_TAIL = {"embedder": 3, "pnet": 1, "rnet": 1, "onet": 1}


@dataclass(frozen=True)
class CalibrationOptions:
    nets: tuple[str, ...] = NETS
    method: CalibrationMethodName = "minmax"
    force: bool = False
    lfw_dir: Path | None = None
    pairs: Path | None = None
    analysis_cache: Path | None = None
    detector_photos: Path | None = None
    speed_check: bool = True
    caps: Caps = field(default_factory=Caps)
    progress: bool | None = None


@dataclass
class NetResult:
    net: str
    name: str
    decision: Decision
    reason: str
    gate: dict[str, Any]
    samples: int
    manifest: Path | None = None


@dataclass
class CalibrationReport:
    source: str
    frames: int
    faces: int
    results: list[NetResult]

    @property
    def refused(self) -> list[NetResult]:
        return [r for r in self.results if r.decision == "refused"]

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "frames": self.frames, "faces": self.faces,
                "thresholds": gate.thresholds(),
                "nets": [{**dataclasses.asdict(r), "manifest": str(r.manifest) if r.manifest else None}
                         for r in self.results],
                "ok": not self.refused}


def model_name(net: str, settings: PipelineSettings) -> str:
    return settings.embedder if net == "embedder" else str(catalog.MTCNN_NAMES[net])


def calibrate(store: ModelStore, settings: PipelineSettings, source: FrameSource,
              options: CalibrationOptions = CalibrationOptions()) -> CalibrationReport:
    unknown = [n for n in options.nets if n not in NETS]
    if unknown:
        raise BadInputError(f"--nets {','.join(unknown)}: unknown (choose from {', '.join(NETS)})")
    if (options.lfw_dir is None) != (options.pairs is None):
        raise BadInputError("--lfw and --pairs go together")
    # Calibration always records and compares against FP32 on ONNX Runtime.
    fp32_backend = dataclasses.replace(settings.backend, backend="onnxruntime", precision="fp32",
                                       device="cpu")
    settings = dataclasses.replace(settings, backend=fp32_backend)
    pipeline = FacePipeline.load(settings, store, with_embedder="embedder" in options.nets)
    cset = collect(pipeline, source.frames(), source.description, source.count, options.caps,
                   progress=options.progress)
    log.info("calibration set: %d frames, %d faces; %s", cset.frames, cset.faces,
             ", ".join(f"{n} {cset.count(n)}" for n in options.nets))
    photos = _detector_photos(options.detector_photos)
    results = []
    with tempfile.TemporaryDirectory(prefix="facewatch-calibrate-") as tmp:
        candidates: dict[str, Path] = {}
        for net in options.nets:
            if cset.count(net) == 0:
                raise BadInputError(f"{source.description}: gave no {net} inputs to calibrate on"
                                    f"{' (no faces found)' if net in ('embedder', 'onet') else ''}")
            name = model_name(net, settings)
            candidates[net] = Path(tmp) / f"{name}{INT8_SUFFIX}.onnx"
            log.info("quantising %s on %d samples", name, cset.count(net))
            batches = cset.batches(net)
            disable = None if options.progress is None else not options.progress
            with tqdm(total=len(batches), desc=f"calibrating {name}", unit="batch",
                      disable=disable, file=sys.stderr) as bar:
                quantise(store.manifest(name).path(store.manifest_path(name)), candidates[net],
                         batches,
                         QuantisationSettings(method=options.method if net != "pnet" else "minmax",
                                              keep_tail=KEEP_TAIL[net]),
                         tick=bar.update)
        reference = _detector_reference(pipeline, settings, photos, cset) \
            if any(n != "embedder" for n in options.nets) else None
        for net in options.nets:
            name = model_name(net, settings)
            int8 = _open(candidates[net], fp32_backend)
            if net == "embedder":
                g = _embedder_gate(pipeline, int8, cset, options, store)
                decision, reason = _embedder_decision(g, options.force)
            else:
                g = _detector_gate(net, pipeline, int8, settings, photos, cset, reference, options)
                decision, reason = _detector_decision(g, options)
            g["thresholds"] = gate.thresholds()
            result = NetResult(net, name, decision, reason, g, cset.count(net))
            if decision != "refused":
                result.manifest = _write_variant(store, name, candidates[net], decision, reason,
                                                 g, cset, options)
            log.info("%s: %s (%s)", name, decision, reason)
            results.append(result)
    return CalibrationReport(cset.source, cset.frames, cset.faces, results)


def _open(path: Path, options: BackendOptions) -> Runner:
    from facewatch.engines.backends.select import open_runner

    return open_runner(path, options)


# Embedder --------------------------------------------------------------------------------

def _embedder_gate(pipeline: FacePipeline, int8: Runner, cset: CalibrationSet,
                   options: CalibrationOptions, store: ModelStore) -> dict[str, Any]:
    assert pipeline.embedder is not None
    fp32 = pipeline.embedder.runner
    output = pipeline.embedder.manifest.embedding_output
    assert output is not None
    held = cset.batches("embedder", held_out=True)
    g: dict[str, Any] = {"agreement": gate.embedding_agreement(fp32, int8, output, held)}
    if options.speed_check:
        g["speed"] = gate.speed(fp32, int8, held[:4])
    if options.lfw_dir is not None and options.pairs is not None:
        g["lfw"] = _lfw(pipeline, int8, options)
    return g


def _lfw(pipeline: FacePipeline, int8: Runner, options: CalibrationOptions) -> dict[str, Any]:
    from facewatch.evaluation.lfw import run_verification
    from facewatch.gallery.cache import AnalysisCache

    assert pipeline.embedder is not None and options.lfw_dir and options.pairs
    e = pipeline.embedder
    int8_sha = sha256_file(Path(int8.model_path))
    quantised = FacePipeline(pipeline.detector,
                             Embedder(e.manifest, int8, flip=e.flip),
                             pipeline.signature.replace(e.manifest.sha256[:16], int8_sha[:16]))
    cache = AnalysisCache(options.analysis_cache) if options.analysis_cache else None
    try:
        a = run_verification(options.lfw_dir, options.pairs, pipeline, cache)
        b = run_verification(options.lfw_dir, options.pairs, quantised, None)
    finally:
        if cache:
            cache.close()
    return {"pairs": a.pairs, "fp32_accuracy": round(a.accuracy, 5),
            "int8_accuracy": round(b.accuracy, 5),
            "delta_pp": round(100 * (b.accuracy - a.accuracy), 3),
            "fp32_val_at_far_1e-3": round(a.val_at_far, 5),
            "int8_val_at_far_1e-3": round(b.val_at_far, 5),
            "int8_threshold_at_far_1e-3": round(b.threshold_at_far, 4)}


def _embedder_decision(g: dict[str, Any], force: bool) -> tuple[Decision, str]:
    problems = []
    lfw = g.get("lfw")
    if lfw is not None and lfw["delta_pp"] < -gate.LFW_MAX_LOSS_PP:
        problems.append(f"LFW {lfw['delta_pp']:+.2f} pp (limit -{gate.LFW_MAX_LOSS_PP} pp)")
    agreement = g["agreement"].get("cosine_mean")
    if agreement is None or agreement < gate.COSINE_MEAN_FLOOR:
        problems.append(f"cosine to FP32 {agreement} (floor {gate.COSINE_MEAN_FLOOR})")
    summary = f"cosine {agreement}" + (f", LFW {lfw['delta_pp']:+.2f} pp" if lfw else "")
    if not problems:
        return "int8", f"gate passed: {summary}"
    if force:
        return "int8", f"forced past the gate: {'; '.join(problems)}"
    return "refused", f"gate refused: {'; '.join(problems)} (--force to write it anyway)"


# Detector --------------------------------------------------------------------------------

def _detector_photos(folder: Path | None) -> list[tuple[np.ndarray, np.ndarray | None]]:
    if folder is None:
        return []
    annotated = gate.read_dlib_annotations(folder) if folder.is_dir() else []
    if annotated:
        return [(load_image(a.path), a.boxes) for a in annotated]
    from facewatch.calibration.sources import folder_source

    return [(img, None) for img in folder_source(folder).frames()]


def _nets(pipeline: FacePipeline) -> dict[str, Runner]:
    d = pipeline.detector
    return {"pnet": d.pnet, "rnet": d.rnet, "onet": d.onet}


def _detector_reference(pipeline: FacePipeline, settings: PipelineSettings,
                        photos: list[tuple[np.ndarray, np.ndarray | None]],
                        cset: CalibrationSet) -> dict[str, Any]:
    checks: dict[str, Any] = gate.detector_checks(_nets(pipeline), settings.detector, photos,
                                                  cset.frames_kept)
    return checks


def _detector_gate(net: str, pipeline: FacePipeline, int8: Runner, settings: PipelineSettings,
                   photos: list[tuple[np.ndarray, np.ndarray | None]], cset: CalibrationSet,
                   reference: dict[str, Any] | None, options: CalibrationOptions
                   ) -> dict[str, Any]:
    assert reference is not None
    runners = {**_nets(pipeline), net: int8}
    checked = gate.detector_checks(runners, settings.detector, photos, cset.frames_kept, reference)
    g: dict[str, Any] = {"frames": len(cset.frames_kept),
                         "faces_found_fp32": reference["faces_found_frames"],
                         "faces_found_int8": checked["faces_found_frames"]}
    if "recall" in reference:
        g.update(photos=len(photos), faces_annotated=reference.get("faces_annotated"),
                 recall_fp32=reference["recall"], recall_int8=checked["recall"],
                 recall_delta_pp=round(100 * (checked["recall"] - reference["recall"]), 3))
    if options.speed_check:
        batches = cset.batches(net, batch=256, held_out=True)[:8] or cset.batches(net, 256)[:8]
        g["speed"] = gate.speed(_nets(pipeline)[net], int8, batches)
    return g


def _detector_decision(g: dict[str, Any], options: CalibrationOptions) -> tuple[Decision, str]:
    problems = []
    if g.get("recall_delta_pp") is not None and g["recall_delta_pp"] < -gate.RECALL_MAX_LOSS_PP:
        problems.append(f"recall {g['recall_delta_pp']:+.2f} pp")
    f32, i8 = g["faces_found_fp32"], g["faces_found_int8"]
    if f32 and abs(i8 - f32) / f32 > gate.FACES_FOUND_MAX_CHANGE:
        problems.append(f"faces found {f32} -> {i8}")
    speedup = g.get("speed", {}).get("speedup")
    if options.speed_check and speedup is not None and speedup < gate.MIN_SPEEDUP:
        problems.append(f"{speedup:.2f}x the FP32 speed here (needs {gate.MIN_SPEEDUP}x)")
    if not problems:
        return "int8", "gate passed" + (f": {speedup:.2f}x FP32 speed" if speedup else "")
    if options.force:
        return "int8", f"forced past the gate: {'; '.join(problems)}"
    return "fp32", f"FP32 kept: INT8 {'; '.join(problems)}"


# Writing ---------------------------------------------------------------------------------

def _write_variant(store: ModelStore, name: str, candidate: Path, decision: Decision, reason: str,
                   g: dict[str, Any], cset: CalibrationSet, options: CalibrationOptions) -> Path:
    fp32 = store.manifest(name)
    variant = f"{name}{INT8_SUFFIX}"
    int8_file = store.root / f"{variant}.onnx"
    if decision == "int8":
        atomic_write_bytes(int8_file, candidate.read_bytes())
        file, digest, precision = int8_file.name, sha256_file(int8_file), "int8"
    else:
        int8_file.unlink(missing_ok=True)  # a stale INT8 file must not look current
        file, digest, precision = fp32.file, fp32.sha256, "fp32"
    record = CalibrationRecord(
        fp32_file=fp32.file, fp32_sha256=fp32.sha256, source=cset.source,
        samples=cset.count(_net_of(name, fp32.role)),
        method=f"{options.method if fp32.role != 'mtcnn.pnet' else 'minmax'}; {SCHEME}",
        decision=reason, gate=_jsonable(g),
        created=datetime.now(UTC).isoformat(timespec="seconds"))
    manifest = fp32.model_copy(update={
        "name": variant, "file": file, "sha256": digest, "precision": precision,
        "calibration": record,
        "notes": f"{fp32.notes}; INT8 variant from `facewatch calibrate`" if precision == "int8"
        else f"{fp32.notes}; {reason}"})
    path: Path = store.manifest_path(variant)
    write_manifest(path, ModelManifest.model_validate(manifest.model_dump()))
    return path


def _net_of(name: str, role: str) -> str:
    return "embedder" if role == "embedder" else role.split(".")[1]


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items() if k != "photo_boxes"}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
