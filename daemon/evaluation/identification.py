"""Open-set identification on LFW: can the gallery name the enrolled and refuse the rest?

Protocol (as the recognition-core issue defines it): the first image of every person with at
least two images is enrolled; their other images are genuine probes; every image of people
with a single image is an impostor probe.  Reported: rank-1 accuracy of genuine probes (is the
nearest enrolled person the right one), the detection-and-identification rate at the threshold
(right person and above the threshold), and the false-accept rate of impostors at the threshold.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facewatch.errors import BadInputError
from facewatch.evaluation.lfw import embed_subjects
from facewatch.gallery.cache import AnalysisCache
from facewatch.gallery.index import FaceIndex
from facewatch.pipeline import FacePipeline


@dataclass(frozen=True)
class IdentificationResult:
    enrolled: int
    genuine_probes: int
    impostor_probes: int
    rank1: float
    identification_rate: float
    false_accept_rate: float
    threshold: float
    fallbacks: int


@dataclass(frozen=True)
class LfwSplit:
    enrolled: list[Path]  # one per person, index = person
    genuine: list[tuple[Path, int]]  # (image, enrolled person index)
    impostors: list[Path]


def split_lfw(lfw_dir: Path, every: int = 1) -> LfwSplit:
    """The split of every `every`-th person (all by default)."""
    if not lfw_dir.is_dir():
        raise BadInputError(f"{lfw_dir}: not a directory (--lfw expects LFW's per-person folders)")
    enrolled: list[Path] = []
    genuine: list[tuple[Path, int]] = []
    impostors: list[Path] = []
    for person in sorted(d for d in lfw_dir.iterdir() if d.is_dir())[::every]:
        images = sorted(person.glob("*.jpg"))
        if len(images) >= 2:
            genuine.extend((img, len(enrolled)) for img in images[1:])
            enrolled.append(images[0])
        elif images:
            impostors.extend(images)
    if not enrolled:
        raise BadInputError(f"{lfw_dir}: no person folder with two or more .jpg images")
    return LfwSplit(enrolled, genuine, impostors)


def run_identification(lfw_dir: Path, pipeline: FacePipeline, cache: AnalysisCache | None,
                       threshold: float, every: int = 1) -> IdentificationResult:
    split = split_lfw(lfw_dir, every)
    paths = split.enrolled + [p for p, _ in split.genuine] + split.impostors
    embeddings, fallbacks = embed_subjects(paths, pipeline, cache)
    n_enrolled, n_genuine = len(split.enrolled), len(split.genuine)
    index = FaceIndex.build(embeddings[:n_enrolled])
    labels, sims = index.search(embeddings[n_enrolled:], k=1)
    labels, sims = labels[:, 0], sims[:, 0]
    truth = np.array([person for _, person in split.genuine])
    g_labels, g_sims = labels[:n_genuine], sims[:n_genuine]
    i_sims = sims[n_genuine:]
    return IdentificationResult(
        enrolled=n_enrolled, genuine_probes=n_genuine, impostor_probes=len(split.impostors),
        rank1=float(np.mean(g_labels == truth)),
        identification_rate=float(np.mean((g_labels == truth) & (g_sims >= threshold))),
        false_accept_rate=float(np.mean(i_sims >= threshold)) if i_sims.size else 0.0,
        threshold=threshold, fallbacks=fallbacks)
