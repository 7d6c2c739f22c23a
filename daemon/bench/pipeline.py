"""`facewatch bench pipeline`: the real daemon on N copies of a video, measured from outside.

The daemon runs as a subprocess, exactly as `facewatch run` starts it, with N file cameras
playing the source in real time and in a loop (so they behave like cameras).  Figures come from
what a user could observe: events on ZeroMQ, the Prometheus endpoint, and /proc for CPU time
(per process: the supervisor, the inference process, the publisher, each camera's source
process) and memory (PSS, which splits shared pages between the processes sharing them, so
the tree's total is what the daemon really occupies).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

from facewatch.cli.output import emit
from facewatch.errors import BadInputError


def register(bsub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = bsub.add_parser("pipeline", parents=[common],
                        help="the whole daemon on N streams: analysed fps, CPU, latency")
    p.add_argument("--streams", type=int, default=4, help="simultaneous streams (default: 4)")
    p.add_argument("--source", type=Path, required=True, metavar="FILE",
                   help="video every stream plays (in a loop, at its native rate)")
    p.add_argument("--fps", type=float, default=10.0, help="analysis rate per stream (default: 10)")
    p.add_argument("--seconds", type=float, default=60.0, help="measured duration (default: 60)")
    p.add_argument("--warmup", type=float, default=10.0, help="seconds ignored at the start")
    p.add_argument("--gallery", type=Path, metavar="G",
                   help="gallery to recognise against (default: an empty one)")
    p.add_argument("--min-face", type=float, default=40.0, metavar="PX")
    p.add_argument("--embedder", metavar="NAME")
    p.add_argument("--precision", default="fp32", choices=["fp32", "int8"])
    p.add_argument("--still", action="store_true",
                   help="every stream plays a static scene instead: the source's first frame "
                        "with sensor noise, as an MPEG-4 video at --fps (a camera watching an "
                        "empty room)")
    p.add_argument("--no-library", action="store_true",
                   help="run without the face library (compare its cost: the library is on by "
                        "default, as in the daemon)")
    p.add_argument("--no-motion", action="store_true",
                   help="switch detection gating off (inference.motion: false): the whole frame "
                        "every frame, to compare")
    p.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None,
                   help="embed the mirrored face too (default: the daemon's)")
    p.set_defaults(handler=_bench)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tree(pid: int) -> list[int]:
    """A process and all its descendants (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def _role(pid: int, root: int) -> str:
    """What a process of the daemon's tree is: supervisor, inference, publisher, library, api,
    source (a camera's), or other (multiprocessing's resource tracker and forkserver)."""
    if pid == root:
        return "supervisor"
    try:
        name = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "other"
    for role in ("source", "inference", "publisher", "library", "api"):
        if name.startswith(f"fw.{role}"):
            return role
    return "other"


def _tree_cpu(pid: int) -> dict[int, float]:
    """utime + stime of a process and each of its descendants, in seconds, by pid."""
    ticks = os.sysconf("SC_CLK_TCK")
    out = {}
    for p in _tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[p] = (int(fields[11]) + int(fields[12])) / ticks
    return out


def tree_memory(pid: int) -> dict[int, dict[str, float]]:
    """PSS and RSS (MiB) of a process and each of its descendants, by pid."""
    out = {}
    for p in _tree(pid):
        values: dict[str, float] = {}
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines()[1:]:
                key, _, rest = line.partition(":")
                if key in ("Pss", "Rss"):
                    values[key.lower()] = int(rest.split()[0]) / 1024
        except (OSError, ValueError, IndexError):
            continue
        out[p] = values
    return out


def scrape_metrics(port: int) -> dict[str, float]:
    """Prometheus text → {"name{labels}": value}."""
    out: dict[str, float] = {}
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                out[key] = float(value)
    return out


def _per_camera(metrics: dict[str, float], name: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if key.startswith(name + "{"):
            cam = key.split('camera="', 1)[1].split('"', 1)[0]
            out[cam] = out.get(cam, 0.0) + value
    return out


def _bench(args: argparse.Namespace) -> int:
    import zmq

    if not args.source.is_file():
        raise BadInputError(f"{args.source}: no such file")
    if not 1 <= args.streams <= 64:
        raise BadInputError("--streams must be between 1 and 64")
    work = Path(tempfile.mkdtemp(prefix="facewatch-bench-"))
    source = args.source.resolve()
    if args.still:
        from facewatch.bench.sources import sample_frames, write_still_video

        first, _, _ = sample_frames(args.source, 1, None, loop=False)
        source = write_still_video(first[0], work / "still.mp4", seconds=30.0, fps=args.fps)
    gallery = args.gallery
    if gallery is None:
        gallery = work / "gallery.yaml"
        gallery.write_text("people: []\n")
    zmq_port, metrics_port = _free_port(), _free_port()
    config = {
        "cameras": [{"name": f"s{i}", "url": str(source), "fps": args.fps,
                     "realtime": True, "loop": True} for i in range(args.streams)],
        "gallery": str(gallery.resolve()),
        "outputs": {"zmq": {"bind": f"tcp://127.0.0.1:{zmq_port}"}},
        "state_dir": str(work / "state"),
        "inference": {"min_face": args.min_face, "threads": args.threads,
                      "precision": args.precision, "motion": not args.no_motion,
                      **({"embedder": args.embedder} if args.embedder else {}),
                      **({"flip": args.flip} if args.flip is not None else {}),
                      **({"models_dir": str(args.models)} if args.models else {})},
        "snapshots": {"enabled": False},
        "metrics": {"port": metrics_port},
        # the page is not part of the pipeline, and its port must not clash with a daemon
        "api": {"enabled": False},
        "library": {"enabled": not args.no_library},
    }
    config_path = work / "config.yaml"
    config_path.write_text(json.dumps(config))  # JSON is YAML

    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(f"tcp://127.0.0.1:{zmq_port}")
    proc = subprocess.Popen([sys.executable, "-m", "facewatch", "run", "--config", str(config_path)],
                            stdout=subprocess.DEVNULL, stderr=open(work / "daemon.log", "wb"))
    events: list[dict[str, Any]] = []
    try:
        started = time.monotonic()
        measure_from = started + args.warmup
        end = measure_from + args.seconds
        snapshot: tuple[float, dict[int, float], dict[str, float]] | None = None
        wall_from = float("inf")
        while time.monotonic() < end:
            if proc.poll() is not None:
                raise BadInputError(f"the daemon exited with code {proc.returncode}; "
                                    f"see {work / 'daemon.log'}")
            if snapshot is None and time.monotonic() >= measure_from:
                try:
                    snapshot = (time.monotonic(), _tree_cpu(proc.pid), scrape_metrics(metrics_port))
                    wall_from = time.time()
                except OSError:
                    measure_from += 1.0  # metrics not up yet (models still loading)
            if sub.poll(200):
                _topic, body = sub.recv_multipart()
                event = json.loads(body)
                event["_received"] = time.time()
                events.append(event)
        if snapshot is None:
            raise BadInputError(f"the daemon never served metrics; see {work / 'daemon.log'}")
        t1, cpu1, m1 = time.monotonic(), _tree_cpu(proc.pid), scrape_metrics(metrics_port)
        memory = tree_memory(proc.pid)
        roles = {pid: _role(pid, proc.pid) for pid in {*cpu1, *memory}}
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        sub.close(0)
        ctx.term()
    t0, cpu0, m0 = snapshot
    seconds = t1 - t0
    analysed0, analysed1 = (_per_camera(m, "facewatch_frames_analysed_total") for m in (m0, m1))
    decoded0, decoded1 = (_per_camera(m, "facewatch_frames_decoded_total") for m in (m0, m1))
    dropped0, dropped1 = (_per_camera(m, "facewatch_frames_dropped_total") for m in (m0, m1))
    fps = {c: (analysed1.get(c, 0) - analysed0.get(c, 0)) / seconds for c in analysed1}
    dropped = {c: dropped1.get(c, 0) - dropped0.get(c, 0) for c in analysed1}
    work0, work1 = (_per_camera_and(m, "facewatch_detector_frames_total", "work") for m in (m0, m1))
    detector_work = {c: {k: int(v - work0.get(c, {}).get(k, 0)) for k, v in kinds.items()}
            for c, kinds in work1.items()}
    # CPU per role over the measured span (a process restarted meanwhile counts from 0)
    cores: dict[str, float] = {}
    for pid, total in cpu1.items():
        role = roles.get(pid, "other")
        cores[role] = cores.get(role, 0.0) + (total - cpu0.get(pid, 0.0)) / seconds
    pss: dict[str, float] = {}
    for pid, values in memory.items():
        pss[roles.get(pid, "other")] = pss.get(roles.get(pid, "other"), 0.0) + values.get("pss", 0.0)
    sources = sum(1 for r in roles.values() if r == "source")
    measured = [e for e in events if e["_received"] >= wall_from]
    latency = np.array([e["published_ts"] - e["ts"] for e in measured
                        if e["type"] != "camera.status"]) * 1000
    first_recognition = _first_recognition_ms(measured)
    doc = {
        "streams": args.streams, "source": str(args.source), "fps_target": args.fps,
        "seconds": seconds, "analysed_fps_per_stream": fps,
        "analysed_fps_total": float(sum(fps.values())),
        "decoded_fps_total": float(sum(decoded1.values()) - sum(decoded0.values())) / seconds,
        "dropped_frames": dropped,
        "cpu_cores_used": sum(cores.values()),
        "cpu_cores_by_role": cores,
        "cpu_cores_per_camera": sum(cores.values()) / args.streams,
        "inference_cores_per_camera": cores.get("inference", 0.0) / args.streams,
        "detector_frames_by_work": detector_work,
        "pss_mib_total": sum(pss.values()),
        "pss_mib_by_role": pss,
        "pss_mib_per_source_process": pss.get("source", 0.0) / max(1, sources),
        "processes": {str(pid): {"role": roles.get(pid, "other"), **values}
                      for pid, values in memory.items()},
        "still": args.still, "motion": not args.no_motion, "library": not args.no_library,
        "library_faces_stored": sum(v for k, v in m1.items()
                                    if k.startswith("facewatch_library_faces_stored_total")),
        "event_latency_ms_p50": float(np.percentile(latency, 50)) if latency.size else None,
        "event_latency_ms_p99": float(np.percentile(latency, 99)) if latency.size else None,
        "events": len(measured),
        "first_recognition_ms_p50": (float(np.median(first_recognition))
                                     if first_recognition else None),
        "recognitions": len(first_recognition),
        "min_face": args.min_face, "threads": args.threads, "precision": args.precision,
    }
    totals: dict[str, int] = {}
    for kinds in detector_work.values():
        for k, v in kinds.items():
            totals[k] = totals.get(k, 0) + v
    lines = [f"{args.streams} stream(s) of {'a still scene from ' if args.still else ''}"
             f"{args.source.name} at {args.fps:g} fps, {seconds:.0f} s measured"
             + ("" if not args.no_motion else ", gating off")
             + (", face library off" if args.no_library else
                f", face library on ({doc['library_faces_stored']:.0f} faces stored)"),
             "analysed fps per stream: " + ", ".join(f"{c} {v:.1f}" for c, v in sorted(fps.items())),
             f"total {doc['analysed_fps_total']:.1f} analysed fps, "
             f"{doc['decoded_fps_total']:.0f} decoded fps, {doc['cpu_cores_used']:.2f} cores busy "
             f"({doc['cpu_cores_per_camera']:.3f} per camera): "
             + ", ".join(f"{r} {v:.2f}" for r, v in sorted(cores.items())),
             "detector per frame: " + ", ".join(f"{k} {v}" for k, v in sorted(totals.items())),
             f"dropped before analysis: {sum(dropped.values()):.0f} frames",
             f"memory (PSS) {doc['pss_mib_total']:.0f} MiB: "
             + ", ".join(f"{r} {v:.0f}" for r, v in sorted(pss.items()))
             + f" ({doc['pss_mib_per_source_process']:.0f} per source process)"]
    if latency.size:
        lines.append(f"capture → publish: p50 {doc['event_latency_ms_p50']:.0f} ms, "
                     f"p99 {doc['event_latency_ms_p99']:.0f} ms over {latency.size} events")
    if first_recognition:
        lines.append(f"track start → face.recognized published: p50 "
                     f"{doc['first_recognition_ms_p50']:.0f} ms over {len(first_recognition)} tracks")
    emit(args.json, doc, lines)
    return 0


def _per_camera_and(metrics: dict[str, float], name: str, label: str) -> dict[str, dict[str, float]]:
    """{camera: {label value: value}} of a counter with a camera and one more label."""
    out: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        if key.startswith(name + "{"):
            cam = key.split('camera="', 1)[1].split('"', 1)[0]
            other = key.split(f'{label}="', 1)[1].split('"', 1)[0]
            out.setdefault(cam, {})[other] = out.get(cam, {}).get(other, 0.0) + value
    return out


def _first_recognition_ms(events: list[dict[str, Any]]) -> list[float]:
    """For each track named at least once: from its track.started frame to the publication of
    its first face.recognized.  (track.started is sent on the track's second detection, so
    the face was first seen one analysis interval earlier.)"""
    started: dict[tuple[str, int], float] = {}
    out = []
    for e in events:
        key = (e["camera"], e.get("track_id", -1))
        if e["type"] == "track.started":
            started[key] = e["ts"]
        elif e["type"] == "face.recognized" and key in started:
            out.append((e["published_ts"] - started.pop(key)) * 1000)
    return out
