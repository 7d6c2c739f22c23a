"""The gallery: its YAML and folder layouts, enrolment through the live pipeline, the analysis
cache, identification, and in-place edits that keep the user's comments."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from facewatch.engines.store import ModelStore
from facewatch.errors import GalleryError
from facewatch.gallery.editing import (
    add_person_images,
    edit_gallery,
    relative_to_gallery,
    remove_person,
)
from facewatch.gallery.gallery import Gallery
from facewatch.gallery.spec import load_gallery_spec
from facewatch.images import load_image
from facewatch.pipeline import FacePipeline, PipelineSettings

TRAIN_PEOPLE = ["alex_lacamoire", "biden", "kit_harington", "obama", "rose_leslie"]


@pytest.fixture(scope="session")
def knn(examples: Path) -> Path:
    """face_recognition's small named gallery: train/<person>/*.jpg and test/*.jpg."""
    return examples / "knn_examples"


@pytest.fixture(scope="module")
def built(knn: Path, pipeline: FacePipeline, tmp_path_factory: pytest.TempPathFactory
          ) -> tuple[Path, Gallery]:
    """The folder-per-person gallery enrolled once; its state dir holds a warm cache."""
    state = tmp_path_factory.mktemp("gallery") / "state"
    return state, Gallery.open(knn / "train", pipeline, state_dir=state)


@pytest.fixture
def state(built: tuple[Path, Gallery], tmp_path: Path) -> Path:
    """A fresh state dir holding a copy of the warm analysis cache."""
    fresh = tmp_path / "state"
    fresh.mkdir(mode=0o700)
    shutil.copyfile(built[0] / "analysis.sqlite", fresh / "analysis.sqlite")
    return fresh


def _yaml(tmp_path: Path, text: str, name: str = "gallery.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# The spec -----------------------------------------------------------------------------

@pytest.mark.parametrize("body, line, field, message", [
    # a missing image
    (("people:\n  - id: obama\n    images: [{obama}]\n  - id: biden\n    images:\n"
      "      - {obama}\n      - nope/biden.jpg\n"),
     7, "people[1].images[1]", "'nope/biden.jpg' matches no image"),
    # an unknown key
    (("people:\n  - id: obama\n    images: [{obama}]\n  - id: biden\n    nickname: Joe\n"
      "    images: [{obama}]\n"),
     5, "people[1].nickname", "unknown key 'nickname' (allowed: id, images, metadata, name, not)"),
    # the same id twice
    (("# two entries\npeople:\n  - id: obama\n    images: [{obama}]\n\n  - id: obama\n"
      "    images: [{obama}]\n"),
     6, "people[1].id", "'obama' is already used by people[0]"),
    # wrong types
    ("people:\n  - id: obama\n    images: 5\n", 3, "people[0].images", "valid"),
    ("people:\n  - id: 44\n    images: [{obama}]\n", 2, "people[0].id", "valid string"),
    ("threshold: high\npeople: []\n", 1, "threshold", "valid number"),
    ("people:\n  - id: obama\n    images: [{obama}]\n    metadata: [vip]\n", 4,
     "people[0].metadata", "valid dictionary"),
    ("people:\n  - id: barack obama\n    images: [{obama}]\n", 2, "people[0].id", "should match pattern"),
    ("people:\n  - id: obama\n    images: []\n", 2, "people[0].images", "list at least one image"),
    ("people:\n  - id: obama\n    images: [{obama}]\npeople: []\n", 4, "people", "duplicate key"),
], ids=["missing-image", "unknown-key", "duplicate-id", "images-int", "id-int", "threshold-str",
        "metadata-list", "id-pattern", "no-images", "duplicate-key"])
def test_spec_errors_name_file_line_and_field(tmp_path: Path, examples: Path, body: str, line: int,
                                              field: str, message: str) -> None:
    path = _yaml(tmp_path, body.format(obama=examples / "obama.jpg"))
    with pytest.raises(GalleryError) as info:
        load_gallery_spec(path)
    text = str(info.value)
    assert text.startswith(f"{path}:{line}: {field}: "), text
    assert message in text
    assert "\n" not in text


def test_malformed_yaml(tmp_path: Path) -> None:
    path = _yaml(tmp_path, "people:\n  - id: obama\n    images: [a.jpg\n  - id: biden\n")
    with pytest.raises(GalleryError) as info:
        load_gallery_spec(path)
    assert str(info.value).startswith(f"{path}:4: malformed YAML (")


@pytest.mark.parametrize("body", ["- id: obama\n", "just words\n"])
def test_top_level_must_be_a_mapping(tmp_path: Path, body: str) -> None:
    path = _yaml(tmp_path, body)
    with pytest.raises(GalleryError, match="expected a mapping with `people:`"):
        load_gallery_spec(path)


def test_images_as_globs_folders_and_relative_paths(tmp_path: Path, knn: Path) -> None:
    photos = tmp_path / "photos"
    shutil.copytree(knn / "train" / "kit_harington", photos / "kit")
    path = _yaml(tmp_path, f"threshold: 0.5\npeople:\n"
                           f"  - id: kit\n    name: Kit Harington\n    metadata: {{show: GoT}}\n"
                           f"    images: ['photos/kit/*.jpeg', photos/kit/john1.jpeg]\n"
                           f"  - id: rose\n    images: {knn / 'train' / 'rose_leslie'}\n")
    spec = load_gallery_spec(path)
    assert spec.threshold == 0.5
    kit, rose = spec.people
    assert (kit.id, kit.name, kit.metadata) == ("kit", "Kit Harington", {"show": "GoT"})
    assert [p.name for p in kit.images] == ["john1.jpeg", "john2.jpeg"]  # no duplicates
    assert all(p.is_absolute() for p in kit.images)
    assert (rose.name, [p.name for p in rose.images]) == ("rose", ["img1.jpg", "img2.jpg"])


def test_folder_per_person_spec(knn: Path) -> None:
    spec = load_gallery_spec(knn / "train")
    assert [p.id for p in spec.people] == TRAIN_PEOPLE
    assert spec.people[0].name == "alex lacamoire"
    assert [len(p.images) for p in spec.people] == [1, 2, 2, 2, 2]
    assert spec.is_folder


def test_a_gallery_with_nobody_in_it(tmp_path: Path, pipeline: FacePipeline) -> None:
    """Nobody enrolled yet is a gallery (every face unknown), whatever its layout; for the
    daemon, so is a gallery file that does not exist yet."""
    (tmp_path / "folder" / "empty_person").mkdir(parents=True)
    (tmp_path / "empty.yaml").write_text("# nobody yet\n")
    (tmp_path / "none.yaml").write_text("people: []\n")
    for source in (tmp_path / "folder", tmp_path / "empty.yaml", tmp_path / "none.yaml"):
        assert load_gallery_spec(source).people == ()
    missing = tmp_path / "not" / "yet" / "gallery.yaml"
    with pytest.raises(GalleryError, match="no such file"):
        load_gallery_spec(missing)
    assert load_gallery_spec(missing, missing_ok=True).people == ()
    gallery = Gallery.open(missing, pipeline, state_dir=tmp_path / "state", missing_ok=True)
    assert gallery.people == [] and not missing.parent.exists()
    embeddings = np.eye(2, pipeline.embedder.size if pipeline.embedder else 128, dtype=np.float32)
    assert [m.known for m in gallery.identify(embeddings)] == [False, False]
    # a dangling link is a broken gallery, not a missing one
    (tmp_path / "link.yaml").symlink_to(tmp_path / "nowhere.yaml")
    with pytest.raises(GalleryError):
        load_gallery_spec(tmp_path / "link.yaml", missing_ok=True)


# Building and the cache ---------------------------------------------------------------

def test_folder_gallery_builds_then_reuses_its_cache(built: tuple[Path, Gallery], knn: Path,
                                                     pipeline: FacePipeline) -> None:
    state, first = built
    assert (first.report.people, first.report.images, first.report.enrolled) == (5, 9, 9)
    assert (first.report.analysed, first.report.reused, first.report.issues) == (9, 0, ())
    # the spec sets none: the embedder's calibration, for five people
    assert first.operating_point.source == "calibration" and first.operating_point.people == 5
    again = Gallery.open(knn / "train", pipeline, state_dir=state)
    assert (again.report.analysed, again.report.reused, again.report.enrolled) == (0, 9, 9)
    np.testing.assert_array_equal(again.index.embeddings, first.index.embeddings)
    # each enrolled photo is its person's
    for person_index, image in zip(again.entry_person, again.entry_images):
        assert image.parent.name == again.people[person_index].id


def test_state_files_are_private(built: tuple[Path, Gallery]) -> None:
    state = built[0]
    assert state.stat().st_mode & 0o777 == 0o700
    files = sorted(p.name for p in state.iterdir())
    assert "analysis.sqlite" in files and any(f.startswith("index-") for f in files)
    for path in state.iterdir():
        assert path.stat().st_mode & 0o777 == 0o600, path.name  # embeddings are biometric data


def test_cache_is_keyed_by_content_and_embedder(tmp_path: Path, knn: Path, state: Path,
                                                models_dir: Path, pipeline: FacePipeline) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copyfile(knn / "train" / "obama" / "obama2.jpg", photos / "a.jpg")
    gallery = _yaml(tmp_path, "people:\n  - id: obama\n    images: [photos/a.jpg]\n"
                              f"  - id: biden\n    images: [{knn / 'train' / 'biden' / 'biden2.jpg'}]\n")
    # the same bytes under another name and path: answered from the cache
    assert Gallery.open(gallery, pipeline, state_dir=state).report.analysed == 0
    (photos / "a.jpg").rename(photos / "b.jpg")
    gallery.write_text(gallery.read_text().replace("photos/a.jpg", "photos/b.jpg"))
    assert Gallery.open(gallery, pipeline, state_dir=state).report.analysed == 0
    # an edited photo is analysed again, and only it
    image = load_image(photos / "b.jpg")
    from PIL import Image
    Image.fromarray(image[:, 2:]).save(photos / "b.jpg", quality=95)
    report = Gallery.open(gallery, pipeline, state_dir=state).report
    assert (report.analysed, report.reused, report.enrolled) == (1, 1, 2)
    # another embedder: everything again, with its own embedding size
    sirius = FacePipeline.load(PipelineSettings(embedder="mobilefacenet-sirius"), ModelStore(models_dir))
    other = Gallery.open(gallery, sirius, state_dir=state)
    assert (other.report.analysed, other.index.embeddings.shape) == (2, (2, 192))
    # and back: both analyses are kept side by side
    assert Gallery.open(gallery, pipeline, state_dir=state).report.analysed == 0


def test_photo_without_a_face_is_refused(tmp_path: Path, photos: Path, knn: Path, state: Path,
                                         pipeline: FacePipeline) -> None:
    dogs = photos / "dlib_examples_faces" / "dogs.jpg"
    gallery = _yaml(tmp_path, f"people:\n  - id: obama\n    images: [{knn / 'train' / 'obama'}]\n"
                              f"  - id: rex\n    images: [{dogs}]\n")
    with pytest.raises(GalleryError) as info:
        Gallery.open(gallery, pipeline, state_dir=state)
    assert f"{dogs}: no face found (person rex)" in str(info.value)
    skipped = Gallery.open(gallery, pipeline, state_dir=state, skip_bad=True)
    assert (skipped.report.enrolled, skipped.report.images) == (2, 3)
    assert [(i.person_id, i.image) for i in skipped.report.issues] == [("rex", dogs)]


def test_unreadable_photo_is_refused(tmp_path: Path, state: Path, pipeline: FacePipeline) -> None:
    fake = tmp_path / "fake.jpg"
    fake.write_text("not a photo")
    gallery = _yaml(tmp_path, "people:\n  - id: ghost\n    images: [fake.jpg]\n")
    with pytest.raises(GalleryError) as info:
        Gallery.open(gallery, pipeline, state_dir=state)
    assert f"{fake}: not an image" in str(info.value)


def test_photo_with_several_faces(tmp_path: Path, examples: Path, state: Path,
                                  pipeline: FacePipeline) -> None:
    two = examples / "two_people.jpg"
    gallery = _yaml(tmp_path, f"people:\n  - id: someone\n    images: [{two}]\n")
    with pytest.raises(GalleryError) as info:
        Gallery.open(gallery, pipeline, state_dir=state)
    assert f"{two}: 2 faces found" in str(info.value) and "--largest" in str(info.value)
    largest = Gallery.open(gallery, pipeline, state_dir=state, largest_face=True)
    assert largest.report.enrolled == 1
    faces = pipeline.analyze([load_image(two)])[0]
    boxes = faces.detections.boxes
    biggest = int(np.argmax((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])))
    assert faces.embeddings is not None
    np.testing.assert_allclose(largest.index.embeddings[0], faces.embeddings[biggest], atol=1e-5)


# Identification -----------------------------------------------------------------------

def _identify(gallery: Gallery, pipeline: FacePipeline, image: Path, exact: bool | None = None
              ) -> list[tuple[str | None, str | None, float]]:
    faces = pipeline.analyze([load_image(image)])[0]
    keep = faces.detections.scores >= 0.95
    assert faces.embeddings is not None
    return [(m.person_id, m.nearest_id, m.similarity)
            for m in gallery.identify(faces.embeddings[keep], exact=exact)]


def test_identify_enrolled_people(built: tuple[Path, Gallery], knn: Path, pipeline: FacePipeline) -> None:
    gallery = built[1]
    test = knn / "test"
    # measured similarities: 0.89, 0.85, 0.89
    assert [m[0] for m in _identify(gallery, pipeline, test / "obama1.jpg")] == ["obama"]
    assert [m[0] for m in _identify(gallery, pipeline, test / "alex_lacamoire1.jpg")] == ["alex_lacamoire"]
    assert [m[0] for m in _identify(gallery, pipeline, test / "johnsnow_test1.jpg")] == ["kit_harington"]
    # Biden (0.82), Obama (0.83) and a stranger in the crowd (0.15 to anyone enrolled)
    matches = _identify(gallery, pipeline, test / "obama_and_biden.jpg")
    assert sorted(m[0] for m in matches if m[0]) == ["biden", "obama"]
    assert [m[0] for m in matches].count(None) == 1
    known = [m[2] for m in matches if m[0]]
    assert min(known) > gallery.threshold + 0.2
    # the graph search gives the same answers as the exact one
    graph = _identify(gallery, pipeline, test / "obama_and_biden.jpg", exact=False)
    assert [m[:2] for m in graph] == [m[:2] for m in matches]
    np.testing.assert_allclose([m[2] for m in graph], [m[2] for m in matches], atol=1e-5)


def test_someone_not_enrolled_is_unknown(tmp_path: Path, knn: Path, state: Path,
                                         pipeline: FacePipeline) -> None:
    train = knn / "train"
    gallery_file = _yaml(tmp_path, "people:\n" + "".join(
        f"  - id: {p}\n    images: [{train / p}]\n" for p in TRAIN_PEOPLE if p != "alex_lacamoire"))
    gallery = Gallery.open(gallery_file, pipeline, state_dir=state)
    assert gallery.report.analysed == 0 and len(gallery.people) == 4
    [(person, nearest, similarity)] = _identify(gallery, pipeline, knn / "test" / "alex_lacamoire1.jpg")
    assert person is None and nearest in TRAIN_PEOPLE
    assert similarity < gallery.threshold - 0.05  # measured 0.23 against 0.307 (foamliu)
    assert [m[0] for m in _identify(gallery, pipeline, knn / "test" / "obama1.jpg")] == ["obama"]


def test_gallery_threshold_applies(tmp_path: Path, knn: Path, state: Path, pipeline: FacePipeline) -> None:
    gallery_file = _yaml(tmp_path, f"threshold: 0.95\npeople:\n  - id: obama\n"
                                   f"    images: [{knn / 'train' / 'obama'}]\n")
    gallery = Gallery.open(gallery_file, pipeline, state_dir=state)
    assert gallery.threshold == 0.95
    [(person, nearest, similarity)] = _identify(gallery, pipeline, knn / "test" / "obama1.jpg")
    assert (person, nearest) == (None, "obama") and 0.5 < similarity < 0.95


# Editing ------------------------------------------------------------------------------

COMMENTED = """\
# Who the front door camera knows.
threshold: 0.4  # from the LFW evaluation
people:
  # the boss
  - id: obama
    name: Barack Obama
    images:
      - {obama}  # official portrait
  # second in command
  - id: kit  # the actor
    images: [{kit}]
"""


def _commented(tmp_path: Path, knn: Path) -> Path:
    return _yaml(tmp_path, COMMENTED.format(obama=knn / "train" / "obama" / "obama2.jpg",
                                            kit=knn / "train" / "kit_harington" / "john1.jpeg"))


def _comments(text: str) -> list[str]:
    return [line[line.index("#"):] for line in text.splitlines() if "#" in line]


def test_add_keeps_comments(tmp_path: Path, knn: Path, state: Path, pipeline: FacePipeline) -> None:
    path = _commented(tmp_path, knn)
    original = _comments(path.read_text())

    def enrol(candidate: Path) -> None:
        Gallery.open(candidate, pipeline, state_dir=state)

    biden = str(knn / "train" / "biden" / "biden2.jpg")
    edit_gallery(path, add_person_images("biden", "Joe Biden", [biden]), enrol)  # a new person
    edit_gallery(path, add_person_images("obama", None, [str(knn / "train" / "obama" / "obama.jpg")]),
                 enrol)  # a photo more for someone enrolled
    assert _comments(path.read_text()) == original
    spec = load_gallery_spec(path)
    assert [p.id for p in spec.people] == ["obama", "kit", "biden"]
    assert spec.people[2].name == "Joe Biden" and [str(i) for i in spec.people[2].images] == [biden]
    assert [i.name for i in spec.people[0].images] == ["obama2.jpg", "obama.jpg"]


def test_remove_keeps_the_other_peoples_comments(tmp_path: Path, knn: Path, state: Path,
                                                 pipeline: FacePipeline) -> None:
    path = _commented(tmp_path, knn)
    original = _comments(path.read_text())
    edit_gallery(path, remove_person("obama"), lambda candidate: Gallery.open(candidate, pipeline,
                                                                             state_dir=state) and None)
    assert [p.id for p in load_gallery_spec(path).people] == ["kit"]
    # Obama's own comments may go with him ("# the boss" is kept too: ruamel files it under
    # `people:`); the comment written above kit must stay
    assert "# second in command" in _comments(path.read_text()), (
        "ruamel glues the comment lines above an entry to the end of the entry before it, so "
        "deleting that entry deletes them:\n" + path.read_text())
    assert set(_comments(path.read_text())) >= set(original) - {"# the boss", "# official portrait"}


def test_failed_add_leaves_the_gallery_unchanged(tmp_path: Path, knn: Path, photos: Path, state: Path,
                                                 pipeline: FacePipeline) -> None:
    path = _commented(tmp_path, knn)
    before = path.read_bytes()
    path.chmod(0o640)

    def enrol(candidate: Path) -> None:
        Gallery.open(candidate, pipeline, state_dir=state)

    dogs = photos / "dlib_examples_faces" / "dogs.jpg"
    with pytest.raises(GalleryError) as info:
        edit_gallery(path, add_person_images("rex", None, [str(dogs)]), enrol)
    assert f"{dogs}: no face found (person rex)" in str(info.value)
    with pytest.raises(GalleryError, match="no person with id 'biden'"):
        edit_gallery(path, remove_person("biden"), enrol)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gallery.yaml", "state"]  # no temp files
    edit_gallery(path, add_person_images("biden", None, [str(knn / "train" / "biden" / "biden2.jpg")]), enrol)
    assert path.stat().st_mode & 0o777 == 0o640  # an edit keeps the file's permissions


def test_add_to_a_new_or_empty_gallery(tmp_path: Path, knn: Path, state: Path, pipeline: FacePipeline) -> None:
    image = str(knn / "train" / "biden" / "biden2.jpg")
    # into a folder that does not exist yet: made, with the gallery in it
    path = tmp_path / "new" / "folder" / "gallery.yaml"
    edit_gallery(path, add_person_images("biden", None, [image]),
                 lambda candidate: Gallery.open(candidate, pipeline, state_dir=state) and None)
    assert [p.id for p in load_gallery_spec(path).people] == ["biden"]
    assert path.parent.stat().st_mode & 0o777 == tmp_path.stat().st_mode & 0o777
    for text in (None, "people:\n", "# nobody yet\n"):
        path = tmp_path / "new.yaml"
        path.unlink(missing_ok=True)
        if text is not None:
            path.write_text(text)
        edit_gallery(path, add_person_images("biden", None, [image]),
                     lambda candidate: Gallery.open(candidate, pipeline, state_dir=state) and None)
        assert [p.id for p in load_gallery_spec(path).people] == ["biden"], text


def test_relative_to_gallery(tmp_path: Path, knn: Path) -> None:
    (tmp_path / "photos").mkdir()
    inside = tmp_path / "photos" / "a.jpg"
    assert relative_to_gallery(tmp_path / "gallery.yaml", inside) == "photos/a.jpg"
    outside = knn / "train" / "obama" / "obama.jpg"
    # as given: a path through a symbolic link (../shared may be one) keeps the link
    assert relative_to_gallery(tmp_path / "gallery.yaml", outside) == str(outside)
    link = tmp_path / "linked"
    link.symlink_to(knn / "train", target_is_directory=True)
    assert relative_to_gallery(tmp_path / "gallery.yaml", link / "obama" / "obama.jpg") == \
        "linked/obama/obama.jpg"


def test_folder_gallery_is_not_edited_in_place(knn: Path, pipeline: FacePipeline) -> None:
    with pytest.raises(GalleryError, match="folder-per-person"):
        edit_gallery(knn / "train", remove_person("obama"), lambda candidate: None)
