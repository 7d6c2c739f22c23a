"""LFW face verification with the standard View-2 protocol (10 folds of 300 + 300 pairs).

Every image goes through facewatch's own detection and alignment.  The threshold for each fold
is chosen on the other nine and applied to it, as the protocol requires; VAL@FAR is found the
same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facewatch.alignment.five_point import align_faces
from facewatch.engines.files import sha256_file
from facewatch.errors import BadInputError
from facewatch.gallery.cache import AnalysisCache, CachedFaces, analyse_files
from facewatch.images import load_image
from facewatch.pipeline import FacePipeline


@dataclass(frozen=True)
class Pair:
    fold: int
    a: Path
    b: Path
    same: bool


@dataclass(frozen=True)
class VerificationResult:
    accuracy: float
    accuracy_std: float
    val_at_far: float
    far_target: float
    threshold: float
    threshold_at_far: float  # on all pairs: where far_target of different pairs pass
    fallbacks: int
    pairs: int
    images: int
    fold_accuracies: list[float]


def lfw_image(lfw_dir: Path, name: str, number: str) -> Path:
    return lfw_dir / name / f"{name}_{int(number):04d}.jpg"


def read_pairs(pairs_file: Path, lfw_dir: Path) -> list[Pair]:
    try:
        lines = pairs_file.read_text().split("\n")
    except OSError as exc:
        raise BadInputError(f"{pairs_file}: cannot read ({exc.strerror})") from None
    try:
        folds, per_class = (int(v) for v in lines[0].split())
    except ValueError:
        raise BadInputError(f"{pairs_file}:1: expected '<folds> <pairs per class>' "
                            f"(is this LFW's pairs.txt?)") from None
    pairs: list[Pair] = []
    for i, line in enumerate(lines[1:], start=2):
        parts = line.split()
        if not parts:
            continue
        fold = len(pairs) // (2 * per_class)
        if len(parts) == 3:
            pairs.append(Pair(fold, lfw_image(lfw_dir, parts[0], parts[1]),
                              lfw_image(lfw_dir, parts[0], parts[2]), True))
        elif len(parts) == 4:
            pairs.append(Pair(fold, lfw_image(lfw_dir, parts[0], parts[1]),
                              lfw_image(lfw_dir, parts[2], parts[3]), False))
        else:
            raise BadInputError(f"{pairs_file}:{i}: expected 3 or 4 fields, got {len(parts)}")
    if len(pairs) != folds * 2 * per_class:
        raise BadInputError(f"{pairs_file}: {len(pairs)} pairs, but the header promises "
                            f"{folds * 2 * per_class}")
    missing = next((p for pair in pairs for p in (pair.a, pair.b) if not p.is_file()), None)
    if missing is not None:
        raise BadInputError(f"{missing}: listed in {pairs_file} but missing (is --lfw the folder "
                            f"holding one sub-folder per person?)")
    return pairs


def centre_face(faces: CachedFaces, width: int, height: int) -> int | None:
    """The face nearest the image centre: LFW's subject is centred by construction."""
    if faces.error is not None or faces.scores.size == 0:
        return None
    centres = (faces.boxes[:, :2] + faces.boxes[:, 2:]) / 2
    d = np.linalg.norm(centres - np.array([width / 2, height / 2]), axis=1)
    return int(np.argmin(d))


def embed_subjects(paths: list[Path], pipeline: FacePipeline, cache: AnalysisCache | None
                   ) -> tuple[np.ndarray, int]:
    """One embedding per image, of its centred subject; returns (embeddings, fallbacks).

    Where no face is detected, O-Net is run on the central region to align the face anyway
    (a "fallback"); LFW guarantees a face there.
    """
    assert pipeline.embedder is not None
    shas = {p: sha256_file(p) for p in paths}
    analyses, _ = analyse_files(pipeline, {s: p for p, s in shas.items()}, cache, desc="LFW")
    out = np.zeros((len(paths), pipeline.embedder.size), np.float32)
    fallbacks = 0
    for i, path in enumerate(paths):
        faces = analyses[shas[path]]
        if faces.error is not None:
            raise BadInputError(f"{path}: {faces.error}")
        choice = centre_face(faces, faces.image_size[1], faces.image_size[0])
        if choice is not None:
            out[i] = faces.embeddings[choice]
            continue
        fallbacks += 1
        out[i] = _fallback_embedding(pipeline, load_image(path))
    return out, fallbacks


def _fallback_embedding(pipeline: FacePipeline, image: np.ndarray) -> np.ndarray:
    assert pipeline.embedder is not None
    h, w = image.shape[:2]
    side = 0.5 * min(h, w)
    box = np.array([[w / 2 - side / 2, h / 2 - side / 2, w / 2 + side / 2, h / 2 + side / 2]],
                   np.float32)
    det = pipeline.detector.landmarks_for_boxes(image, box)
    vector: np.ndarray = pipeline.embedder.embed(align_faces(image, det.landmarks))[0]
    return vector


def evaluate_verification(pairs: list[Pair], similarities: np.ndarray, fallbacks: int,
                          images: int, far_target: float = 1e-3) -> VerificationResult:
    folds = np.array([p.fold for p in pairs])
    same = np.array([p.same for p in pairs])
    accs, thresholds, vals = [], [], []
    for k in np.unique(folds):
        train, test = folds != k, folds == k
        thr = best_threshold(similarities[train], same[train])
        thresholds.append(thr)
        accs.append(float(np.mean((similarities[test] >= thr) == same[test])))
        far_thr = threshold_at_far(similarities[train], same[train], far_target)
        vals.append(float(np.mean(similarities[test][same[test]] >= far_thr)))
    return VerificationResult(
        accuracy=float(np.mean(accs)), accuracy_std=float(np.std(accs)),
        val_at_far=float(np.mean(vals)), far_target=far_target,
        threshold=float(np.mean(thresholds)),
        threshold_at_far=threshold_at_far(similarities, same, far_target),
        fallbacks=fallbacks, pairs=len(pairs),
        images=images, fold_accuracies=[round(a, 4) for a in accs])


def best_threshold(sims: np.ndarray, same: np.ndarray) -> float:
    """The threshold maximising accuracy, placed midway between neighbouring scores."""
    order = np.argsort(sims)
    s, y = sims[order], same[order]
    # threshold just above s[i]: pairs 0..i are called different, the rest same
    correct_diff = np.cumsum(~y)  # different pairs at or below each position
    correct_same = y.sum() - np.cumsum(y)  # same pairs above each position
    correct = np.concatenate([[y.sum()], correct_diff + correct_same])
    i = int(np.argmax(correct))
    if i == 0:
        return float(s[0] - 1e-6)
    if i == len(s):
        return float(s[-1] + 1e-6)
    return float((s[i - 1] + s[i]) / 2)


def threshold_at_far(sims: np.ndarray, same: np.ndarray, far: float) -> float:
    """The lowest threshold whose false-accept rate on different pairs is at most `far`."""
    diff = np.sort(sims[~same])[::-1]
    allowed = int(np.floor(far * diff.size))  # false accepts permitted
    if allowed >= diff.size:
        return float(diff[-1])
    return float(np.nextafter(diff[allowed], np.float32(np.inf)))


def run_verification(lfw_dir: Path, pairs_file: Path, pipeline: FacePipeline,
                     cache: AnalysisCache | None) -> VerificationResult:
    pairs = read_pairs(pairs_file, lfw_dir)
    paths = sorted({p for pair in pairs for p in (pair.a, pair.b)})
    embeddings, fallbacks = embed_subjects(paths, pipeline, cache)
    row = {p: i for i, p in enumerate(paths)}
    a = embeddings[[row[p.a] for p in pairs]]
    b = embeddings[[row[p.b] for p in pairs]]
    sims = np.einsum("ij,ij->i", a, b)
    return evaluate_verification(pairs, sims, fallbacks, len(paths))
