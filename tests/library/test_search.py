"""Search by face over stored tracks: from a new photo through the real pipeline, from a
crop, from a stored track; by similarity or newest first; filtered by camera and time."""

from __future__ import annotations

from pathlib import Path

import pytest

from facewatch.errors import NoFaceError
from facewatch.images import load_image
from facewatch.library.search import search, vector_from_crop, vector_from_image
from facewatch.library.sqlite_store import SqliteLibrary
from facewatch.pipeline import FacePipeline
from tests.library.conftest import PEOPLE, T0, FaceSample, record

THRESHOLD = 0.307  # foamliu's naming threshold


@pytest.fixture
def library(tmp_path: Path, lfw_faces: dict[str, list[FaceSample]], embedder_sha: str) -> SqliteLibrary:
    """Three tracks per person, two views each, cameras alternating door / yard."""
    store = SqliteLibrary(tmp_path / "library", writer=True)
    for p, person in enumerate(PEOPLE):
        for t in range(3):
            r = record(lfw_faces[person][2 * t:2 * t + 2], p * 10 + t, embedder_sha,
                       camera="door" if t % 2 == 0 else "yard")
            store.add(r, r.mean_embedding())
    return store


def _people(hits: list) -> list[str]:  # type: ignore[type-arg]
    return [PEOPLE[h.face.track_id // 10] for h in hits]


def test_a_new_photo_finds_when_that_person_was_here(
        library: SqliteLibrary, lfw_dir: Path, pipeline: FacePipeline, embedder_sha: str) -> None:
    photo = sorted((lfw_dir / "Jacques_Chirac").glob("*.jpg"))[8]  # not stored
    q = vector_from_image(pipeline, load_image(photo), str(photo))
    hits = search(library, q, embedder_sha, limit=5, min_similarity=THRESHOLD)
    assert _people(hits) == ["Jacques_Chirac"] * 3
    assert hits[0].similarity >= hits[1].similarity >= hits[2].similarity >= THRESHOLD
    newest = search(library, q, embedder_sha, order="newest", min_similarity=THRESHOLD)
    assert [h.face.track_id for h in newest] == [32, 31, 30]
    yard = search(library, q, embedder_sha, camera="yard", min_similarity=THRESHOLD)
    assert [h.face.track_id for h in yard] == [31]
    window = search(library, q, embedder_sha, since=T0 + 305, until=T0 + 325,
                    min_similarity=THRESHOLD)
    assert [h.face.track_id for h in window] == [31, 32]
    assert search(library, q, embedder_sha, camera="garage") == []
    # without a floor, everyone else comes after
    everyone = search(library, q, embedder_sha, limit=24)
    assert len(everyone) == 24 and _people(everyone[:3]) == ["Jacques_Chirac"] * 3


def test_search_from_a_stored_track_and_from_a_crop(
        library: SqliteLibrary, pipeline: FacePipeline, embedder_sha: str) -> None:
    face = library.find("door", 50)  # John Ashcroft
    assert face is not None
    q = library.vectors([face.id])[0]
    hits = search(library, q, embedder_sha, min_similarity=THRESHOLD, exclude=(face.id,))
    assert face.id not in [h.face.id for h in hits]
    # his other two tracks first (a stranger may follow just above the naming threshold)
    assert _people(hits[:2]) == ["John_Ashcroft"] * 2 and all(h.similarity < 0.5 for h in hits[2:])
    crop = load_image(face.crop)  # the stored 112x112 aligned crop, embedded as it is
    hits = search(library, vector_from_crop(pipeline, crop), embedder_sha, limit=3,
                  min_similarity=THRESHOLD)
    assert hits[0].face.id == face.id and hits[0].similarity > 0.9


def test_an_image_without_a_face_is_one_clear_error(pipeline: FacePipeline, photos: Path) -> None:
    dogs = photos / "dlib_examples_faces" / "dogs.jpg"
    with pytest.raises(NoFaceError, match=f"^{dogs}: no face found to search for$"):
        vector_from_image(pipeline, load_image(dogs), str(dogs))
