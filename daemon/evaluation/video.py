"""`facewatch eval video`: the daemon's per-camera path on a clip, as fast as it runs, per track.

The clip is sampled at a camera's analysis rate and goes through the same stages as in the
daemon: MTCNN on batches of frames, the tracker, the embedding policy, the embedder and the
identity stage against the gallery.  A track is reported as the daemon publishes it: when the
identity stage finds another person in a track's box, the track is split there.

Expectations (`--expect`) say who must be named and who must not:

- `ID`: some track is named ID;
- `ID=T0-T1` or `ID=T0-T1@X1,Y1,X2,Y2`: the tracks seen mostly in that time (seconds) and, if
  given, with their face's centre mostly in that region (pixels) include one named ID, and
  none of them is named anyone else;
- `unknown=T0-T1[@...]`: no track there is named;
- `nobody`: no track is named at all.
Besides, nobody but the expected IDs may be named anywhere.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from facewatch.errors import BadInputError
from facewatch.gallery.gallery import Gallery
from facewatch.identity import (
    Changed,
    GalleryMatcher,
    IdentitySettings,
    IdentityStage,
    Recognized,
    Unknown,
    observations,
)
from facewatch.pipeline import FacePipeline
from facewatch.streams.decimation import Decimator
from facewatch.tracking import EmbedPolicy, FaceTracker

_EXPECT = re.compile(r"^(?P<who>[A-Za-z0-9][A-Za-z0-9_.@-]*)"
                     r"(?:=(?P<t0>[0-9.]+)-(?P<t1>[0-9.]+)"
                     r"(?:@(?P<box>[0-9.]+,[0-9.]+,[0-9.]+,[0-9.]+))?)?$")
UNKNOWN_ID = "unknown"
NOBODY = "nobody"
_OTHERS = "*"  # the check that nobody but the expected people is named


@dataclass(frozen=True)
class Expectation:
    who: str  # a person id, "unknown" or "nobody"
    start: float | None = None
    end: float | None = None
    region: tuple[float, float, float, float] | None = None

    def __str__(self) -> str:
        where = ""
        if self.start is not None:
            where = f" in {self.start:g}-{self.end:g} s"
        if self.region is not None:
            where += " at (" + ", ".join(f"{v:g}" for v in self.region) + ")"
        if self.who == NOBODY:
            return "nobody named"
        if self.who == _OTHERS:
            return "nobody else named"
        if self.who == UNKNOWN_ID:
            return f"nobody named{where}"
        return f"{self.who} named{where}"


def parse_expectation(text: str) -> Expectation:
    m = _EXPECT.match(text.strip())
    if m is None or (m["who"] == NOBODY and m["t0"] is not None):
        raise BadInputError(f"--expect {text!r}: expected ID, ID=T0-T1, ID=T0-T1@X1,Y1,X2,Y2, "
                            f"unknown=T0-T1[@...] or nobody")
    if m["who"] == UNKNOWN_ID and m["t0"] is None:
        raise BadInputError(f"--expect {text!r}: say where the face that must stay unknown is "
                            f"(unknown=T0-T1[@X1,Y1,X2,Y2]), or use `nobody`")
    start = end = None
    region = None
    if m["t0"] is not None:
        start, end = float(m["t0"]), float(m["t1"])
        if end < start:
            raise BadInputError(f"--expect {text!r}: the time range ends before it starts")
    if m["box"] is not None:
        x1, y1, x2, y2 = (float(v) for v in m["box"].split(","))
        if x2 <= x1 or y2 <= y1:
            raise BadInputError(f"--expect {text!r}: the region must be X1,Y1,X2,Y2 with "
                                f"X2 > X1 and Y2 > Y1")
        region = (x1, y1, x2, y2)
    return Expectation(m["who"], start, end, region)


@dataclass(frozen=True)
class VideoOptions:
    fps: float = 10.0  # frames analysed per second of video
    batch: int = 8  # frames per detector call, as the daemon's inference.max_batch
    min_margin: float | None = None  # None: IdentitySettings' default
    min_agreement: float | None = None
    borderline_views: int | None = None


@dataclass
class TrackReport:
    """One published track (a tracker track, split where another person took its box)."""

    track_id: int  # tracker id; a split track keeps it, with `part` counting up
    part: int
    first_ts: float
    last_ts: float = 0.0
    frames: int = 0  # frames with this track's face detected
    embeddings: int = 0
    person_id: str | None = None  # the last label
    name: str | None = None
    status: str = "pending"
    score: float | None = None  # similarity to the nearest person at the last decision
    margin: float | None = None
    nearest_id: str | None = None
    named: set[str] = field(default_factory=set)  # everyone it was ever named
    best: float | None = None  # its highest score
    # (ts, box) of each detection, for expectations
    seen: list[tuple[float, tuple[float, float, float, float]]] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.track_id}" + (f".{self.part}" if self.part else "")

    def as_dict(self) -> dict[str, Any]:
        return {"track": self.label, "first_ts": round(self.first_ts, 3),
                "last_ts": round(self.last_ts, 3), "frames": self.frames,
                "embeddings": self.embeddings, "status": self.status,
                "person_id": self.person_id, "name": self.name, "score": _r(self.score),
                "margin": _r(self.margin), "nearest_id": self.nearest_id,
                "named": sorted(self.named), "best_score": _r(self.best),
                "box": list(self.seen[len(self.seen) // 2][1]) if self.seen else None}


def _r(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


@dataclass(frozen=True)
class ExpectationResult:
    expectation: Expectation
    passed: bool
    detail: str


@dataclass
class VideoReport:
    video: Path
    frames: int
    fps: float
    detections: int
    embeddings: int
    threshold: str  # the gallery's operating point, in words
    tracks: list[TrackReport]
    results: list[ExpectationResult]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    def as_dict(self) -> dict[str, Any]:
        return {"video": str(self.video), "frames": self.frames, "fps": self.fps,
                "detections": self.detections, "embeddings": self.embeddings,
                "operating_point": self.threshold,
                "tracks": [t.as_dict() for t in self.tracks],
                "expectations": [{"expect": str(r.expectation), "passed": r.passed,
                                  "detail": r.detail} for r in self.results],
                "passed": self.passed}

    def lines(self) -> list[str]:
        out = [f"{self.video.name}: {self.frames} frames analysed at {self.fps:g} fps, "
               f"{self.detections} faces, {self.embeddings} embedded; {self.threshold}",
               f"{'track':>6} {'frames':>6} {'seen (s)':>11}  {'decision':<24} {'score':>6} "
               f"{'margin':>6}  nearest"]
        for t in self.tracks:
            decision = t.name or t.person_id or t.status
            if t.named - {t.person_id}:
                decision += f" (was {', '.join(sorted(t.named - {t.person_id}))})"
            out.append(f"{t.label:>6} {t.frames:>6} {t.first_ts:5.2f}-{t.last_ts:5.2f}  "
                       f"{decision:<24} {_f(t.score):>6} {_f(t.margin):>6}  {t.nearest_id or '-'}")
        for r in self.results:
            out.append(f"{'PASS' if r.passed else 'FAIL'}  {r.expectation}: {r.detail}")
        if self.results:
            out.append("all expectations met" if self.passed else "expectations NOT met")
        return out


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def gallery_with_lfw(gallery: Path | None, lfw_dir: Path, people: int, state_dir: Path) -> Path:
    """A gallery YAML (written under `state_dir`) holding the people of `gallery`, if any, and
    the first photo of `people` LFW people spread evenly over its sorted folders."""
    import yaml

    from facewatch.gallery.spec import load_gallery_spec

    if not lfw_dir.is_dir():
        raise BadInputError(f"{lfw_dir}: not a directory (--lfw expects LFW's per-person folders)")
    folders = sorted(d for d in lfw_dir.iterdir() if d.is_dir() and any(d.glob("*.jpg")))
    if not 1 <= people <= len(folders):
        raise BadInputError(f"--lfw-people {people}: {lfw_dir} has {len(folders)} people")
    picked = [folders[i * len(folders) // people] for i in range(people)]
    entries: list[dict[str, Any]] = []
    if gallery is not None:
        for p in load_gallery_spec(gallery).people:
            entry: dict[str, Any] = {"id": p.id, "name": p.name,
                                     "images": [str(i) for i in p.images]}
            if p.not_images:
                entry["not"] = [str(i) for i in p.not_images]
            entries.append(entry)
    taken = {e["id"] for e in entries}
    for folder in picked:
        if folder.name not in taken:
            entries.append({"id": folder.name, "name": folder.name.replace("_", " "),
                            "images": [str(sorted(folder.glob("*.jpg"))[0])]})
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = state_dir / f"eval-gallery-{people}.yaml"
    path.write_text(yaml.safe_dump({"people": entries}, sort_keys=False))
    return path


def sampled_frames(video: Path, fps: float) -> Iterator[tuple[float, np.ndarray]]:
    """(stream time, RGB frame) at `fps`, decoded with OpenCV from the clip's own timeline."""
    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise BadInputError(f"{video}: cannot be opened as a video")
    native = cap.get(cv2.CAP_PROP_FPS) or 25.0
    decimator = Decimator(fps)
    index = 0
    try:
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            ts = index / native
            index += 1
            if decimator.take(ts):
                yield ts, np.ascontiguousarray(bgr[:, :, ::-1])
    finally:
        cap.release()


def run_video(video: Path, pipeline: FacePipeline, gallery: Gallery, options: VideoOptions,
              expectations: list[Expectation]) -> VideoReport:
    if pipeline.embedder is None:
        raise BadInputError("eval video needs an embedder")
    base = IdentitySettings()
    settings = dataclasses.replace(
        base, min_margin=base.min_margin if options.min_margin is None else options.min_margin,
        min_agreement=(base.min_agreement if options.min_agreement is None
                       else options.min_agreement),
        borderline_views=(base.borderline_views if options.borderline_views is None
                          else options.borderline_views))
    tracker, policy = FaceTracker(), EmbedPolicy()
    identity = IdentityStage(GalleryMatcher(gallery), settings)
    segments: dict[int, TrackReport] = {}
    done: list[TrackReport] = []
    wanted: tuple[int, ...] = ()
    frames = detections = embedded = 0
    batch: list[tuple[float, np.ndarray]] = []

    def analyse(chunk: list[tuple[float, np.ndarray]]) -> None:
        nonlocal wanted, detections, embedded
        assert pipeline.embedder is not None
        for (ts, _), faces in zip(chunk, pipeline.analyze([f for _, f in chunk], embed=False),
                                  strict=True):
            tracks = tracker.update(faces.detections, ts)
            requests = policy.select(tracks, faces.quality, requested=wanted)
            vectors = pipeline.embedder.embed(faces.crops[[r.detection for r in requests]])
            update = identity.update(tracks, observations(requests, vectors))
            wanted = update.wants_evidence
            detections += len(faces)
            embedded += len(requests)
            for decision in update.decisions:
                if isinstance(decision, Changed) and decision.reason == "appearance":
                    old = segments.pop(decision.track_id, None)
                    if old is not None:
                        done.append(old)
                        segments[decision.track_id] = TrackReport(decision.track_id,
                                                                  old.part + 1, ts)
                seg = segments.get(decision.track_id)
                if seg is not None and isinstance(decision, (Recognized, Changed)) \
                        and decision.person_id is not None:
                    seg.named.add(decision.person_id)
            for r in requests:
                seg = segments.setdefault(r.track_id, TrackReport(r.track_id, 0, ts))
                seg.embeddings += 1
            for i, tid in enumerate(tracks.detection_tracks):
                if tid is None:
                    continue
                seg = segments.setdefault(tid, TrackReport(tid, 0, ts))
                box = faces.detections.boxes[i]
                seg.seen.append((ts, (float(box[0]), float(box[1]), float(box[2]),
                                      float(box[3]))))
                seg.frames += 1
                seg.last_ts = ts
                current = update.identity(tid)
                if current is not None:
                    _take(seg, current.status, current.person_id, current.name, current.score,
                          current.margin, current.nearest_id)
            for final in update.finals:
                seg = segments.pop(final.track_id, None)
                if seg is not None:
                    _take(seg, final.status, final.person_id, final.name, final.score,
                          final.margin, final.nearest_id)
                    done.append(seg)

    for ts, frame in sampled_frames(video, options.fps):
        frames += 1
        batch.append((ts, frame))
        if len(batch) == options.batch:
            analyse(batch)
            batch = []
    if batch:
        analyse(batch)
    last = identity.update(tracker.end_all())
    for final in last.finals:
        seg = segments.pop(final.track_id, None)
        if seg is not None:
            _take(seg, final.status, final.person_id, final.name, final.score, final.margin,
                  final.nearest_id)
            done.append(seg)
    done += segments.values()
    tracks = sorted((t for t in done if t.frames), key=lambda t: (t.first_ts, t.track_id, t.part))
    results = check(expectations, tracks)
    return VideoReport(video, frames, options.fps, detections, embedded,
                       gallery.operating_point.describe(), tracks, results)


def _take(seg: TrackReport, status: str, person_id: str | None, name: str | None,
          score: float | None, margin: float | None, nearest_id: str | None) -> None:
    seg.status, seg.person_id, seg.name = status, person_id, name
    seg.score, seg.margin, seg.nearest_id = score, margin, nearest_id
    if person_id is not None:
        seg.named.add(person_id)
    if score is not None and person_id is not None:
        seg.best = score if seg.best is None else max(seg.best, score)


def _inside(e: Expectation, ts: float, box: tuple[float, float, float, float]) -> bool:
    if e.start is not None and e.end is not None and not e.start <= ts <= e.end:
        return False
    if e.region is not None:
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        x1, y1, x2, y2 = e.region
        return x1 <= cx <= x2 and y1 <= cy <= y2
    return True


def _there(e: Expectation, tracks: list[TrackReport]) -> list[TrackReport]:
    """Tracks seen mostly where and when the expectation says."""
    return [t for t in tracks if t.seen and
            sum(_inside(e, ts, box) for ts, box in t.seen) * 2 > len(t.seen)]


def check(expectations: list[Expectation], tracks: list[TrackReport]) -> list[ExpectationResult]:
    out = []
    named = [t for t in tracks if t.named]
    for e in expectations:
        if e.who == NOBODY:
            out.append(ExpectationResult(e, not named, _names(named) or "no track named"))
            continue
        pool = tracks if e.start is None and e.region is None else _there(e, tracks)
        if e.who == UNKNOWN_ID:
            wrong = [t for t in pool if t.named]
            out.append(ExpectationResult(
                e, bool(pool) and not wrong,
                _names(wrong) if wrong else (f"{len(pool)} track(s) there, none named" if pool
                                             else "no track there")))
            continue
        hits = [t for t in pool if e.who in t.named]
        others = [t for t in pool if t.named - {e.who}] if pool is not tracks else []
        if not hits:
            detail = (f"no track named {e.who}" + (f" among {len(pool)} there" if pool is not
                                                   tracks else "")
                      + "; nearest scores " + ", ".join(
                          f"track {t.label} {_f(t.score)} ({t.nearest_id})" for t in pool[:6]))
        elif others:
            detail = f"named on {_labels(hits)}, but also {_names(others)}"
        else:
            detail = f"named on {_labels(hits)} (best score {max(t.best or 0 for t in hits):.3f})"
        out.append(ExpectationResult(e, bool(hits) and not others, detail))
    expected = {e.who for e in expectations} - {UNKNOWN_ID, NOBODY}
    if expectations:
        stray = [t for t in named if t.named - expected]
        out.append(ExpectationResult(
            Expectation(_OTHERS), not stray,
            _names(stray) if stray else "nobody but the expected named"))
    return out


def _labels(tracks: list[TrackReport]) -> str:
    return ", ".join(f"track {t.label}" for t in tracks)


def _names(tracks: list[TrackReport]) -> str:
    return ", ".join(f"track {t.label} named {', '.join(sorted(t.named))}" for t in tracks)
