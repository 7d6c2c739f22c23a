"""What the identity stage asks of a gallery: the nearest enrolled person per embedding.

`GalleryMatcher` adapts `facewatch.gallery.gallery.Gallery` (cosine similarity to each person's
template, `not:` vetoes, the gallery's operating point); anything with the same two members
will do, which is how the tests use a hand-made gallery.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class Nearest:
    person_id: str | None  # None only when the gallery is empty (or vetoes everyone)
    name: str | None
    similarity: float  # cosine similarity of the query to that person
    runner_up: float = -1.0  # similarity to the next nearest person; -1 when there is none
    vetoed: str | None = None  # a nearer person whom the gallery's `not:` photos ruled out

    @property
    def margin(self) -> float:
        """How much nearer the nearest person is than the next one."""
        return self.similarity - self.runner_up


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
    @property
    def threshold(self) -> float: ...

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
            vetoed = getattr(m, "vetoed", None)
            runner_up = float(getattr(m, "runner_up", -1.0))
            if m.nearest_id is None:
                out.append(Nearest(None, None, float(m.similarity), runner_up, vetoed))
                continue
            person = self.gallery.person(m.nearest_id)
            name = person.name if person is not None else m.nearest_id
            out.append(Nearest(m.nearest_id, name, float(m.similarity), runner_up, vetoed))
        return out


class VectorMatcher:
    """A gallery held as plain vectors, one template per person (tests, tools): a person given
    several vectors is matched through their mean, as `Gallery` does; `not_` holds, per person,
    vectors of faces that are not them."""

    def __init__(self, people: dict[str, tuple[str, np.ndarray]], threshold: float,
                 not_: dict[str, np.ndarray] | None = None) -> None:
        """people: person id -> (name, (N, D) or (D,) unit vectors)."""
        self._threshold = threshold
        self._ids = list(people)
        self._names = {pid: name for pid, (name, _) in people.items()}
        rows = []
        for _, vectors in people.values():
            v = np.asarray(vectors, np.float32).reshape(-1, np.asarray(vectors).shape[-1])
            mean = v.sum(axis=0)
            rows.append(mean / max(float(np.linalg.norm(mean)), 1e-12))
        self._vectors = np.stack(rows) if rows else np.zeros((0, 0), np.float32)
        self._not = {pid: np.asarray(v, np.float32).reshape(-1, np.asarray(v).shape[-1])
                     for pid, v in (not_ or {}).items()}

    @property
    def threshold(self) -> float:
        return self._threshold

    def nearest(self, embeddings: np.ndarray) -> list[Nearest]:
        q = np.asarray(embeddings, np.float32)
        if self._vectors.shape[0] == 0:
            return [Nearest(None, None, 0.0) for _ in range(q.shape[0])]
        sims = q @ self._vectors.T
        out = []
        for i in range(q.shape[0]):
            order = np.argsort(-sims[i], kind="stable")
            vetoed = None
            kept = []
            for j in order:
                pid = self._ids[j]
                rows = self._not.get(pid)
                if rows is not None and rows.shape[0] and float(np.max(rows @ q[i])) >= sims[i, j]:
                    vetoed = vetoed or pid
                else:
                    kept.append(j)
            if not kept:
                out.append(Nearest(None, None, -1.0, -1.0, vetoed))
                continue
            b = kept[0]
            runner_up = float(sims[i, kept[1]]) if len(kept) > 1 else -1.0
            out.append(Nearest(self._ids[b], self._names[self._ids[b]], float(sims[i, b]),
                               runner_up, vetoed))
        return out


def as_matcher(source: Matcher | GalleryLike) -> Matcher:
    """A `Matcher` from either a matcher or a `Gallery`."""
    if isinstance(source, Matcher):
        return source
    return GalleryMatcher(source)
