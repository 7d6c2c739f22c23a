"""A track's embeddings, aggregated by quality, and the hysteresis that turns them into a label."""

from __future__ import annotations

import numpy as np

from facewatch.identity.decisions import UNKNOWN, Label, Snapshot
from facewatch.identity.matcher import Nearest


class Evidence:
    """Quality-weighted mean of unit vectors (renormalised), plus the best face behind it.

    Only the weighted sum is kept: the mean's direction does not depend on the total weight,
    and the sum updates in O(D) per embedding however long the track lives.
    """

    def __init__(self, dim: int) -> None:
        self.sum = np.zeros(dim, np.float64)
        self.count = 0
        self.weight = 0.0
        self.snapshot: Snapshot | None = None
        # Each view's own nearest person (None: nobody enrolled), weighted like the mean.
        self.votes: dict[str | None, float] = {}

    def add(self, embedding: np.ndarray, weight: float, quality: float,
            crop: np.ndarray | None, ts: float, vote: str | None = None) -> None:
        self.sum += weight * np.asarray(embedding, np.float64)
        self.count += 1
        self.weight += weight
        self.votes[vote] = self.votes.get(vote, 0.0) + weight
        if crop is not None and (self.snapshot is None or quality > self.snapshot.quality):
            # a copy: the crop may be a view into a buffer the caller reuses
            self.snapshot = Snapshot(np.array(crop, copy=True), quality, ts)

    @property
    def mean(self) -> np.ndarray:
        """The aggregate as a unit vector (zeros when empty)."""
        norm = float(np.linalg.norm(self.sum))
        return (self.sum / norm if norm > 0 else self.sum).astype(np.float32)

    def similarity(self, embedding: np.ndarray) -> float:
        return float(np.dot(self.mean, embedding))

    def agreement(self, person_id: str | None) -> float:
        """The weighted share of views whose own nearest person is `person_id`."""
        return self.votes.get(person_id, 0.0) / self.weight if self.weight > 0 else 0.0


def decide(current: Label | None, nearest: Nearest, enter: float, exit_: float,
           min_margin: float = 0.0, agreement: float = 1.0, min_agreement: float = 0.0
           ) -> Label:
    """The label after a match, with hysteresis.

    A name is kept while its person stays the nearest at `exit_` or above; a name is given
    when the nearest person reaches `enter`, leads the next person by `min_margin` and is the
    nearest person of at least `min_agreement` of the track's views (`agreement`); otherwise
    (including when someone else becomes nearest without qualifying) the track is unknown.
    """
    if nearest.person_id is not None:
        if (current is not None and current.person_id == nearest.person_id
                and nearest.similarity >= exit_):
            return Label(nearest.person_id, nearest.name)  # the gallery may have renamed them
        if (nearest.similarity >= enter and nearest.margin >= min_margin
                and agreement >= min_agreement):
            return Label(nearest.person_id, nearest.name)
    return UNKNOWN
