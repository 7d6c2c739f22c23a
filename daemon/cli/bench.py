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
from facewatch.errors import BadInputError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("bench", help="measure speed on real frames")
    bsub = p.add_subparsers(dest="bench_command", metavar="WHAT", required=True)
    d = bsub.add_parser("detect", parents=[common], help="MTCNN time per frame")
    d.add_argument("--source", type=Path, required=True, metavar="FILE",
                   help="a video file (or folder of images) to take frames from")
    d.add_argument("--frames", type=int, default=300, help="frames to time (default: 300)")
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
    from facewatch.bench.sources import read_frames

    if args.frames < 1:
        raise BadInputError("--frames must be at least 1")
    pipeline = pipeline_from(args, with_embedder=False)
    frames = read_frames(args.source, args.frames)
    for f in frames[:3]:  # warm-up: first calls allocate and plan
        pipeline.detector.detect(f)
    detector = pipeline.detector
    nets = {name: _TimedRunner(getattr(detector, name)) for name in ("pnet", "rnet", "onet")}
    detector.pnet, detector.rnet, detector.onet = nets["pnet"], nets["rnet"], nets["onet"]
    times, faces, with_faces = [], 0, 0
    cpu0, wall0 = _cpu_seconds(), time.perf_counter()
    for f in frames:
        t = time.perf_counter()
        det = pipeline.detector.detect(f)
        times.append(time.perf_counter() - t)
        faces += len(det)
        with_faces += len(det) > 0
    wall, cpu = time.perf_counter() - wall0, _cpu_seconds() - cpu0
    ms = np.array(times) * 1000
    h, w = frames[0].shape[:2]
    doc = {"ms_per_frame_median": float(np.median(ms)), "ms_per_frame_p90": float(np.percentile(ms, 90)),
           "ms_per_frame_mean": float(ms.mean()), "faces_found": faces,
           "frames_with_faces": with_faces, "frames": len(frames), "frame_size": [w, h],
           "min_face": args.min_face, "threads": args.threads,
           "cpu_cores_used": cpu / wall if wall else 0.0}
    # Where the mean frame's time goes: each network, and the rest (pyramid, crops, NMS).
    stages = {name: 1000 * net.seconds / len(frames) for name, net in nets.items()}
    stages["outside_networks"] = float(ms.mean()) - sum(stages.values())
    doc["ms_per_frame_mean_by_stage"] = stages
    doc["inputs_per_frame_mean"] = {name: net.inputs / len(frames) for name, net in nets.items()}
    emit(args.json, doc, [
        f"MTCNN on {len(frames)} frames of {w}x{h}, min face {args.min_face:g} px, "
        f"{args.threads} thread(s)",
        f"median {doc['ms_per_frame_median']:.1f} ms/frame, p90 {doc['ms_per_frame_p90']:.1f} ms, "
        f"{cpu / wall:.2f} cores busy",
        f"faces found {faces} in {with_faces} frames",
        f"mean {ms.mean():.1f} ms/frame = P-Net {stages['pnet']:.1f} + R-Net {stages['rnet']:.1f} "
        f"({doc['inputs_per_frame_mean']['rnet']:.0f} crops) + O-Net {stages['onet']:.1f} "
        f"({doc['inputs_per_frame_mean']['onet']:.0f} crops) + {stages['outside_networks']:.1f} "
        f"outside the networks",
    ])
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
