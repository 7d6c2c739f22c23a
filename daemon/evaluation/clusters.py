"""Grouping unknown faces, measured on LFW: the people with at least N photos, all photos
mixed in a random order and each treated as one track, grouped online (as the library's
writer does) and by the on-demand regroup.  Reported: purity and how many of each person's
photos land in that person's largest group."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facewatch.errors import BadInputError
from facewatch.evaluation.lfw import embed_subjects
from facewatch.gallery.cache import AnalysisCache
from facewatch.library.clusters import (
    ClusterScore,
    ClusterSettings,
    online_labels,
    regroup_labels,
    score_clusters,
)
from facewatch.pipeline import FacePipeline


@dataclass(frozen=True)
class ClusterEvaluation:
    people: int
    photos: int
    fallbacks: int
    settings: ClusterSettings
    online: ClusterScore
    online_seconds: float
    regrouped: ClusterScore
    regroup_seconds: float


def lfw_people(lfw_dir: Path, min_photos: int, max_people: int | None = None,
               seed: int = 0) -> tuple[list[Path], np.ndarray]:
    """Photos of every LFW person with at least `min_photos` (or a random `max_people` of
    them), shuffled; and the person index of each."""
    if not lfw_dir.is_dir():
        raise BadInputError(f"{lfw_dir}: not a directory (--lfw expects LFW's per-person folders)")
    people = [sorted(d.glob("*.jpg")) for d in sorted(lfw_dir.iterdir()) if d.is_dir()]
    people = [p for p in people if len(p) >= min_photos]
    if not people:
        raise BadInputError(f"{lfw_dir}: no person folder with {min_photos} or more .jpg images")
    rng = np.random.default_rng(seed)
    if max_people is not None and max_people < len(people):
        people = [people[i] for i in sorted(rng.choice(len(people), max_people, replace=False))]
    paths = [p for person in people for p in person]
    truth = np.array([i for i, person in enumerate(people) for _ in person])
    order = rng.permutation(len(paths))
    return [paths[i] for i in order], truth[order]


def run_cluster_evaluation(lfw_dir: Path, pipeline: FacePipeline, cache: AnalysisCache | None,
                           settings: ClusterSettings, min_photos: int = 10,
                           max_people: int | None = None, seed: int = 0) -> ClusterEvaluation:
    paths, truth = lfw_people(lfw_dir, min_photos, max_people, seed)
    vectors, fallbacks = embed_subjects(paths, pipeline, cache)
    t = time.perf_counter()
    online = online_labels(vectors, settings.join)
    online_s = time.perf_counter() - t
    t = time.perf_counter()
    regrouped = regroup_labels(vectors, settings.regroup)
    regroup_s = time.perf_counter() - t
    return ClusterEvaluation(int(truth.max()) + 1, len(paths), fallbacks, settings,
                             score_clusters(online, truth), online_s,
                             score_clusters(regrouped, truth), regroup_s)
