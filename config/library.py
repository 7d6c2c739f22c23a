"""`library:` — the face library: every published track kept with its best face, for review,
naming from the camera, grouping of unknown faces and search by face.

    library:
      enabled: true
      embeddings_per_track: 5     # K: embeddings of a track's best views kept for search
      max_age_days: 30            # older faces are deleted (oldest first, counted)
      max_faces: 100000           # beyond this many faces the oldest are deleted

It lives in `<state_dir>/library/` (SQLite, 0600; crops and snapshots in 0700 folders).
"""

from __future__ import annotations

from pydantic import Field

from facewatch.config.base import Section


class LibraryConfig(Section):
    enabled: bool = Field(
        default=True,
        description="Keep a record of every published track (best face, context snapshot, "
                    "embeddings) under <state_dir>/library for review, naming and search.")
    embeddings_per_track: int = Field(
        default=5, ge=1, le=32,
        description="Embeddings of a track's best-quality views kept (K); more helps search "
                    "find a face seen from another angle.")
    max_age_days: float = Field(
        default=30.0, gt=0, le=3660,
        description="Faces whose track ended longer ago than this are deleted, oldest first "
                    "(and counted).")
    max_faces: int = Field(
        default=100_000, ge=1, le=10_000_000,
        description="Faces kept at most; beyond this the oldest are deleted (and counted).")
    cluster_threshold: float | None = Field(
        default=None, gt=0, lt=1,
        description="Cosine similarity at which an unknown face joins a group of unknown "
                    "faces; default: chosen for the embedder (see the README).")
    jpeg_quality: int = Field(default=90, ge=1, le=100, description="JPEG quality of stored faces.")
