"""What the identity stage asks of a gallery: the nearest enrolled person per embedding.

`GalleryMatcher` adapts `facewatch.gallery.gallery.Gallery` (cosine similarity, the nearest
photo decides, the gallery's threshold); anything with the same two members will do, which is
how the tests use a hand-made gallery.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class Nearest:
    person_id: str | None  # None only when the gallery is empty
    name: str | None
    similarity: float  # cosine similarity of the query to that person's nearest photo


@runtime_checkable
class Matcher(Protocol):
    @property
    def threshold(self) -> float:
        """Similarity needed to name someone (the decision's enter threshold)."""
        ...

    def nearest(self, embeddings: np.ndarray) -> list[Nearest]:
        """The nearest enrolled person for each unit vector of (Q, D)."""
        ...


class GalleryLike(Protocol):
    threshold: float

    def identify(self, embeddings: np.ndarray, threshold: float | None = None,
                 exact: bool | None = None) -> list[Any]: ...

    def person(self, person_id: str) -> Any: ...


class GalleryMatcher:
    """A `Gallery` as a `Matcher`: its threshold and `identify`'s nearest person."""

    def __init__(self, gallery: GalleryLike) -> None:
        self.gallery = gallery

    @property
    def threshold(self) -> float:
        return float(self.gallery.threshold)

    def nearest(self, embeddings: np.ndarray) -> list[Nearest]:
        out = []
        for m in self.gallery.identify(np.asarray(embeddings, np.float32)):
            if m.nearest_id is None:
                out.append(Nearest(None, None, float(m.similarity)))
                continue
            person = self.gallery.person(m.nearest_id)
            name = person.name if person is not None else m.nearest_id
            out.append(Nearest(m.nearest_id, name, float(m.similarity)))
        return out


class VectorMatcher:
    """A gallery held as plain vectors, one or more per person (tests, tools)."""

    def __init__(self, people: dict[str, tuple[str, np.ndarray]], threshold: float) -> None:
        """people: person id -> (name, (N, D) or (D,) unit vectors)."""
        self._threshold = threshold
        self._ids: list[str] = []
        self._names: dict[str, str] = {}
        rows = []
        for pid, (name, vectors) in people.items():
            v = np.asarray(vectors, np.float32).reshape(-1, np.asarray(vectors).shape[-1])
            rows.append(v)
            self._ids += [pid] * v.shape[0]
            self._names[pid] = name
        self._vectors = np.concatenate(rows) if rows else np.zeros((0, 0), np.float32)

    @property
    def threshold(self) -> float:
        return self._threshold

    def nearest(self, embeddings: np.ndarray) -> list[Nearest]:
        q = np.asarray(embeddings, np.float32)
        if self._vectors.shape[0] == 0:
            return [Nearest(None, None, 0.0) for _ in range(q.shape[0])]
        sims = q @ self._vectors.T
        best = np.argmax(sims, axis=1)
        return [Nearest(self._ids[b], self._names[self._ids[b]], float(sims[i, b]))
                for i, b in enumerate(best)]


def as_matcher(source: Matcher | GalleryLike) -> Matcher:
    """A `Matcher` from either a matcher or a `Gallery`."""
    if isinstance(source, Matcher):
        return source
    return GalleryMatcher(source)
