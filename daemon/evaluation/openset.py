"""Open-set identification on LFW per gallery size: who is named, who is refused, at which threshold.

Protocol (issue 11), for each gallery size N and each of `draws` random draws:

- N people are drawn from LFW's people with two or more photos, and `photos` random photos of
  each are enrolled (one by default), matched through the mean of their photos ("mean") or
  each photo on its own ("nearest");
- genuine probes are the enrolled people's other photos; strangers are every photo of everyone
  else (LFW's 4,069 single-photo people and the people not drawn);
- a probe is named when its nearest enrolled person reaches the threshold; TPIR is the share of
  genuine probes named as the right person, FPIR the share of strangers named at all.

Reported per size: TPIR at the threshold that gives FPIR 1 % and 0.1 % (the mean over draws of
both), what the embedder's manifest threshold gives, and what the gallery-size operating point
(facewatch.identity.threshold) gives.  With `views` > 1 a probe is a "track": the mean of that
many photos of one person, as the daemon decides on a track's mean embedding.

`pair_calibration` measures what the operating point is computed from: the similarity that a
given fraction of (stranger track, enrolled person) pairs reaches, over every LFW person.

`not_examples` shows what a gallery's `not:` photos do: in each draw, for every stranger person
with several photos of whom one photo was named as someone X, that photo is marked "not X";
counted are the false names of those strangers' *other* photos before and after, and the
enrolled people named before and after (a `not:` photo must not cost the real X).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from facewatch.errors import BadInputError
from facewatch.evaluation.lfw import embed_subjects
from facewatch.gallery.cache import AnalysisCache
from facewatch.pipeline import FacePipeline

MatchRule = Literal["mean", "nearest"]
# Per-pair rates tabulated for the operating point: below 1e-5 LFW's tail is made of its label
# errors (one photo under two names scores 0.99), so the table stops there and
# facewatch.identity.threshold extrapolates.
PAIR_RATES = (0.1, 0.03, 0.01, 0.003, 0.001, 3e-4, 1e-4, 3e-5, 1e-5)
_BINS = 20000  # histogram bins over [-1, 1] for the pair tail: 1e-4 wide


@dataclass(frozen=True)
class LabelledFaces:
    """One embedding per image, with the index of its person in `names`."""

    embeddings: np.ndarray  # (M, D) unit vectors
    person: np.ndarray  # (M,) int
    names: tuple[str, ...]
    fallbacks: int = 0  # images where O-Net had to find the face in the centre

    def photos_of(self) -> list[np.ndarray]:
        """Image indices of each person, in file order."""
        order = np.argsort(self.person, kind="stable")
        bounds = np.searchsorted(self.person[order], np.arange(len(self.names) + 1))
        return [order[bounds[i]:bounds[i + 1]] for i in range(len(self.names))]


def lfw_faces(lfw_dir: Path, pipeline: FacePipeline, cache: AnalysisCache | None,
              every: int = 1) -> LabelledFaces:
    """Every image of LFW's per-person folders (of every `every`-th person, for a sample)."""
    if not lfw_dir.is_dir():
        raise BadInputError(f"{lfw_dir}: not a directory (--lfw expects LFW's per-person folders)")
    folders = sorted(d for d in lfw_dir.iterdir() if d.is_dir())[::every]
    paths: list[Path] = []
    person: list[int] = []
    names: list[str] = []
    for folder in folders:
        images = sorted(folder.glob("*.jpg"))
        if images:
            person += [len(names)] * len(images)
            names.append(folder.name)
            paths += images
    if not paths:
        raise BadInputError(f"{lfw_dir}: no per-person folders with .jpg images")
    embeddings, fallbacks = embed_subjects(paths, pipeline, cache)
    return LabelledFaces(embeddings, np.asarray(person, np.int64), tuple(names), fallbacks)


@dataclass(frozen=True)
class OpenSetOptions:
    sizes: tuple[int, ...] = (10, 100, 1000)
    draws: int = 5
    false_rates: tuple[float, ...] = (0.01, 0.001)
    photos: int = 1  # enrolled per person
    match: MatchRule = "mean"
    views: int = 1  # photos averaged into one probe
    seed: int = 0


@dataclass(frozen=True)
class AtRate:
    false_rate: float
    tpir: float  # mean over draws
    tpir_std: float
    threshold: float
    threshold_std: float


@dataclass(frozen=True)
class AtThreshold:
    """What a given threshold did: FPIR and TPIR (means over draws)."""

    threshold: float  # mean over draws (the operating point's is the same in every draw)
    fpir: float
    tpir: float


@dataclass(frozen=True)
class NotExamples:
    marked: int  # stranger photos marked "not X" (one per stranger person named as someone)
    other_photos: int  # those strangers' other photos
    named_before: int  # ... named as anyone, before
    named_after: int  # ... and with the `not:` photos in the gallery
    tpir_before: float
    tpir_after: float


@dataclass(frozen=True)
class SizeResult:
    people: int
    draws: int
    genuine: float  # probes per draw (mean)
    strangers: float
    rank1: float
    at: tuple[AtRate, ...]
    manifest: AtThreshold | None  # the embedder manifest's threshold (the old default)
    calibrated: AtThreshold | None  # the operating point for this size
    not_examples: NotExamples | None


@dataclass(frozen=True)
class _Draw:
    people: np.ndarray  # (N,) person indices
    templates: np.ndarray  # (N, D) or (N * photos, D) for "nearest"
    genuine: np.ndarray  # (G, D) probes
    genuine_truth: np.ndarray  # (G,) position in `people`
    strangers: np.ndarray  # (S, D)
    stranger_person: np.ndarray  # (S,) person index
    stranger_rows: list[np.ndarray]  # per stranger probe: its image indices


def eligible(faces: LabelledFaces, photos: int, views: int) -> np.ndarray:
    """People who can be enrolled: `photos` to enrol plus at least `views` to probe with."""
    counts = np.bincount(faces.person, minlength=len(faces.names))
    return np.nonzero(counts >= photos + views)[0]


def _draw(faces: LabelledFaces, by_person: list[np.ndarray], pool: np.ndarray, size: int,
          options: OpenSetOptions, rng: np.random.Generator) -> _Draw:
    chosen = rng.choice(pool, size, replace=False)
    enrolled = np.zeros(len(faces.names), bool)
    enrolled[chosen] = True
    e = faces.embeddings
    templates, genuine, truth = [], [], []
    for pos, p in enumerate(chosen):
        photos = rng.permutation(by_person[p])
        gallery, probes = photos[:options.photos], photos[options.photos:]
        if options.match == "mean":
            templates.append(_unit(e[gallery].sum(axis=0)))
        else:
            templates += list(e[gallery])
        for rows in _groups(probes, options.views):
            genuine.append(_unit(e[rows].sum(axis=0)))
            truth.append(pos)
    strangers, owners, rows_of = [], [], []
    for p in np.nonzero(~enrolled)[0]:
        for rows in _groups(by_person[p], options.views):
            strangers.append(_unit(e[rows].sum(axis=0)))
            owners.append(p)
            rows_of.append(rows)
    dim = e.shape[1]
    return _Draw(chosen, np.stack(templates), np.stack(genuine), np.asarray(truth),
                 np.stack(strangers) if strangers else np.zeros((0, dim), np.float32),
                 np.asarray(owners, np.int64), rows_of)


def _groups(rows: np.ndarray, views: int) -> list[np.ndarray]:
    return [rows[i:i + views] for i in range(0, len(rows) - views + 1, views)]


def _unit(v: np.ndarray) -> np.ndarray:
    out: np.ndarray = (v / max(float(np.linalg.norm(v)), 1e-12)).astype(np.float32)
    return out


def person_scores(probes: np.ndarray, templates: np.ndarray, people: int,
                  match: MatchRule) -> np.ndarray:
    """(Q, people) similarity of each probe to each enrolled person."""
    sims = probes @ templates.T
    if match == "nearest" and templates.shape[0] != people:
        sims = sims.reshape(probes.shape[0], people, -1).max(axis=2)
    out: np.ndarray = sims
    return out


def threshold_at_fpir(stranger_best: np.ndarray, fpir: float) -> float:
    """The lowest threshold that names at most `fpir` of the strangers."""
    s = np.sort(stranger_best)[::-1]
    allowed = int(np.floor(fpir * s.size))
    if allowed >= s.size:
        return float(s[-1])
    return float(np.nextafter(np.float32(s[allowed]), np.float32(np.inf)))


def run_open_set(faces: LabelledFaces, options: OpenSetOptions,
                 manifest_threshold: float | None = None,
                 operating: dict[int, float] | None = None) -> list[SizeResult]:
    """The protocol above; `operating` maps a size to the operating point's threshold."""
    by_person = faces.photos_of()
    pool = eligible(faces, options.photos, options.views)
    results = []
    for size in options.sizes:
        if size > pool.size:
            raise BadInputError(f"a gallery of {size} people needs {size} people with at least "
                                f"{options.photos + options.views} photos; LFW here has "
                                f"{pool.size}")
        rows: dict[str, list[float]] = {}
        at: dict[float, list[tuple[float, float]]] = {f: [] for f in options.false_rates}
        nots: list[NotExamples] = []
        for d in range(options.draws):
            rng = np.random.default_rng([options.seed, size, d])
            draw = _draw(faces, by_person, pool, size, options, rng)
            g = person_scores(draw.genuine, draw.templates, size, options.match)
            s = person_scores(draw.strangers, draw.templates, size, options.match)
            g_best, g_who = g.max(axis=1), g.argmax(axis=1)
            right = g_who == draw.genuine_truth
            s_best = s.max(axis=1)
            rows.setdefault("genuine", []).append(len(draw.genuine))
            rows.setdefault("strangers", []).append(len(draw.strangers))
            rows.setdefault("rank1", []).append(float(np.mean(right)))
            for f in options.false_rates:
                t = threshold_at_fpir(s_best, f)
                at[f].append((float(np.mean(right & (g_best >= t))), t))
            for key, t_ in (("manifest", manifest_threshold),
                            ("calibrated", (operating or {}).get(size))):
                if t_ is not None:
                    rows.setdefault(f"{key}_fpir", []).append(float(np.mean(s_best >= t_)))
                    rows.setdefault(f"{key}_tpir", []).append(
                        float(np.mean(right & (g_best >= t_))))
            if options.views == 1:
                t1 = threshold_at_fpir(s_best, options.false_rates[0])
                nots.append(not_examples(faces, draw, g, s, t1, options.match, size))
        results.append(SizeResult(
            people=size, draws=options.draws, genuine=float(np.mean(rows["genuine"])),
            strangers=float(np.mean(rows["strangers"])), rank1=float(np.mean(rows["rank1"])),
            at=tuple(AtRate(f, float(np.mean([v[0] for v in at[f]])),
                            float(np.std([v[0] for v in at[f]])),
                            float(np.mean([v[1] for v in at[f]])),
                            float(np.std([v[1] for v in at[f]]))) for f in options.false_rates),
            manifest=_at(rows, "manifest", manifest_threshold),
            calibrated=_at(rows, "calibrated", (operating or {}).get(size)),
            not_examples=_sum_nots(nots)))
    return results


def _at(rows: dict[str, list[float]], key: str, threshold: float | None) -> AtThreshold | None:
    if threshold is None or f"{key}_fpir" not in rows:
        return None
    return AtThreshold(threshold, float(np.mean(rows[f"{key}_fpir"])),
                       float(np.mean(rows[f"{key}_tpir"])))


def not_examples(faces: LabelledFaces, draw: _Draw, g: np.ndarray, s: np.ndarray,
                 threshold: float, match: MatchRule, size: int) -> NotExamples:
    """Mark one wrongly named photo of each stranger person as "not <whom it was named>"; count
    the false names of their other photos, and the enrolled people named, before and after."""
    named = s.max(axis=1) >= threshold
    who = s.argmax(axis=1)
    marked: dict[int, tuple[int, int]] = {}  # stranger person -> (probe row, enrolled position)
    for i in np.nonzero(named)[0]:
        p = int(draw.stranger_person[i])
        if p not in marked:
            marked[p] = (int(i), int(who[i]))
    counts = np.bincount(faces.person, minlength=len(faces.names))
    marked = {p: v for p, v in marked.items() if counts[p] >= 2}
    if not marked:
        return NotExamples(0, 0, 0, 0, *([float(np.mean(_named_right(g, draw, threshold)))] * 2))
    not_vectors = np.stack([draw.strangers[i] for i, _ in marked.values()])
    not_owner = np.array([x for _, x in marked.values()])
    others = np.array([i for i, p in enumerate(draw.stranger_person)
                       if int(p) in marked and i != marked[int(p)][0]], np.int64)
    before = int(np.sum(named[others])) if others.size else 0
    after = 0
    if others.size:
        after = int(np.sum(_vetoed(s[others], draw.strangers[others], not_vectors,
                                   not_owner).max(axis=1) >= threshold))
    g_after = _vetoed(g, draw.genuine, not_vectors, not_owner)
    right_after = (g_after.argmax(axis=1) == draw.genuine_truth) & \
        (g_after.max(axis=1) >= threshold)
    return NotExamples(len(marked), int(others.size), before, after,
                       float(np.mean(_named_right(g, draw, threshold))),
                       float(np.mean(right_after)))


def _named_right(g: np.ndarray, draw: _Draw, threshold: float) -> np.ndarray:
    out: np.ndarray = (g.argmax(axis=1) == draw.genuine_truth) & (g.max(axis=1) >= threshold)
    return out


def _vetoed(scores: np.ndarray, probes: np.ndarray, not_vectors: np.ndarray,
            not_owner: np.ndarray) -> np.ndarray:
    """Scores with a person set to -inf for a probe at least as similar to one of their `not:`
    vectors as to them (as facewatch.gallery.gallery.Gallery.identify does)."""
    out: np.ndarray = scores.astype(np.float64, copy=True)
    to_not = probes @ not_vectors.T  # (Q, M)
    for m, owner in enumerate(not_owner):
        out[to_not[:, m] >= scores[:, owner], owner] = -np.inf
    return out


@dataclass(frozen=True)
class PairTail:
    rates: tuple[float, ...]
    thresholds: tuple[float, ...]
    pairs: int
    probes: int


def pair_calibration(faces: LabelledFaces, views: int = 3,
                     rates: Sequence[float] = PAIR_RATES) -> PairTail:
    """The similarity that each fraction of (stranger, enrolled person) pairs reaches.

    Strangers are "tracks" (the mean of `views` photos of one person, every person with that
    many); enrolled people are every LFW person's first photo; a pair is a track and a person
    other than its own.
    """
    by_person = faces.photos_of()
    e = faces.embeddings
    probes, owners = [], []
    for p, rows in enumerate(by_person):
        for group in _groups(rows, views):
            probes.append(_unit(e[group].sum(axis=0)))
            owners.append(p)
    firsts = np.array([rows[0] for rows in by_person if rows.size])
    templates, template_person = e[firsts], faces.person[firsts]
    q, q_person = np.stack(probes), np.asarray(owners)
    hist = np.zeros(_BINS + 1, np.int64)
    pairs = 0
    for start in range(0, q.shape[0], 512):
        sims = q[start:start + 512] @ templates.T
        other = q_person[start:start + 512, None] != template_person[None, :]
        values = sims[other]
        bins = np.clip(((values + 1.0) / 2.0 * _BINS).astype(np.int64), 0, _BINS)
        hist += np.bincount(bins, minlength=_BINS + 1)
        pairs += values.size
    at_or_above = np.cumsum(hist[::-1])[::-1]  # pairs in bin k or higher
    thresholds = []
    for rate in rates:
        k = int(np.argmax(at_or_above <= rate * pairs))
        thresholds.append(round(k / _BINS * 2.0 - 1.0, 4))
    return PairTail(tuple(rates), tuple(thresholds), pairs, q.shape[0])


def _sum_nots(nots: list[NotExamples]) -> NotExamples | None:
    if not nots:
        return None
    return NotExamples(sum(n.marked for n in nots), sum(n.other_photos for n in nots),
                       sum(n.named_before for n in nots), sum(n.named_after for n in nots),
                       float(np.mean([n.tpir_before for n in nots])),
                       float(np.mean([n.tpir_after for n in nots])))
