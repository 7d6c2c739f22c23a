"""`facewatch calibrate`: INT8 variants of the models, calibrated on real frames and gated.

    facewatch calibrate --video clip.mp4 --frames 500 [--images DIR] [--gallery G]
                        [--lfw DIR --pairs FILE] [--detector-photos DIR] [--json]

Writes `<name>.int8.onnx` + `<name>.int8.json` beside the FP32 models; `--precision int8` on
the CLI and `inference.precision: int8` in config then load them.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import platformdirs

from facewatch.calibration.sources import FrameSource
from facewatch.cli.common import add_recognition_options, settings_from, store_from
from facewatch.cli.output import emit
from facewatch.errors import EXIT_FAILURE, BadInputError


def register(sub: argparse._SubParsersAction,  # type: ignore[type-arg]
             common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("calibrate", parents=[common],
                       help="make INT8 models from real frames, with an accuracy gate")
    src = p.add_argument_group("calibration set (one or more)")
    src.add_argument("--video", type=Path, metavar="FILE",
                     help="sample frames evenly from this video")
    src.add_argument("--frames", type=int, default=500, metavar="N",
                     help="frames to sample from --video or --camera (default: 500)")
    src.add_argument("--images", type=Path, action="append", default=[], metavar="DIR",
                     help="every image under this folder (repeatable)")
    src.add_argument("--gallery", type=Path, metavar="G", help="the images of a gallery")
    src.add_argument("--camera", metavar="NAME", help="frames from a camera in --config")
    src.add_argument("--config", type=Path, metavar="FILE", help="daemon config naming --camera")
    gate = p.add_argument_group("accuracy gate")
    gate.add_argument("--lfw", type=Path, metavar="DIR",
                      help="LFW images: measure the embedder's LFW accuracy at both precisions")
    gate.add_argument("--pairs", type=Path, metavar="FILE", help="LFW's pairs.txt (with --lfw)")
    gate.add_argument("--detector-photos", type=Path, metavar="DIR",
                      help="photos for the detector's recall: dlib-annotated (*.xml boxes) or "
                           "plain (FP32's detections are the reference)")
    gate.add_argument("--cache", type=Path, metavar="FILE",
                      help="analysis cache for the LFW runs (default: in the per-user cache dir)")
    gate.add_argument("--no-cache", action="store_true", help="analyse every LFW image afresh")
    gate.add_argument("--no-speed-check", action="store_true",
                      help="do not require INT8 detector nets to be faster on this machine "
                           "(for a TensorRT box, where CPU speed says nothing)")
    gate.add_argument("--force", action="store_true",
                      help="write INT8 models even where the gate refuses them")
    q = p.add_argument_group("quantisation")
    q.add_argument("--nets", default="embedder,pnet,rnet,onet", metavar="LIST",
                   help="nets to calibrate (default: embedder,pnet,rnet,onet)")
    q.add_argument("--method", choices=["minmax", "percentile", "entropy"], default="minmax",
                   help="ONNX Runtime calibration method (default: minmax; P-Net always minmax)")
    add_recognition_options(p)
    p.set_defaults(handler=_calibrate)


def _sources(args: argparse.Namespace) -> list[FrameSource]:
    from facewatch.calibration import sources

    if args.frames < 1:
        raise BadInputError(f"--frames {args.frames}: must be at least 1")
    out = []
    if args.video:
        out.append(sources.video_source(args.video, args.frames))
    for folder in args.images or []:
        out.append(sources.folder_source(folder))
    if args.gallery:
        out.append(sources.gallery_source(args.gallery))
    if args.camera:
        if not args.config:
            raise BadInputError("--camera needs --config (the daemon config that names it)")
        out.append(sources.camera_source(args.config, args.camera, args.frames))
    return out


def _calibrate(args: argparse.Namespace) -> int:
    from facewatch.calibration.run import CalibrationOptions, calibrate
    from facewatch.calibration.sources import chain

    if args.precision != "fp32" or args.backend != "onnxruntime":
        raise BadInputError("calibrate always starts from the FP32 models on ONNX Runtime; "
                            "drop --precision/--backend")
    source = chain(_sources(args))
    cache = None if args.no_cache else (
        args.cache or platformdirs.user_cache_path("facewatch") / "analysis.sqlite")
    options = CalibrationOptions(
        nets=tuple(n.strip() for n in args.nets.split(",") if n.strip()), method=args.method,
        force=args.force, lfw_dir=args.lfw, pairs=args.pairs, analysis_cache=cache,
        detector_photos=args.detector_photos, speed_check=not args.no_speed_check)
    report = calibrate(store_from(args), settings_from(args), source, options)
    lines = [f"calibration set: {report.source}; {report.frames} frames, {report.faces} faces"]
    for r in report.results:
        lines.append(f"{r.name:24s} {r.decision:8s} {r.reason}")
        lines += [f"    {line}" for line in _gate_lines(r.gate)]
        if r.manifest:
            lines.append(f"    wrote {r.manifest}")
    emit(args.json, report.as_dict(), lines)
    return EXIT_FAILURE if report.refused else 0


def _gate_lines(g: dict[str, Any]) -> list[str]:
    out = []
    a = g.get("agreement")
    if a and "cosine_mean" in a:
        out.append(f"cosine to FP32 on {a['crops']} held-out crops: mean {a['cosine_mean']:.4f}, "
                   f"min {a['cosine_min']:.4f}")
    lfw = g.get("lfw")
    if lfw:
        out.append(f"LFW {100 * lfw['fp32_accuracy']:.2f} % -> {100 * lfw['int8_accuracy']:.2f} % "
                   f"({lfw['delta_pp']:+.2f} pp)")
    if "recall_fp32" in g:
        out.append(f"recall on {g['faces_annotated']} faces in {g['photos']} photos: "
                   f"{100 * g['recall_fp32']:.1f} % -> {100 * g['recall_int8']:.1f} %")
    if "faces_found_fp32" in g:
        out.append(f"faces found on {g['frames']} frames: {g['faces_found_fp32']} -> "
                   f"{g['faces_found_int8']}")
    s = g.get("speed")
    if s:
        out.append(f"time per pass: FP32 {s['fp32_ms']:.1f} ms, INT8 {s['int8_ms']:.1f} ms "
                   f"({s['speedup']:.2f}x)")
    return out
