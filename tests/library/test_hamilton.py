"""The library on real video: the audience of the Hamilton clip (../shared), tracked by
facewatch's own tracker, each track cut into three segments as the daemon would publish
them.  Unknown segments group by person; a group named from the camera enrols, and the
gallery then names that person's other segments -- and nobody else."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from facewatch.bench.sources import read_frames
from facewatch.events.snapshots import face_context
from facewatch.gallery.gallery import Gallery
from facewatch.library import operations
from facewatch.library.operations import GalleryTarget
from facewatch.library.records import TrackRecord, Unnamed, best_views
from facewatch.library.sqlite_store import SqliteLibrary
from facewatch.library.store import FaceQuery
from facewatch.library.writer import LibraryWriter, WriterSettings
from facewatch.pipeline import FacePipeline
from facewatch.tracking import FaceTracker, TrackerSettings
from tests.library.test_clusters import SETTINGS

FPS = 29.97
FIRST_FRAME = 210  # the audience: four people, each for the rest of the clip
SEGMENTS = 3


@dataclass(frozen=True)
class Segment:
    track: int  # the tracker's id: one person
    part: int
    record: TrackRecord


@pytest.fixture(scope="module")
def audience(shared_dir: Path, pipeline: FacePipeline, embedder_sha: str) -> list[Segment]:
    frames = read_frames(shared_dir / "data" / "videos" / "short_hamilton_clip.mp4", 400)[FIRST_FRAME:]
    tracker = FaceTracker(TrackerSettings())
    views: dict[int, list[tuple[float, np.ndarray, np.ndarray, np.ndarray, float]]] = {}
    for i, frame in enumerate(frames):
        faces = pipeline.analyze([frame])[0]
        assert faces.embeddings is not None
        ts = 1_750_000_000.0 + i / FPS
        update = tracker.update(faces.detections, ts)
        for det, tid in enumerate(update.detection_tracks):
            if tid is not None:
                context = face_context(frame, faces.detections.boxes[det])
                views.setdefault(tid, []).append((float(faces.quality[det]), faces.embeddings[det],
                                                  faces.crops[det], context, ts))
    long_tracks = {tid: v for tid, v in views.items() if len(v) >= 30}
    assert len(long_tracks) == 4, {t: len(v) for t, v in views.items()}
    segments = []
    for tid, track in sorted(long_tracks.items()):
        n = len(track) // SEGMENTS
        for part in range(SEGMENTS):
            chunk = track[part * n:(part + 1) * n]
            emb, q = best_views(np.stack([v[1] for v in chunk]), np.array([v[0] for v in chunk]), 5)
            best = max(chunk, key=lambda v: v[0])
            ok, jpeg = cv2.imencode(".jpg", np.ascontiguousarray(best[3][:, :, ::-1]))
            assert ok
            segments.append(Segment(tid, part, TrackRecord(
                "stage", tid * 10 + part, chunk[0][4], chunk[-1][4], Unnamed(0.1, None),
                best[2], jpeg.tobytes(), emb, q, embedder_sha)))
    # as the daemon publishes them: every track's first segment ends first
    return sorted(segments, key=lambda s: (s.part, s.track))


def test_audience_groups_by_person_and_a_named_group_is_recognised(
        audience: list[Segment], tmp_path: Path, pipeline: FacePipeline, examples: Path) -> None:
    writer = LibraryWriter(lambda: SqliteLibrary(tmp_path / "library", writer=True),
                           WriterSettings(clusters=SETTINGS))
    for seg in audience:
        assert writer.handle(seg.record) is not None
    store = writer.store
    assert store is not None
    groups = store.clusters()
    assert len(groups) == 4
    for group in groups:  # one person per group, all of their segments
        members = store.faces(FaceQuery(cluster_id=group.id, limit=10))
        assert len({f.track_id // 10 for f in members}) == 1 and len(members) == SEGMENTS

    # name one person from their first segment only, in a gallery of Lin-Manuel Miranda
    gallery = tmp_path / "gallery" / "people.yaml"
    gallery.parent.mkdir()
    gallery.write_text(f"people:\n  - id: lin\n    images: [{examples / 'lin-manuel-miranda.png'}]\n")
    state = tmp_path / "gallery-state"
    target = GalleryTarget(gallery, lambda tmp: Gallery.open(tmp, pipeline, state_dir=state) and None)
    chosen = audience[0].track
    first = store.find("stage", chosen * 10)
    assert first is not None
    operations.assign(store, target, [first.id], "guest", "Guest")
    assert yaml.safe_load(gallery.read_text())["people"][1]["images"] == \
        [f"faces/guest/{chosen * 10}-1.jpg"]
    named = Gallery.open(gallery, pipeline, state_dir=state)
    later = [s for s in audience if s.part > 0]
    matches = named.identify(np.stack([s.record.mean_embedding() for s in later]))
    assert [m.person_id for m in matches] == ["guest" if s.track == chosen else None for s in later]
    writer.close()
