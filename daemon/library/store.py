"""What the face library keeps, and the interface every store behind it implements.

The SQLite store (`facewatch.library.sqlite_store`) is the one shipped; a PostgreSQL + pgvector
store shared by several machines can implement the same `LibraryStore` later: every caller
(the writer process, the CLI, the API) goes through this Protocol only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from facewatch.errors import BadInputError, FacewatchError
from facewatch.library.records import TrackRecord


class StorageError(FacewatchError):
    """The store could not write (disk full, read-only, gone, corrupt database)."""


class NotFoundError(BadInputError):
    """A face, group or action id that the library does not hold."""


@dataclass(frozen=True)
class Face:
    """One stored track segment."""

    id: int
    camera: str
    track_id: int
    first_ts: float
    last_ts: float
    person_id: str | None  # named by the daemon; None: unknown
    name: str | None
    score: float  # similarity to `person_id`, or to `nearest_id` when unknown
    nearest_id: str | None
    embedder: str  # sha256 of the embedder behind its embeddings
    quality: float  # of its best view
    views: int  # embeddings kept
    crop: Path  # the best aligned face (JPEG)
    snapshot: Path | None  # the face in context (JPEG)
    cluster_id: int | None  # its group of unknown faces
    assigned_to: str | None  # the person a user named it as (assign), if any

    @property
    def status(self) -> Literal["known", "unknown"]:
        return "known" if self.person_id is not None else "unknown"


@dataclass(frozen=True)
class FaceViews:
    """What search needs of a candidate face."""

    camera: str
    first_ts: float
    last_ts: float
    views: np.ndarray  # (K, D) kept embeddings


@dataclass(frozen=True)
class Cluster:
    """A group of unknown faces believed to be one person."""

    id: int
    embedder: str
    size: int
    first_ts: float  # earliest first_ts of its faces
    last_ts: float  # latest last_ts
    cameras: tuple[str, ...]
    dismissed: bool
    assigned_to: str | None
    centroid: np.ndarray  # unit vector


@dataclass(frozen=True)
class Action:
    """A gallery edit made from the library, kept so that it can be undone."""

    id: int
    ts: float
    kind: Literal["assign", "not"]
    face_id: int
    person_id: str
    gallery: Path
    image: Path  # the file copied beside the gallery
    entry: str  # the YAML list item written (relative to the gallery)
    created_person: bool  # the person was created by this edit
    undone: bool


@dataclass(frozen=True)
class FaceQuery:
    camera: str | None = None
    person_id: str | None = None  # named (by the daemon) or assigned (by a user) as this person
    unknown: bool | None = None  # True: only unknown faces; False: only named ones
    since: float | None = None  # last_ts >= since
    until: float | None = None  # first_ts <= until
    cluster_id: int | None = None
    limit: int = 50
    offset: int = 0


@dataclass(frozen=True)
class RetentionReport:
    by_age: int
    by_count: int

    @property
    def deleted(self) -> int:
        return self.by_age + self.by_count


class LibraryStore(Protocol):
    """Faces, their embeddings and groups; all methods raise `StorageError` on a storage
    failure and `NotFoundError` for an unknown id."""

    def add(self, record: TrackRecord, vector: np.ndarray) -> Face:
        """Store a validated record with its track vector (unit length)."""
        ...

    def get(self, face_id: int) -> Face: ...

    def find(self, camera: str, track_id: int) -> Face | None: ...

    def by_track(self, track_id: int) -> list[Face]:
        """The faces stored for a published track id, newest first."""
        ...

    def faces(self, query: FaceQuery) -> list[Face]:
        """Newest first (by last_ts)."""
        ...

    def count(self, query: FaceQuery | None = None) -> int: ...

    def vectors(self, face_ids: Sequence[int]) -> np.ndarray:
        """The track vectors (N, D) of these faces, in order."""
        ...

    def get_many(self, face_ids: Sequence[int]) -> dict[int, Face]:
        """Faces by id; ids no longer stored are left out."""
        ...

    def places(self, face_ids: Sequence[int]) -> dict[int, tuple[str, float, float]]:
        """(camera, first_ts, last_ts) by face id; ids no longer stored are left out."""
        ...

    def views_many(self, face_ids: Sequence[int]) -> dict[int, FaceViews]:
        """Where and when, and the kept embeddings, by face id; ids no longer stored are left
        out."""
        ...

    def views(self, face_id: int) -> tuple[np.ndarray, np.ndarray]:
        """A face's kept embeddings (K, D) and their qualities (K,)."""
        ...

    def nearest(self, vectors: np.ndarray, embedder: str, k: int,
                allowed: Sequence[int] | None = None) -> list[list[tuple[int, float]]]:
        """Per query vector: up to k (face id, cosine similarity), most similar first, among
        faces of this embedder (and, if given, only `allowed` ids)."""
        ...

    def face_ids(self, query: FaceQuery) -> list[int]:
        """Every id matching the query's filters (limit and offset ignored)."""
        ...

    def enforce_retention(self, now: float) -> RetentionReport: ...

    # groups of unknown faces
    def clusters(self, embedder: str | None = None, include_dismissed: bool = False,
                 include_assigned: bool = True) -> list[Cluster]: ...

    def cluster(self, cluster_id: int) -> Cluster: ...

    def centroids(self, embedder: str) -> tuple[list[int], np.ndarray]:
        """Ids and unit centroids of the groups a new unknown face of this embedder may join."""
        ...

    def join_cluster(self, face_id: int, cluster_id: int | None) -> int:
        """Put a face in a group (None: a new group of its own); returns the group id."""
        ...

    def regroup(self, embedder: str, groups: Sequence[Sequence[int]]) -> list[int]:
        """Replace the grouping of these faces (dismissed and assigned groups keep their state
        when most of their faces stay together); returns the new group ids."""
        ...

    def set_cluster_state(self, cluster_id: int, *, dismissed: bool | None = None,
                          assigned_to: str | None = None) -> None: ...

    def set_assigned(self, face_ids: Sequence[int], person_id: str | None) -> None: ...

    # gallery edits made from the library
    def add_action(self, kind: Literal["assign", "not"], face_id: int, person_id: str,
                   gallery: Path, image: Path, entry: str, created_person: bool) -> Action: ...

    def actions(self, face_id: int | None = None, include_undone: bool = False,
                limit: int = 100) -> list[Action]: ...

    def action(self, action_id: int) -> Action: ...

    def mark_undone(self, action_id: int) -> None: ...

    def embedders(self) -> list[str]:
        """Embedders of stored faces, the most recently used first."""
        ...

    def delete(self, face_ids: Sequence[int]) -> int: ...

    def save_index(self) -> None:
        """Persist the search index (the writer process does, now and then)."""
        ...

    def close(self) -> None: ...
