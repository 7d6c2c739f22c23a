"""A persistent cache of per-image face analyses, so a rebuild only embeds what changed.

Keyed by the image's sha256 and a pipeline signature (embedder sha256, flip, detector
settings): editing a photo, swapping the model or changing detection re-embeds; renaming or
moving a photo does not.  Images that failed (no face, unreadable) are cached too, with their
error, so an unchanged bad image is reported again without being decoded again.
"""

from __future__ import annotations

import hashlib
import io
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np

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
    quality (K,), embeddings (K,D); or the error that image gave."""

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray
    quality: np.ndarray
    embeddings: np.ndarray
    error: str | None = None


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class AnalysisCache:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        new = not path.exists()
        self._db = sqlite3.connect(path)
        if new:
            os.chmod(path, 0o600)  # embeddings are biometric data
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
            empty = np.zeros(0, np.float32)
            return CachedFaces(empty, empty, empty, empty, empty, error)
        with np.load(io.BytesIO(blob)) as z:
            return CachedFaces(z["boxes"], z["scores"], z["landmarks"], z["quality"],
                               z["embeddings"])

    def put(self, image_sha: str, pipeline: str, faces: CachedFaces) -> None:
        blob = None
        if faces.error is None:
            buf = io.BytesIO()
            np.savez(buf, boxes=faces.boxes, scores=faces.scores, landmarks=faces.landmarks,
                     quality=faces.quality, embeddings=faces.embeddings)
            blob = buf.getvalue()
        self._db.execute("INSERT OR REPLACE INTO analysis VALUES (?, ?, ?, ?)",
                         (image_sha, pipeline, blob, faces.error))

    def commit(self) -> None:
        self._db.commit()
