"""Search by face: "when was this face here before?", for enrolled and unknown faces alike.

The query is one vector: from an image (through the same detection, alignment and embedder as
the cameras), from an aligned crop, or a stored face's own.  Candidates come from the store's
index (one vector per track); each is then scored by the best of its track vector and its K
kept views, so a face seen from another angle still ranks by its closest view.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from facewatch.errors import NoFaceError
from facewatch.library.store import Face, FaceQuery, FaceViews, LibraryStore
from facewatch.pipeline import FacePipeline

Order = Literal["similarity", "newest"]
# An image's face must be at least this confident to be searched for.
QUERY_MIN_SCORE = 0.9
# Candidates fetched from the index per result asked for (re-ranking and filters drop some).
_OVERFETCH = 5
_MIN_CANDIDATES = 100
# A track's best view may be more similar to the query than its mean: candidates further
# than this below the floor are not re-ranked.
RERANK_MARGIN = 0.1
# A filter admitting at least this share of the faces is applied after the search.
POST_FILTER_SHARE = 0.1
_NO_VIEWS = np.zeros((0, 0), np.float32)
_MAX_POST_FILTER_K = 5000


@dataclass(frozen=True)
class SearchHit:
    face: Face
    similarity: float


def vector_from_image(pipeline: FacePipeline, image: np.ndarray, where: str = "image") -> np.ndarray:
    """The embedding of the largest confident face of an RGB image; NoFaceError if none."""
    faces = pipeline.analyze([image])[0]
    confident = np.nonzero(faces.detections.scores >= QUERY_MIN_SCORE)[0]
    if confident.size == 0 or faces.embeddings is None:
        raise NoFaceError(f"{where}: no face found to search for")
    boxes = faces.detections.boxes[confident]
    largest = confident[int(np.argmax((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])))]
    vector: np.ndarray = faces.embeddings[largest]
    return vector


def vector_from_crop(pipeline: FacePipeline, crop: np.ndarray, where: str = "crop") -> np.ndarray:
    """An aligned 112x112 crop (as the library stores them) is embedded as it is; anything
    else goes through detection like an image."""
    if crop.shape[:2] == (112, 112) and pipeline.embedder is not None:
        vector: np.ndarray = pipeline.embedder.embed(crop[None])[0]
        return vector
    return vector_from_image(pipeline, crop, where)


def search(store: LibraryStore, vector: np.ndarray, embedder: str, *, limit: int = 20,
           order: Order = "similarity", min_similarity: float = -1.0,
           camera: str | None = None, since: float | None = None, until: float | None = None,
           exclude: tuple[int, ...] = ()) -> list[SearchHit]:
    """Past faces like `vector` (of `embedder`'s space), at least `min_similarity` similar,
    filtered by camera and time; the most similar first, or the newest first."""
    q = np.asarray(vector, np.float32).reshape(-1)
    q = q / max(float(np.linalg.norm(q)), 1e-12)
    query = FaceQuery(camera=camera, since=since, until=until)
    want = max(limit * _OVERFETCH, _MIN_CANDIDATES) + len(exclude)
    if camera is None and since is None and until is None:
        found = store.nearest(q[None], embedder, want)[0]
    else:
        found = _filtered(store, q, embedder, query, want, min_similarity)
    candidates = {f: s for f, s in found
                  if f not in exclude and s >= min_similarity - RERANK_MARGIN}
    rows = store.views_many(list(candidates))  # faces deleted since the index was read are gone
    ids = [f for f in candidates if f in rows and _admits(query, rows[f])]
    if not ids:
        return []
    # each track scored by the best of its mean and its kept views, in one product
    views = [rows[f].views for f in ids]
    view_sims = np.einsum("nd,d->n", np.concatenate(views), q)
    starts = np.cumsum([0] + [v.shape[0] for v in views[:-1]])
    best = np.maximum(np.maximum.reduceat(view_sims, starts), [candidates[f] for f in ids])
    scored = [(f, float(b), rows[f].last_ts) for f, b in zip(ids, best) if b >= min_similarity]
    if order == "newest":
        scored.sort(key=lambda h: (-h[2], -h[1]))
    else:
        scored.sort(key=lambda h: (-h[1], -h[2]))
    scored = scored[:limit]
    faces = store.get_many([f for f, _, _ in scored])
    hits = [SearchHit(faces[f], sim) for f, sim, _ in scored if f in faces]
    return hits[:limit]


def _admits(query: FaceQuery, row: FaceViews) -> bool:
    return ((query.camera is None or row.camera == query.camera)
            and (query.since is None or row.last_ts >= query.since)
            and (query.until is None or row.first_ts <= query.until))


def _filtered(store: LibraryStore, q: np.ndarray, embedder: str, query: FaceQuery, want: int,
              floor: float) -> list[tuple[int, float]]:
    """Candidates among the faces a camera/time filter admits.  A filter that admits many
    (a camera of four) is cheaper to apply after an unfiltered search for more candidates
    than to list its faces; one that admits few (the last hour) lists them and searches
    among them exactly.  Falls back to listing when the wider search came up short."""
    admitted = store.count(query)
    if admitted == 0:
        return []
    share = admitted / max(store.count(), 1)
    if share >= POST_FILTER_SHARE:
        k = min(int(want / share * 2), _MAX_POST_FILTER_K)
        found = store.nearest(q[None], embedder, k)[0]
        places = store.places([f for f, s in found if s >= floor - RERANK_MARGIN])
        kept = [(f, s) for f, s in found
                if f in places and _admits(query, FaceViews(*places[f], _NO_VIEWS))]
        # enough, or every face above the floor was among those looked at
        if len(kept) >= want or (found and found[-1][1] < floor - RERANK_MARGIN):
            return kept
    return store.nearest(q[None], embedder, want, store.face_ids(query))[0]
