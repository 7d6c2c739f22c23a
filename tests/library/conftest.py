"""Real faces for the library's tests: LFW photos run through the real pipeline, turned into
the records the inference process hands over (aligned crop, context snapshot as JPEG, real
embeddings and qualities, the embedder's real sha256)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from facewatch.events.snapshots import face_context
from facewatch.images import load_image
from facewatch.library.records import Named, TrackRecord, Unnamed, Verdict
from facewatch.pipeline import AnalyzedFaces, FacePipeline

# LFW people with 10+ photos (checked by lfw_faces), sorted, taken in this order.
PEOPLE = ["Ariel_Sharon", "Colin_Powell", "Gerhard_Schroeder", "Jacques_Chirac",
          "Jean_Chretien", "John_Ashcroft", "Junichiro_Koizumi", "Serena_Williams"]
PHOTOS_PER_PERSON = 6
# yesterday: within the default retention of 30 days
T0 = float(int(time.time()) - 86_400)


@dataclass(frozen=True)
class FaceSample:
    person: str
    path: Path
    crop: np.ndarray
    embedding: np.ndarray
    quality: float
    snapshot: bytes


@pytest.fixture(scope="session")
def lfw_faces(lfw_dir: Path, pipeline: FacePipeline) -> dict[str, list[FaceSample]]:
    """PHOTOS_PER_PERSON analysed photos of each of PEOPLE."""
    out: dict[str, list[FaceSample]] = {}
    for person in PEOPLE:
        paths = sorted((lfw_dir / person).glob("*.jpg"))
        assert len(paths) >= 10, person
        images = [load_image(p) for p in paths[:PHOTOS_PER_PERSON]]
        samples = []
        for path, image, faces in zip(paths, images, pipeline.analyze(images)):
            i = centre_face_of(faces, image)
            assert faces.embeddings is not None
            context = face_context(image, faces.detections.boxes[i])
            ok, jpeg = cv2.imencode(".jpg", np.ascontiguousarray(context[:, :, ::-1]))
            assert ok
            samples.append(FaceSample(person, path, faces.crops[i], faces.embeddings[i],
                                      float(faces.quality[i]), jpeg.tobytes()))
        out[person] = samples
    return out


def centre_face_of(faces: AnalyzedFaces, image: np.ndarray) -> int:
    """LFW's subject is the face nearest the centre."""
    boxes = faces.detections.boxes
    assert len(boxes), "no face found"
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    return int(np.argmin(np.linalg.norm(centres - [image.shape[1] / 2, image.shape[0] / 2], axis=1)))


@pytest.fixture(scope="session")
def embedder_sha(pipeline: FacePipeline) -> str:
    assert pipeline.embedder is not None
    return pipeline.embedder.manifest.sha256


def record(samples: list[FaceSample], track_id: int, sha: str, *, camera: str = "door",
           ts: float | None = None, verdict: Verdict | None = None) -> TrackRecord:
    """A track of these views of one person: the first is the best crop."""
    start = T0 + track_id * 10.0 if ts is None else ts
    return TrackRecord(
        camera=camera, track_id=track_id, first_ts=start, last_ts=start + 2.0,
        verdict=verdict or Unnamed(0.1, None), crop=samples[0].crop,
        snapshot=samples[0].snapshot,
        embeddings=np.stack([s.embedding for s in samples]).astype(np.float32),
        qualities=np.array([s.quality for s in samples], np.float32), embedder_sha256=sha)


def named(person: str, score: float = 0.6) -> Named:
    return Named(person.lower(), person.replace("_", " "), score)
