"""The enrolled gallery: built from its spec through the live recognition pipeline, searchable.

Building is incremental: every image's analysis is cached by content, so reopening an
unchanged gallery costs a few file hashes, and an edit embeds only the new or changed photos.

Each person is matched through one template: the mean of their photos' embeddings, leaving out
a photo that does not resemble the others (with three or more photos).  On LFW, people enrolled
with three photos each were named more often at the same stranger false-name rate through the
mean than through their nearest photo (README, "Several photos per person"): every extra photo
matched on its own is one more chance for a stranger to resemble someone, and a wrongly added
photo would name its owner as this person.  The hnswlib index over the templates is persisted
beside the cache, keyed by a digest of everything it holds.

A person's `not:` photos (faces that are not them) veto them: a face at least as similar to one
of those as to the person's template is not named that person (the next nearest may be).
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from facewatch.engines.files import sha256_file
from facewatch.errors import GalleryError
from facewatch.gallery.cache import AnalysisCache, CachedFaces, analyse_files
from facewatch.gallery.index import FaceIndex
from facewatch.gallery.spec import GallerySpec, PersonSpec, load_gallery_spec
from facewatch.identity.threshold import (
    DEFAULT_MAX_FALSE_RATE,
    OperatingPoint,
    operating_point,
)
from facewatch.ownership import hand_over, make_folders
from facewatch.pipeline import FacePipeline

log = logging.getLogger(__name__)

# An enrolment photo must hold exactly one face at this detector score.  MTCNN's own last
# threshold (0.7) lets through the odd fold of a jacket or tuft of hair in large portraits
# (seen at 0.88 and 0.92 in the README's example photos); real faces score 0.99+.
ENROL_MIN_SCORE = 0.95
# With this many photos or more, a photo this far below the median of the person's photos'
# agreement with the others is left out of their template (it is likely someone else).
OUTLIER_MIN_PHOTOS = 3
OUTLIER_BELOW_MEDIAN = 0.25
# People considered per query: the nearest few templates, in case `not:` vetoes some.
_CANDIDATES = 8


@dataclass(frozen=True)
class Match:
    person_id: str | None  # None: below the threshold (unknown)
    name: str | None
    similarity: float  # to the nearest enrolled person, named or not
    nearest_id: str | None
    runner_up: float = -1.0  # similarity to the next nearest person (-1: there is none)
    vetoed: str | None = None  # a nearer person refused by their `not:` photos

    @property
    def known(self) -> bool:
        return self.person_id is not None

    @property
    def margin(self) -> float:
        """How much nearer the nearest person is than the next (2.0 when alone)."""
        return self.similarity - self.runner_up if self.nearest_id is not None else 0.0


@dataclass(frozen=True)
class EnrolmentIssue:
    person_id: str
    image: Path
    message: str

    def __str__(self) -> str:
        return f"{self.image}: {self.message} (person {self.person_id})"


@dataclass(frozen=True)
class BuildReport:
    people: int
    images: int
    enrolled: int
    analysed: int  # images decoded and run through the pipeline this time
    reused: int  # images answered from the cache
    issues: tuple[EnrolmentIssue, ...]
    not_images: int = 0  # `not:` photos enrolled as counter-examples
    left_out: tuple[EnrolmentIssue, ...] = ()  # enrolled, but not part of the template

    def as_dict(self) -> dict[str, Any]:
        return {"people": self.people, "images": self.images, "enrolled": self.enrolled,
                "analysed": self.analysed, "reused": self.reused, "not_images": self.not_images,
                "issues": [{"person": i.person_id, "image": str(i.image), "error": i.message}
                           for i in self.issues],
                "left_out": [{"person": i.person_id, "image": str(i.image), "reason": i.message}
                             for i in self.left_out]}


def default_state_dir(source: Path | None = None) -> Path:
    """Where a gallery's analyses and index are kept unless told: the folder the daemon uses
    with its default state folder (`<state_dir>/gallery`), whichever gallery it is (the cache
    is keyed by each photo's content), so a `gallery build` speeds up the daemon's start and
    nothing is written into the user's photo folders."""
    from facewatch.config.resolve import default_state_dir as daemon_state_dir
    from facewatch.config.resolve import gallery_cache_dir

    del source  # kept for callers that name their gallery
    return gallery_cache_dir(daemon_state_dir())


class Gallery:
    def __init__(self, spec: GallerySpec, people: list[PersonSpec], entry_person: np.ndarray,
                 entry_images: list[Path], index: FaceIndex, templates: FaceIndex,
                 template_person: np.ndarray, not_vectors: np.ndarray, not_person: np.ndarray,
                 point: OperatingPoint, report: BuildReport) -> None:
        self.spec = spec
        self.people = people
        self.entry_person = entry_person  # (N,) index into people, per enrolled photo
        self.entry_images = entry_images
        self.index = index  # the enrolled photos' embeddings (exact search)
        self.templates = templates  # one per person with a photo enrolled: what is searched
        self.template_person = template_person  # (P,) index into people, per template
        self.not_vectors = not_vectors  # (M, D) embeddings of the `not:` photos
        self.not_person = not_person  # (M,) index into people: whom each one is not
        self.operating_point = point
        self.report = report

    @property
    def threshold(self) -> float:
        return self.operating_point.threshold

    @property
    def enrolled_people(self) -> int:
        return len(self.templates)

    @property
    def not_images(self) -> list[Path]:
        """Every `not:` photo of the spec (for watching them for edits)."""
        return [p for person in self.people for p in person.not_images]

    @classmethod
    def open(cls, source: Path, pipeline: FacePipeline, state_dir: Path | None = None,
             largest_face: bool = False, skip_bad: bool = False,
             missing_ok: bool = False, *, threshold: float | None = None,
             max_false_rate: float = DEFAULT_MAX_FALSE_RATE) -> Gallery:
        """Load the spec, enrol what is new, and return a searchable gallery.

        Any image that cannot be enrolled fails the whole build (listing every such image),
        unless `skip_bad`: a gallery silently missing a person is worse than an error.  With
        `missing_ok` (the daemon), a gallery file that does not exist yet is an empty gallery.
        `threshold` (a user's fixed one) and `max_false_rate` go to `operating_point`, which
        says which threshold applies.
        """
        return cls.build(load_gallery_spec(source, missing_ok=missing_ok), pipeline,
                         state_dir or default_state_dir(source), largest_face, skip_bad,
                         threshold=threshold, max_false_rate=max_false_rate)

    @classmethod
    def build(cls, spec: GallerySpec, pipeline: FacePipeline, state: Path,
              largest_face: bool = False, skip_bad: bool = False, *,
              threshold: float | None = None,
              max_false_rate: float = DEFAULT_MAX_FALSE_RATE) -> Gallery:
        """A gallery from a spec already loaded (`open` reads it from its file first)."""
        if pipeline.embedder is None:
            raise GalleryError("a gallery needs an embedder")
        try:
            make_folders(state, mode=0o700)
            _make_private(state)
            cache = AnalysisCache(state / "analysis.sqlite")
        except (OSError, sqlite3.Error) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else str(exc)
            raise GalleryError(f"{state}: cannot write the gallery's cache ({reason}); "
                               f"choose another with --state-dir") from None
        try:
            return cls._build(spec, pipeline, cache, state, largest_face, skip_bad, threshold,
                              max_false_rate)
        finally:
            cache.close()

    @classmethod
    def _build(cls, spec: GallerySpec, pipeline: FacePipeline, cache: AnalysisCache,
               state: Path, largest_face: bool, skip_bad: bool, threshold: float | None,
               max_false_rate: float) -> Gallery:
        assert pipeline.embedder is not None
        signature = pipeline.signature
        jobs: list[tuple[int, Path, str, bool]] = []  # (person index, image, sha, is a `not:`)
        issues: list[EnrolmentIssue] = []
        for pi, person in enumerate(spec.people):
            for image, negative in [(i, False) for i in person.images] + \
                                   [(i, True) for i in person.not_images]:
                try:
                    jobs.append((pi, image, sha256_file(image), negative))
                except OSError as exc:
                    issues.append(EnrolmentIssue(person.id, image, f"unreadable ({exc.strerror})"))

        files = {sha: image for _, image, sha, _ in jobs}
        analyses, analysed = analyse_files(pipeline, files, cache, desc="enrolling")

        vectors, entry_person, entry_images, not_vectors, not_person = [], [], [], [], []
        for pi, image, sha, negative in jobs:
            person = spec.people[pi]
            result = analyses[sha]
            chosen = _enrolment_face(result, largest_face)
            if isinstance(chosen, str):
                issues.append(EnrolmentIssue(person.id, image,
                                             f"{chosen} (a `not:` photo)" if negative else chosen))
                continue
            if negative:
                not_vectors.append(result.embeddings[chosen])
                not_person.append(pi)
                continue
            vectors.append(result.embeddings[chosen])
            entry_person.append(pi)
            entry_images.append(image)
        if issues and not skip_bad:
            lines = "; ".join(str(i) for i in issues[:5])
            more = f" (and {len(issues) - 5} more)" if len(issues) > 5 else ""
            raise GalleryError(f"{spec.source}: {len(issues)} image(s) cannot be enrolled: "
                               f"{lines}{more}")

        dim = pipeline.embedder.size
        embeddings = np.stack(vectors) if vectors else np.zeros((0, dim), np.float32)
        persons = np.asarray(entry_person, np.int64)
        template_vectors, template_person, left_out = _templates(spec, persons, entry_images,
                                                                 embeddings)
        for issue in left_out:
            log.warning("left out of the template: %s", issue)
        templates = cls._index(state, signature, spec, template_person, template_vectors)
        point = operating_point(
            len(template_person), configured=threshold, gallery=spec.threshold,
            calibration=pipeline.embedder.manifest.open_set_for(pipeline.embedder.flip),
            manifest=pipeline.embedder.manifest.threshold, max_false_rate=max_false_rate)
        report = BuildReport(len(spec.people), sum(1 for j in jobs if not j[3]), len(vectors),
                             analysed, len(files) - analysed, tuple(issues), len(not_vectors),
                             tuple(left_out))
        nots = np.stack(not_vectors) if not_vectors else np.zeros((0, dim), np.float32)
        return cls(spec, list(spec.people), persons, entry_images, FaceIndex(embeddings),
                   templates, template_person, nots, np.asarray(not_person, np.int64), point,
                   report)

    @staticmethod
    def _index(state: Path, signature: str, spec: GallerySpec, persons: np.ndarray,
               embeddings: np.ndarray) -> FaceIndex:
        digest = hashlib.sha256(signature.encode())
        for pi, vec in zip(persons, embeddings):
            digest.update(spec.people[pi].id.encode() + b"\0")
            digest.update(vec.tobytes())
        key = digest.hexdigest()[:24]
        path = state / f"index-{key}.hnsw"
        if embeddings.shape[0] == 0:
            return FaceIndex(embeddings)
        if path.is_file():
            try:
                return FaceIndex.load(path, embeddings)
            except RuntimeError as exc:
                log.warning("%s: unreadable index (%s); rebuilding it", path, exc)
        index = FaceIndex.build(embeddings)
        for old in state.glob("index-*.hnsw"):
            old.unlink(missing_ok=True)
        tmp = path.with_suffix(".tmp")
        index.save(tmp)
        tmp.chmod(0o600)
        hand_over(tmp)  # written with sudo into the daemon's state: the daemon's file
        tmp.replace(path)
        return index

    def identify(self, embeddings: np.ndarray, threshold: float | None = None,
                 exact: bool | None = None) -> list[Match]:
        """Name each embedding: the enrolled person whose template is most similar, if at or
        above the threshold and not vetoed by their `not:` photos; otherwise unknown (with the
        nearest person still reported)."""
        thr = self.threshold if threshold is None else threshold
        q = np.asarray(embeddings, np.float32)
        if len(self.templates) == 0:
            return [Match(None, None, 0.0, None) for _ in range(q.shape[0])]
        labels, sims = self.templates.search(q, k=_CANDIDATES, exact=exact)
        out = []
        for i in range(q.shape[0]):
            candidates = [(int(self.template_person[t]), float(s))
                          for t, s in zip(labels[i], sims[i])]
            vetoed, kept = None, []
            for pi, sim in candidates:
                if self._vetoed(q[i], pi, sim):
                    vetoed = vetoed if vetoed is not None else self.people[pi].id
                else:
                    kept.append((pi, sim))
            if not kept:
                first = self.people[candidates[0][0]].id
                out.append(Match(None, None, -1.0, None, -1.0, first))
                continue
            pi, sim = kept[0]
            runner_up = kept[1][1] if len(kept) > 1 else -1.0
            person = self.people[pi]
            named = sim >= thr
            out.append(Match(person.id if named else None, person.name if named else None, sim,
                             person.id, runner_up, vetoed))
        return out

    def _vetoed(self, query: np.ndarray, person: int, similarity: float) -> bool:
        """The face is at least as similar to one of the person's `not:` photos as to them."""
        rows = self.not_vectors[self.not_person == person]
        return bool(rows.shape[0]) and float(np.max(rows @ query)) >= similarity

    def person(self, person_id: str) -> PersonSpec | None:
        return next((p for p in self.people if p.id == person_id), None)


def _templates(spec: GallerySpec, persons: np.ndarray, images: list[Path],
               embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[EnrolmentIssue]]:
    """One unit vector per person with a photo enrolled: the mean of their photos, less any
    photo that resembles the others far less than they resemble each other."""
    out, owners, left_out = [], [], []
    for pi in np.unique(persons):
        rows = np.nonzero(persons == pi)[0]
        vectors = embeddings[rows].astype(np.float64)
        keep = np.ones(len(rows), bool)
        if len(rows) >= OUTLIER_MIN_PHOTOS:
            total = vectors.sum(axis=0)
            others = total[None, :] - vectors  # each photo against the mean of the others
            agreement = np.einsum("ij,ij->i", vectors, others) / np.linalg.norm(others, axis=1)
            median = float(np.median(agreement))
            keep = agreement >= median - OUTLIER_BELOW_MEDIAN
            for r, a in zip(rows[~keep], agreement[~keep]):
                left_out.append(EnrolmentIssue(
                    spec.people[int(pi)].id, images[r],
                    f"resembles the person's other photos at {a:.2f} against {median:.2f} for "
                    f"the rest; is it someone else?"))
        mean = vectors[keep].sum(axis=0)
        out.append((mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32))
        owners.append(int(pi))
    dim = embeddings.shape[1] if embeddings.ndim == 2 else 0
    return (np.stack(out) if out else np.zeros((0, dim), np.float32),
            np.asarray(owners, np.int64), left_out)


def _make_private(folder: Path) -> None:
    """0700 for a state folder that an older version, or a looser umask, left open: it holds
    embeddings, which are biometric data.  A folder owned by someone else is left alone."""
    st = folder.stat()
    if st.st_mode & 0o077 and st.st_uid == os.geteuid():
        folder.chmod(0o700)
        log.info("%s: made private (0700); it holds face embeddings", folder)


def _enrolment_face(result: CachedFaces, largest: bool) -> int | str:
    """Index of the face to enrol, or why there is none."""
    if result.error is not None:
        return result.error
    confident = np.nonzero(result.scores >= ENROL_MIN_SCORE)[0]
    if confident.size == 0:
        return "no face found"
    if confident.size > 1 and not largest:
        return (f"{confident.size} faces found; crop it to one face, or enrol the largest "
                f"with --largest")
    boxes = result.boxes[confident]
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return int(confident[int(np.argmax(areas))])
