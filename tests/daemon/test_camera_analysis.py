"""One camera's analysis as the inference process drives it, with detection gating on (the
default): plan → detect → select → embed → apply, over the Hamilton clip at 10 fps, against
the same sequence with gating off.  Gating must name the same people on the same shots."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from facewatch.bench.sources import sample_frames
from facewatch.detection.settings import GateSettings
from facewatch.events.schema import Event, FaceRecognized, FaceUnknown, TrackStarted
from facewatch.gallery.gallery import Gallery
from facewatch.identity import GalleryMatcher
from facewatch.inference.camera_analysis import AnalysisSettings, CameraAnalysis
from facewatch.pipeline import FacePipeline

CLIP = Path("data/videos/short_hamilton_clip.mp4")
PORTRAITS = Path("data/photos/face_recognition_examples/examples")


@dataclass
class Run:
    events: list[Event] = field(default_factory=list)
    work: Counter[str] = field(default_factory=Counter)


@pytest.fixture(scope="module")
def gallery(shared_dir: Path, pipeline: FacePipeline, tmp_path_factory: pytest.TempPathFactory) -> Gallery:
    tmp = tmp_path_factory.mktemp("gallery")
    portraits = shared_dir / PORTRAITS
    spec = tmp / "gallery.yaml"
    spec.write_text("threshold: 0.25\npeople:\n"
                    f"  - id: lin\n    name: Lin-Manuel Miranda\n    images: [{portraits / 'lin-manuel-miranda.png'}]\n"
                    f"  - id: obama\n    name: Barack Obama\n    images: [{portraits / 'obama.jpg'}]\n")
    return Gallery.open(spec, pipeline, state_dir=tmp / "state")


@pytest.fixture(scope="module")
def frames(shared_dir: Path) -> tuple[list[np.ndarray], list[float]]:
    images, times, _ = sample_frames(shared_dir / CLIP, 92, 10.0, loop=False)
    return images, times


def _run(pipeline: FacePipeline, gallery: Gallery, frames: tuple[list[np.ndarray], list[float]],
         detection: GateSettings) -> Run:
    assert pipeline.embedder is not None
    camera = CameraAnalysis("cam", AnalysisSettings(), GalleryMatcher(gallery), None,
                            detection=detection)
    run = Run()
    for frame, ts in zip(*frames):
        request = camera.plan(frame, ts)
        faces = pipeline.analyze([frame], embed=False, requests=[request])[0]
        run.work[pipeline.detector.last_kinds[0]] += 1
        crops, started = camera.select(frame, faces, ts)
        run.events += started
        run.events += camera.apply(pipeline.embedder.embed(crops))
    run.events += camera.end(frames[1][-1] + 2.0)
    return run


def _named(run: Run) -> set[tuple[str, bool]]:
    """(person, in the audience shot) for every face.recognized."""
    return {(e.identity, e.ts >= 7.08) for e in run.events if isinstance(e, FaceRecognized)}


def test_gating_names_the_same_people_for_a_fraction_of_the_work(
        pipeline: FacePipeline, gallery: Gallery, frames: tuple[list[np.ndarray], list[float]]) -> None:
    full = _run(pipeline, gallery, frames, GateSettings(min_face=40.0, motion=False))
    gated = _run(pipeline, gallery, frames, GateSettings(min_face=40.0))
    assert full.work == Counter({"full": 92})
    print(f"gated: {dict(gated.work)}")
    # a few full frames (the first, the periodic ones, cuts); the rest cost less
    assert gated.work["full"] <= 30 and gated.work["refresh"] + gated.work["none"] >= 5
    assert _named(gated) == _named(full) == {("lin", False), ("obama", True)}
    # Michelle Obama, unknown in both
    assert any(isinstance(e, FaceUnknown) and e.ts >= 7.08 for e in gated.events)
    # about as many tracks: gating neither loses faces nor splits tracks
    started = [sum(isinstance(e, TrackStarted) for e in r.events) for r in (full, gated)]
    assert abs(started[0] - started[1]) <= 2, started
