"""Grouping unknown faces so that a person is named once.

Online, as faces arrive (`choose_cluster`): a new unknown face joins the group whose centroid
(the mean of its faces' vectors) is most similar, if at least `join` similar; otherwise it
starts a group.  This costs one (groups x D) product per face and never moves a face that
was already placed, so what a user has seen stays put.

On demand (`regroup_labels`): average-linkage agglomerative clustering over the cosine
distances of all unknown faces (scipy's `linkage` + `fcluster`, already a dependency), cut at
`1 - regroup` distance.  Average linkage judges a merge by every pair of faces of the two
groups, so it does not chain different people through one ambiguous face (single linkage
does), and it does not depend on the order faces arrived in, which the online rule does.  It
needs the N(N-1)/2 pairwise distances, so it works on at most `REGROUP_MAX` faces at a time
(the newest); `facewatch eval clusters` measures both on LFW.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# 8,000 faces: 32 M distances, 256 MB of float64 for a few seconds.
REGROUP_MAX = 8000


@dataclass(frozen=True)
class ClusterSettings:
    join: float = 0.497  # cosine similarity to a group's centroid to join it (online)
    regroup: float = 0.447  # average similarity between two groups to merge them (on demand)


def settings_for(threshold: float | None, recognition_threshold: float | None) -> ClusterSettings:
    """The grouping thresholds: `library.cluster_threshold` if set, else derived from the
    embedder's naming threshold (grouping must be stricter than naming: a wrong merge makes a
    user name two people as one).  For foamliu (naming at 0.307): join 0.497, regroup 0.447,
    chosen on LFW and the Hamilton clip (see the README): in one video, lit alike, two
    audience members reach 0.45, while one person's tracks stay above 0.7."""
    if threshold is not None:
        return ClusterSettings(join=threshold, regroup=max(threshold - 0.05, 0.0))
    base = recognition_threshold if recognition_threshold is not None else 0.307
    return ClusterSettings(join=round(base + 0.19, 3), regroup=round(base + 0.14, 3))


def choose_cluster(centroids: np.ndarray, vector: np.ndarray, join: float) -> tuple[int | None, float]:
    """Row of the group `vector` joins (None: start a new one) and its similarity."""
    if centroids.shape[0] == 0:
        return None, 0.0
    sims = centroids @ np.asarray(vector, np.float32)
    best = int(np.argmax(sims))
    return (best if sims[best] >= join else None), float(sims[best])


def online_labels(vectors: np.ndarray, join: float) -> np.ndarray:
    """Group label of each vector, placed one by one in order as the library's writer does."""
    labels = np.empty(vectors.shape[0], np.int64)
    sums: list[np.ndarray] = []
    centroids = np.zeros((0, vectors.shape[1]), np.float32)
    for i, v in enumerate(np.asarray(vectors, np.float32)):
        row, _sim = choose_cluster(centroids, v, join)
        if row is None:
            sums.append(v.copy())
            row = len(sums) - 1
            centroids = np.vstack([centroids, v[None]])
        else:
            sums[row] += v
            centroids[row] = sums[row] / max(float(np.linalg.norm(sums[row])), 1e-12)
        labels[i] = row
    return labels


def regroup_labels(vectors: np.ndarray, regroup: float) -> np.ndarray:
    """Average-linkage groups (labels 0..G-1) of unit vectors; at most REGROUP_MAX of them."""
    from scipy.cluster.hierarchy import fcluster, linkage

    n = vectors.shape[0]
    if n > REGROUP_MAX:
        raise ValueError(f"regroup works on at most {REGROUP_MAX} faces at a time, got {n}")
    if n == 0:
        return np.zeros(0, np.int64)
    if n == 1:
        return np.zeros(1, np.int64)
    v = np.asarray(vectors, np.float64)
    sims = np.clip(v @ v.T, -1.0, 1.0)
    iu = np.triu_indices(n, k=1)
    distances = 1.0 - sims[iu]  # condensed form, as scipy's pdist returns it
    tree = linkage(distances, method="average")
    raw = fcluster(tree, t=1.0 - regroup, criterion="distance")
    _, labels = np.unique(raw, return_inverse=True)
    return labels.astype(np.int64)


@dataclass(frozen=True)
class ClusterScore:
    purity: float  # share of faces in a group whose majority person is theirs
    completeness: float  # share of each person's faces in that person's largest group, pooled
    worst_person: float  # the same for the person worst served
    people_below_90: int  # people with under 90 % of their faces in their largest group
    groups: int
    singletons: int


def score_clusters(labels: np.ndarray, truth: np.ndarray) -> ClusterScore:
    labels, truth = np.asarray(labels), np.asarray(truth)
    majority = 0
    for g in np.unique(labels):
        _, counts = np.unique(truth[labels == g], return_counts=True)
        majority += int(counts.max())
    largest: list[tuple[int, int]] = []
    for p in np.unique(truth):
        _, counts = np.unique(labels[truth == p], return_counts=True)
        largest.append((int(counts.max()), int(counts.sum())))
    shares = np.array([a / b for a, b in largest])
    _, sizes = np.unique(labels, return_counts=True)
    return ClusterScore(
        purity=majority / len(labels), completeness=sum(a for a, _ in largest) / len(labels),
        worst_person=float(shares.min()), people_below_90=int((shares < 0.9).sum()),
        groups=int(sizes.size), singletons=int((sizes == 1).sum()))
