"""`facewatch tensorrt build|list|fp16`: TensorRT engines, built ahead of time ("build and exit").

    facewatch tensorrt build [--precision fp32|fp16|int8] [--max-batch N] [--workspace MB]
                            [--frame-size WxH ...] [--config FILE] [--json]
    facewatch tensorrt fp16 [--embedder NAME] [--json]

Engines go to `<models>/engines/`, keyed by ONNX sha256, TensorRT version, GPU name and compute
capability, precision and profiles; the daemon and the CLI load only a matching one.  Without
--config, the detector settings are the daemon's defaults (min_face 40), so engines built with
no options fit a daemon configured with none.  `fp16` makes the FP16 ONNX models (no GPU
needed; `build --precision fp16` makes them when missing).
"""

from __future__ import annotations

import argparse
import functools
import json
import re
from pathlib import Path
from typing import Any

from facewatch.cli.common import store_from
from facewatch.cli.output import emit
from facewatch.config.inference import InferenceConfig
from facewatch.engines import catalog
from facewatch.engines.backends.tensorrt.plans import ENGINE_DIR, EngineCache
from facewatch.errors import BadInputError

_SIZE = re.compile(r"^(\d+)[xX](\d+)$")
# The daemon's own defaults (`inference:` with no keys): what engines are built for unless told.
_DAEMON = InferenceConfig()


def register(sub: argparse._SubParsersAction,  # type: ignore[type-arg]
             common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("tensorrt", aliases=["engines"],
                       help="build TensorRT engines (GPU model plans) ahead of time")
    esub = p.add_subparsers(dest="engines_command", metavar="ACTION", required=True)
    b = esub.add_parser("build", parents=[common], help="build every model's engine and exit")
    b.add_argument("--precision", choices=["fp32", "fp16", "int8"], default="fp32",
                   help="engine precision (int8 builds from `facewatch calibrate`'s models)")
    b.add_argument("--max-batch", type=int, default=8, metavar="N",
                   help="largest batch of frames/faces per call (default: 8; R-Net/O-Net take "
                        "more candidates, larger batches run in chunks)")
    b.add_argument("--workspace", type=int, default=1024, metavar="MB",
                   help="TensorRT builder workspace (default: 1024 MB)")
    b.add_argument("--frame-size", action="append", default=[], metavar="WxH",
                   help="camera frame size that gets an exact P-Net profile; repeatable "
                        "(always: 640x360, 1280x720, 1920x1080, plus --config's cameras; "
                        "other sizes run on the ranged profile)")
    b.add_argument("--config", type=Path, metavar="FILE",
                   help="daemon config: its embedder, min_face, scale_factor and cameras' "
                        "max_size (1920x1080 for a camera without one)")
    b.add_argument("--min-face", type=float, metavar="PX",
                   help=f"detector min_face (default: --config's, else the daemon's "
                        f"{_DAEMON.min_face:g})")
    b.add_argument("--scale-factor", type=float, metavar="F",
                   help=f"pyramid factor (default: --config's, else {_DAEMON.scale_factor:g})")
    b.add_argument("--embedder", metavar="NAME", help="embedder model (default: --config's, else "
                                                      f"{catalog.DEFAULT_EMBEDDER})")
    cal = b.add_argument_group("TensorRT 8.x INT8 only (it calibrates itself)")
    cal.add_argument("--video", type=Path, metavar="FILE")
    cal.add_argument("--frames", type=int, default=500, metavar="N")
    cal.add_argument("--images", type=Path, action="append", default=[], metavar="DIR")
    cal.add_argument("--gallery", type=Path, metavar="G")
    b.set_defaults(handler=_build, camera=None)
    ls = esub.add_parser("list", parents=[common], help="show the engines in the cache")
    ls.set_defaults(handler=_list)
    f = esub.add_parser("fp16", parents=[common],
                        help="make the FP16 ONNX models fp16 engines are built from on TensorRT "
                             ">= 11 (no GPU needed; ONNX Runtime runs them too)")
    f.add_argument("--embedder", metavar="NAME", action="append", default=[],
                   help=f"embedder model(s) (default: {catalog.DEFAULT_EMBEDDER})")
    f.set_defaults(handler=_fp16)


def parse_size(text: str) -> tuple[int, int]:
    m = _SIZE.match(text.strip())
    if not m:
        raise BadInputError(f"--frame-size {text}: expected WIDTHxHEIGHT, e.g. 1280x720")
    return int(m.group(1)), int(m.group(2))


def _plan(args: argparse.Namespace) -> tuple[Any, list[tuple[int, int]], str]:
    """(detector settings, frame sizes, embedder) from the options and --config."""
    from facewatch.detection.detector import MtcnnSettings
    from facewatch.engines.backends.tensorrt.profiles import DEFAULT_FRAME_SIZES, camera_frame_sizes

    sizes = [*DEFAULT_FRAME_SIZES, *(parse_size(s) for s in args.frame_size)]
    inf = _DAEMON
    if args.config:
        from facewatch.config import load_resolved

        config = load_resolved(args.config)
        inf = config.inference
        sizes += camera_frame_sizes(config)
    settings = MtcnnSettings(min_face=args.min_face or inf.min_face,
                             scale_factor=args.scale_factor or inf.scale_factor)
    return settings, sorted(set(sizes)), args.embedder or inf.embedder


def _build(args: argparse.Namespace) -> int:
    from facewatch.engines.backends.tensorrt.profiles import profiles_for
    from facewatch.engines.backends.tensorrt.runner import (
        BuildRequest,
        build_engine,
        require_gpu,
    )
    from facewatch.engines.manifest import verify_model_file

    if args.max_batch < 1 or args.workspace < 64:
        raise BadInputError("--max-batch must be at least 1 and --workspace at least 64 MB")
    require_gpu("tensorrt build")  # before any TensorRT object, and before reading frames
    store = store_from(args)
    detector, sizes, embedder = _plan(args)
    cache = EngineCache(store.root / ENGINE_DIR)
    batches = _calibration_batches(args, store, detector, embedder)
    rows = []
    for net, name in (*catalog.MTCNN_NAMES.items(), ("embedder", embedder)):
        fp32 = store.manifest(name)
        if args.precision == "fp16":
            from facewatch.engines.backends.tensorrt.fp16 import fp16_variant

            fp16_variant(store, name)
        variant = store.resolve(name, args.precision)
        manifest = store.manifest(variant)
        path = verify_model_file(manifest, store.manifest_path(variant))
        profiles = profiles_for(fp32, args.max_batch, sizes, detector)
        request = BuildRequest(
            model_path=path, model_stem=variant, precision=args.precision, profiles=profiles,
            workspace_mb=args.workspace, fp32_path=fp32.path(store.manifest_path(name)),
            calibration_batches=functools.partial(batches, net) if batches else None)
        engine, built = build_engine(request, cache)
        rows.append({"model": variant, "engine": str(engine), "built": built,
                     "profiles": [[list(p.min), list(p.opt), list(p.max)] for p in profiles]})
    emit(args.json, {"precision": args.precision, "frame_sizes": [list(s) for s in sizes],
                     "min_face": detector.min_face, "engines": rows},
         [f"{r['model']:30s} {'built' if r['built'] else 'cached'}  {r['engine']}" for r in rows])
    return 0


def _calibration_batches(args: argparse.Namespace, store: Any, detector: Any, embedder: str
                         ) -> Any:
    """For TensorRT 8.x INT8: the calibration set, collected once on first use."""
    if args.precision != "int8" or not (args.video or args.images or args.gallery):
        return None
    memo: dict[str, Any] = {}

    def batches(net: str) -> list[Any]:
        if "set" not in memo:
            from facewatch.calibration.collect import collect
            from facewatch.calibration.sources import chain
            from facewatch.cli.calibrate import _sources
            from facewatch.engines.backends.base import BackendOptions
            from facewatch.pipeline import FacePipeline, PipelineSettings

            source = chain(_sources(args))
            pipeline = FacePipeline.load(PipelineSettings(embedder=embedder, detector=detector,
                                                          backend=BackendOptions()), store)
            memo["set"] = collect(pipeline, source.frames(), source.description, source.count)
        return memo["set"].batches(net, batch=args.max_batch)  # type: ignore[no-any-return]

    return batches


def _list(args: argparse.Namespace) -> int:
    store = store_from(args)
    root = store.root / ENGINE_DIR
    rows = []
    for sidecar in sorted(root.glob("*.json")) if root.is_dir() else []:
        try:
            d = json.loads(sidecar.read_text())
        except (OSError, ValueError):
            continue
        rows.append({"engine": str(sidecar.with_suffix(".engine")), "model": d.get("model"),
                     "precision": d.get("precision"), "tensorrt": d.get("tensorrt_version"),
                     "gpu": d.get("gpu_name"), "compute_capability": d.get("compute_capability"),
                     "profiles": len(d.get("profiles", []))})
    orphans = [str(e) for e in EngineCache(root).orphans()] if root.is_dir() else []
    lines = [f"{r['model']:30s} {r['precision']:5s} TensorRT {r['tensorrt']} {r['gpu']}  "
             f"{r['engine']}" for r in rows]
    lines += [f"{'(no sidecar: rebuilt on the next build)':36s}  {e}" for e in orphans]
    emit(args.json, {"dir": str(root), "engines": rows, "without_sidecar": orphans},
         lines or [f"no engines in {root} (run `facewatch tensorrt build` on the GPU box)"])
    return 0


def _fp16(args: argparse.Namespace) -> int:
    from facewatch.engines.backends.tensorrt.fp16 import fp16_variant

    store = store_from(args)
    rows = []
    for name in (*catalog.MTCNN_NAMES.values(), *(args.embedder or [catalog.DEFAULT_EMBEDDER])):
        path, made = fp16_variant(store, name)
        rows.append({"model": path.stem, "manifest": str(path), "made": made})
    emit(args.json, {"models": rows},
         [f"{r['model']:30s} {'made' if r['made'] else 'up to date'}  {r['manifest']}"
          for r in rows])
    return 0
