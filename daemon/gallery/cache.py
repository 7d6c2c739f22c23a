"""A persistent cache of per-image face analyses, so a rebuild only embeds what changed.

Keyed by the image's sha256 and a pipeline signature (backend and precision, model sha256s,
flip, detector settings): editing a photo, swapping the model, changing detection or moving to
another backend re-embeds (so a photo TensorRT cannot run fails at start, not when it first
changes); renaming or moving a photo does not.  Images that failed (no face, unreadable) are cached too, with their
error, so an unchanged bad image is reported again without being decoded again.
"""

from __future__ import annotations

import io
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from facewatch.errors import FacewatchError
from facewatch.images import load_image
from facewatch.ownership import hand_over, make_folders
from facewatch.progress import progress_bar

if TYPE_CHECKING:
    from facewatch.pipeline import FacePipeline

# Images decoded and analysed per pipeline call.
_CHUNK = 16

_SCHEMA = """
CREATE TABLE IF NOT EXISTS analysis (
    image_sha256 TEXT NOT NULL,
    pipeline TEXT NOT NULL,
    faces BLOB,
    error TEXT,
    PRIMARY KEY (image_sha256, pipeline)
)
"""


@dataclass(frozen=True)
class CachedFaces:
    """All faces found in one image: boxes (K,4), scores (K,), landmarks (K,5,2),
    quality (K,), embeddings (K,D), and the image's (height, width); or the error it gave."""

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray
    quality: np.ndarray
    embeddings: np.ndarray
    image_size: tuple[int, int] = (0, 0)
    error: str | None = None


class AnalysisCache:
    def __init__(self, path: Path) -> None:
        make_folders(path.parent, mode=0o700)
        new = not path.exists()
        self._db = sqlite3.connect(path)
        if new:
            os.chmod(path, 0o600)  # embeddings are biometric data
            # made with sudo in the daemon's state folder: the daemon's file (SQLite, run as
            # root, gives its -wal and -shm files the database file's owner)
            hand_over(path)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_SCHEMA)
        self.path = path

    def close(self) -> None:
        self._db.close()

    def get(self, image_sha: str, pipeline: str) -> CachedFaces | None:
        row = self._db.execute(
            "SELECT faces, error FROM analysis WHERE image_sha256 = ? AND pipeline = ?",
            (image_sha, pipeline)).fetchone()
        if row is None:
            return None
        blob, error = row
        if error is not None:
            return failed(error)
        with np.load(io.BytesIO(blob)) as z:
            return CachedFaces(z["boxes"], z["scores"], z["landmarks"], z["quality"],
                               z["embeddings"], (int(z["image_size"][0]), int(z["image_size"][1])))

    def put(self, image_sha: str, pipeline: str, faces: CachedFaces) -> None:
        blob = None
        if faces.error is None:
            buf = io.BytesIO()
            np.savez(buf, boxes=faces.boxes, scores=faces.scores, landmarks=faces.landmarks,
                     quality=faces.quality, embeddings=faces.embeddings,
                     image_size=np.array(faces.image_size))
            blob = buf.getvalue()
        self._db.execute("INSERT OR REPLACE INTO analysis VALUES (?, ?, ?, ?)",
                         (image_sha, pipeline, blob, faces.error))

    def commit(self) -> None:
        self._db.commit()


def failed(message: str) -> CachedFaces:
    empty = np.zeros(0, np.float32)
    return CachedFaces(empty, empty, empty, empty, empty, (0, 0), message)


def analyse_files(pipeline: FacePipeline, files: dict[str, Path], cache: AnalysisCache | None,
                  desc: str = "analysing") -> tuple[dict[str, CachedFaces], int]:
    """Analyse image files (keyed by sha256), answering from and filling the cache.

    Returns the analyses and how many were computed (the rest came from the cache).

    Unreadable images become entries with an error, never exceptions: in a batch of
    thousands, one bad file should be reported, not stop the rest.
    """
    out: dict[str, CachedFaces] = {}
    todo = []
    for sha, path in files.items():
        hit = cache.get(sha, pipeline.signature) if cache is not None else None
        if hit is not None:
            out[sha] = hit
        else:
            todo.append((sha, path))
    with progress_bar(len(todo), desc) as bar:
        for start in range(0, len(todo), _CHUNK):
            chunk = todo[start:start + _CHUNK]
            images, shas = [], []
            for sha, path in chunk:
                try:
                    images.append(load_image(path))
                    shas.append(sha)
                except FacewatchError as exc:
                    # the message already names the file; keep only what is wrong
                    out[sha] = failed(str(exc).split(": ", 1)[-1])
            for sha, image, a in zip(shas, images, pipeline.analyze(images)):
                assert a.embeddings is not None
                out[sha] = CachedFaces(a.detections.boxes, a.detections.scores,
                                       a.detections.landmarks, a.quality, a.embeddings,
                                       (image.shape[0], image.shape[1]))
            if cache is not None:
                for sha, _ in chunk:
                    cache.put(sha, pipeline.signature, out[sha])
                cache.commit()
            bar.update(len(chunk))
    return out, len(todo)
