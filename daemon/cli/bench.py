"""`facewatch bench detect|embed|pipeline|library|soak`: speed figures on real frames, and a soak run."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from facewatch.cli.common import add_recognition_options, pipeline_from
from facewatch.cli.output import emit
from facewatch.detection.settings import GateSettings
from facewatch.errors import BadInputError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("bench", help="measure speed on real frames")
    bsub = p.add_subparsers(dest="bench_command", metavar="WHAT", required=True)
    d = bsub.add_parser("detect", parents=[common], help="MTCNN time per frame, whole or gated")
    d.add_argument("--source", type=Path, required=True, metavar="FILE",
                   help="a video file (or folder of images) to take frames from")
    d.add_argument("--frames", type=int, default=300,
                   help="frames to time (default: 300; a video is played again from the start "
                        "until there are enough)")
    d.add_argument("--fps", type=float, default=10.0,
                   help="take frames at this rate, as the daemon analyses a camera "
                        "(default: 10; 0: every frame)")
    d.add_argument("--mode", choices=["full", "gated"], default="full",
                   help="full: the whole frame every frame; gated: what the daemon runs per "
                        "camera (motion, tracked faces refreshed, periodic full frames), with "
                        "its recall against the full detector on the same frames")
    d.add_argument("--still", action="store_true",
                   help="a static scene: the source's first frame again and again, with fresh "
                        "sensor noise and JPEG artefacts in each")
    d.add_argument("--full-frame-every", type=float, default=GateSettings.full_frame_every_s,
                   metavar="S", help="gated: the whole frame at least every S seconds "
                                     f"(default: {GateSettings.full_frame_every_s:g})")
    d.add_argument("--motion-threshold", type=float, default=GateSettings.motion_threshold,
                   metavar="L", help="gated: grey levels a pixel must change by "
                                     f"(default: {GateSettings.motion_threshold:g})")
    add_recognition_options(d, embedder=False)
    d.set_defaults(handler=_detect)
    e = bsub.add_parser("embed", parents=[common], help="embedder faces per second")
    e.add_argument("--source", type=Path, required=True, metavar="FILE",
                   help="a video file (or folder of images) whose detected faces are embedded")
    e.add_argument("--batch", type=int, default=1, help="faces per embedder call (default: 1)")
    e.add_argument("--seconds", type=float, default=10.0, help="how long to run (default: 10)")
    add_recognition_options(e)
    e.set_defaults(handler=_embed)
    try:
        from facewatch.bench.pipeline import register as register_pipeline
    except ImportError:
        pass
    else:
        register_pipeline(bsub, common)
    from facewatch.bench.library import register as register_library

    register_library(bsub, common)
    try:
        from facewatch.bench.soak import register as register_soak
    except ImportError:
        pass
    else:
        register_soak(bsub, common)


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


class _TimedRunner:
    """A runner that adds up its time and batch sizes (for `bench detect`'s breakdown)."""

    def __init__(self, runner: Any) -> None:
        self.runner, self.seconds, self.inputs = runner, 0.0, 0

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        t = time.perf_counter()
        out: dict[str, np.ndarray] = self.runner.run(inputs)
        self.seconds += time.perf_counter() - t
        self.inputs += next(iter(inputs.values())).shape[0]
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self.runner, name)


def _detect(args: argparse.Namespace) -> int:
    from facewatch.bench import detect as bench
    from facewatch.bench.sources import sample_frames, still_frames

    if args.frames < 1:
        raise BadInputError("--frames must be at least 1")
    if args.fps < 0:
        raise BadInputError("--fps must be 0 (every frame) or more")
    if args.full_frame_every < 0:
        raise BadInputError("--full-frame-every must be 0 or more seconds")
    fps = args.fps or None
    pipeline = pipeline_from(args, with_embedder=False)
    if args.still:
        first, _, _ = sample_frames(args.source, 1, None, loop=False)
        frames, passes = still_frames(first[0], args.frames), 1
        times = [i / (fps or 10.0) for i in range(len(frames))]
    else:
        frames, times, passes = sample_frames(args.source, args.frames, fps)
    detector = pipeline.detector
    for f in frames[:3]:  # warm-up: first calls allocate and plan
        detector.detect(f)
    gate = GateSettings(min_face=args.min_face, full_frame_every_s=args.full_frame_every,
                        motion_threshold=args.motion_threshold)
    reference = bench.full_pass(detector, frames, args.min_face) if args.mode == "gated" else None
    nets = {name: _TimedRunner(getattr(detector, name)) for name in ("pnet", "rnet", "onet")}
    detector.pnet, detector.rnet, detector.onet = nets["pnet"], nets["rnet"], nets["onet"]
    wall0 = time.perf_counter()
    if args.mode == "gated":
        run = bench.gated_pass(detector, frames, times, gate)
    else:
        run = bench.full_pass(detector, frames, args.min_face)
    wall = time.perf_counter() - wall0
    ms = np.array(run.seconds) * 1000
    faces = sum(len(d) for d in run.detections)
    with_faces = sum(len(d) > 0 for d in run.detections)
    h, w = frames[0].shape[:2]
    n = len(frames)
    cpu_per_frame = run.cpu_seconds / n
    doc: dict[str, Any] = {
        "mode": args.mode, "source": str(args.source), "still": args.still,
        "ms_per_frame_median": float(np.median(ms)), "ms_per_frame_p90": float(np.percentile(ms, 90)),
        "ms_per_frame_mean": float(ms.mean()), "faces_found": faces,
        "frames_with_faces": with_faces, "frames": n, "passes_over_source": passes,
        "frame_size": [w, h], "fps": fps, "min_face": args.min_face, "threads": args.threads,
        "cpu_cores_used": run.cpu_seconds / wall if wall else 0.0,
        "cpu_ms_per_frame": 1000 * cpu_per_frame,
        # what one camera at this frame rate costs: CPU seconds per second, as % of one core
        "core_percent_at_fps": 100 * cpu_per_frame * (fps or 0.0)}
    # Where the mean frame's time goes: each network, and the rest (pyramid, crops, NMS, motion).
    stages = {name: 1000 * net.seconds / n for name, net in nets.items()}
    stages["outside_networks"] = float(ms.mean()) - sum(stages.values())
    doc["ms_per_frame_mean_by_stage"] = stages
    doc["inputs_per_frame_mean"] = {name: net.inputs / n for name, net in nets.items()}
    lines = [
        f"MTCNN, {args.mode}, on {n} frames of {w}x{h}"
        + (f" at {fps:g} fps" if fps else "") + (" (a still scene)" if args.still else "")
        + f", min face {args.min_face:g} px, {args.threads} thread(s)",
        f"median {doc['ms_per_frame_median']:.1f} ms/frame, mean {ms.mean():.1f}, "
        f"p90 {doc['ms_per_frame_p90']:.1f} ms; {doc['cpu_cores_used']:.2f} cores busy, "
        f"{doc['cpu_ms_per_frame']:.2f} ms CPU/frame"
        + (f" = {doc['core_percent_at_fps']:.1f} % of a core at {fps:g} fps" if fps else ""),
        f"faces found {faces} in {with_faces} frames",
        f"mean {ms.mean():.1f} ms/frame = P-Net {stages['pnet']:.1f} + R-Net {stages['rnet']:.1f} "
        f"({doc['inputs_per_frame_mean']['rnet']:.0f} crops) + O-Net {stages['onet']:.1f} "
        f"({doc['inputs_per_frame_mean']['onet']:.0f} crops) + {stages['outside_networks']:.1f} "
        f"outside the networks",
    ]
    if reference is not None:
        kinds = {k: run.kinds.count(k) for k in ("none", "refresh", "regions", "full")}
        ref_ms = np.array(reference.seconds) * 1000
        r = bench.recall(reference.detections, bench.track(reference.detections, times),
                         run.detections, run.tracks)
        doc.update({
            "frames_by_work": kinds,
            "full_frame_every_s": args.full_frame_every,
            "recall_per_frame": r.per_frame, "recall_per_track": r.per_track,
            "reference": {"faces": r.faces, "tracks": r.tracks,
                          "ms_per_frame_median": float(np.median(ref_ms)),
                          "ms_per_frame_mean": float(ref_ms.mean())},
            "faces_missed": r.faces - r.faces_found, "faces_extra": r.extra,
            "tracks_missed": r.tracks - r.tracks_found,
            "track_delay_frames_max": max(r.delays, default=0),
            "tracks_delayed": sum(1 for d in r.delays if d > 0)})
        lines += [
            "frames that ran: " + ", ".join(f"{v} {k}" for k, v in kinds.items()),
            f"recall against the full detector on the same frames: per frame "
            f"{100 * r.per_frame:.1f} % ({r.faces_found}/{r.faces} faces), per track "
            f"{100 * r.per_track:.1f} % ({r.tracks_found}/{r.tracks}; "
            f"{doc['tracks_delayed']} confirmed later, by at most {doc['track_delay_frames_max']} "
            f"frame(s)); {r.extra} faces only the gated pass found",
            f"the full detector on the same frames: median {np.median(ref_ms):.1f}, "
            f"mean {ref_ms.mean():.1f} ms/frame"]
    emit(args.json, doc, lines)
    return 0


def _embed(args: argparse.Namespace) -> int:
    from facewatch.bench.sources import read_frames

    if args.batch < 1:
        raise BadInputError("--batch must be at least 1")
    pipeline = pipeline_from(args)
    assert pipeline.embedder is not None
    crops = [a.crops for a in pipeline.analyze(read_frames(args.source, 100), embed=False)]
    pool = np.concatenate(crops) if crops else np.zeros((0, 112, 112, 3), np.uint8)
    if pool.shape[0] == 0:
        raise BadInputError(f"{args.source}: no faces found to embed")
    reps = int(np.ceil(args.batch / pool.shape[0]))
    pool = np.concatenate([pool] * max(reps, 1))
    embedder = pipeline.embedder
    embedder.embed(pool[: args.batch])
    done, i = 0, 0
    cpu0, wall0 = _cpu_seconds(), time.perf_counter()
    while time.perf_counter() - wall0 < args.seconds:
        start = (i * args.batch) % (pool.shape[0] - args.batch + 1)
        embedder.embed(pool[start:start + args.batch])
        done += args.batch
        i += 1
    wall, cpu = time.perf_counter() - wall0, _cpu_seconds() - cpu0
    doc = {"faces_per_s": done / wall, "ms_per_face": 1000 * wall / done, "batch": args.batch,
           "threads": args.threads, "embedder": args.embedder, "flip": args.flip,
           "faces": done, "seconds": wall, "cpu_cores_used": cpu / wall}
    emit(args.json, doc, [
        f"{args.embedder} (flip {args.flip}), batch {args.batch}, {args.threads} thread(s)",
        f"{doc['faces_per_s']:.0f} faces/s ({doc['ms_per_face']:.2f} ms/face), "
        f"{cpu / wall:.2f} cores busy",
    ])
    return 0
