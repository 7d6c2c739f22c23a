"""The enrolled gallery: built from its spec through the live recognition pipeline, searchable.

Building is incremental: every image's analysis is cached by content, so reopening an
unchanged gallery costs a few file hashes, and an edit embeds only the new or changed photos.
The hnswlib index is persisted beside the cache, keyed by a digest of everything it holds.
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
from facewatch.ownership import hand_over, make_folders
from facewatch.pipeline import FacePipeline

log = logging.getLogger(__name__)

# An enrolment photo must hold exactly one face at this detector score.  MTCNN's own last
# threshold (0.7) lets through the odd fold of a jacket or tuft of hair in large portraits
# (seen at 0.88 and 0.92 in the README's example photos); real faces score 0.99+.
ENROL_MIN_SCORE = 0.95
# Used when neither the gallery nor the embedder's manifest sets a threshold.
FALLBACK_THRESHOLD = 0.4


@dataclass(frozen=True)
class Match:
    person_id: str | None  # None: below the threshold (unknown)
    name: str | None
    similarity: float  # to the nearest enrolled person, named or not
    nearest_id: str | None

    @property
    def known(self) -> bool:
        return self.person_id is not None


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

    def as_dict(self) -> dict[str, Any]:
        return {"people": self.people, "images": self.images, "enrolled": self.enrolled,
                "analysed": self.analysed, "reused": self.reused,
                "issues": [{"person": i.person_id, "image": str(i.image), "error": i.message}
                           for i in self.issues]}


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
                 entry_images: list[Path], index: FaceIndex, threshold: float,
                 report: BuildReport) -> None:
        self.spec = spec
        self.people = people
        self.entry_person = entry_person  # (N,) index into people, per index entry
        self.entry_images = entry_images
        self.index = index
        self.threshold = threshold
        self.report = report

    @classmethod
    def open(cls, source: Path, pipeline: FacePipeline, state_dir: Path | None = None,
             largest_face: bool = False, skip_bad: bool = False,
             missing_ok: bool = False) -> Gallery:
        """Load the spec, enrol what is new, and return a searchable gallery.

        Any image that cannot be enrolled fails the whole build (listing every such image),
        unless `skip_bad`: a gallery silently missing a person is worse than an error.  With
        `missing_ok` (the daemon), a gallery file that does not exist yet is an empty gallery.
        """
        return cls.build(load_gallery_spec(source, missing_ok=missing_ok), pipeline,
                         state_dir or default_state_dir(source), largest_face, skip_bad)

    @classmethod
    def build(cls, spec: GallerySpec, pipeline: FacePipeline, state: Path,
              largest_face: bool = False, skip_bad: bool = False) -> Gallery:
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
            return cls._build(spec, pipeline, cache, state, largest_face, skip_bad)
        finally:
            cache.close()

    @classmethod
    def _build(cls, spec: GallerySpec, pipeline: FacePipeline, cache: AnalysisCache,
               state: Path, largest_face: bool, skip_bad: bool) -> Gallery:
        signature = pipeline.signature
        jobs: list[tuple[int, Path, str]] = []  # (person index, image, sha)
        issues: list[EnrolmentIssue] = []
        for pi, person in enumerate(spec.people):
            for image in person.images:
                try:
                    jobs.append((pi, image, sha256_file(image)))
                except OSError as exc:
                    issues.append(EnrolmentIssue(person.id, image, f"unreadable ({exc.strerror})"))

        files = {sha: image for _, image, sha in jobs}
        analyses, analysed = analyse_files(pipeline, files, cache, desc="enrolling")

        vectors, entry_person, entry_images = [], [], []
        for pi, image, sha in jobs:
            person = spec.people[pi]
            result = analyses[sha]
            chosen = _enrolment_face(result, largest_face)
            if isinstance(chosen, str):
                issues.append(EnrolmentIssue(person.id, image, chosen))
                continue
            vectors.append(result.embeddings[chosen])
            entry_person.append(pi)
            entry_images.append(image)
        if issues and not skip_bad:
            lines = "; ".join(str(i) for i in issues[:5])
            more = f" (and {len(issues) - 5} more)" if len(issues) > 5 else ""
            raise GalleryError(f"{spec.source}: {len(issues)} image(s) cannot be enrolled: "
                               f"{lines}{more}")

        dim = pipeline.embedder.size if pipeline.embedder else 0
        embeddings = np.stack(vectors) if vectors else np.zeros((0, dim), np.float32)
        persons = np.asarray(entry_person, np.int64)
        index = cls._index(state, signature, spec, persons, entry_images, embeddings)
        threshold = spec.threshold or (pipeline.embedder.manifest.threshold
                                       if pipeline.embedder else None) or FALLBACK_THRESHOLD
        report = BuildReport(len(spec.people), len(jobs), len(vectors), analysed,
                             len(files) - analysed, tuple(issues))
        return cls(spec, list(spec.people), persons, entry_images, index, threshold, report)

    @staticmethod
    def _index(state: Path, signature: str, spec: GallerySpec, persons: np.ndarray,
               images: list[Path], embeddings: np.ndarray) -> FaceIndex:
        digest = hashlib.sha256(signature.encode())
        for pi, image, vec in zip(persons, images, embeddings):
            # the file system's bytes: a name that is not UTF-8 is a valid path all the same
            digest.update(spec.people[pi].id.encode() + b"\0" + os.fsencode(image) + b"\0")
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
        """Name each embedding: the enrolled person with the most similar photo, if at or
        above the threshold; otherwise unknown (with the nearest person still reported)."""
        thr = self.threshold if threshold is None else threshold
        if len(self.index) == 0:
            return [Match(None, None, 0.0, None) for _ in range(embeddings.shape[0])]
        # the nearest photo decides: a person with several photos matches on their closest one
        labels, sims = self.index.search(embeddings, k=1, exact=exact)
        out = []
        for lab, sim in zip(labels, sims):
            best = int(lab[0])
            person = self.people[int(self.entry_person[best])]
            s = float(sim[0])
            if s >= thr:
                out.append(Match(person.id, person.name, s, person.id))
            else:
                out.append(Match(None, None, s, person.id))
        return out

    def person(self, person_id: str) -> PersonSpec | None:
        return next((p for p in self.people if p.id == person_id), None)


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
