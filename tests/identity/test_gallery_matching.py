"""How the gallery names a face: one template per person (the mean of their photos, an odd
photo left out), `not:` photos that veto a person, and the operating point for its size.

Real models and real portraits from ../shared (face_recognition's examples)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facewatch.errors import GalleryError
from facewatch.gallery.gallery import Gallery
from facewatch.gallery.spec import load_gallery_spec
from facewatch.identity.threshold import threshold_for
from facewatch.pipeline import FacePipeline


@pytest.fixture(scope="module")
def portraits(examples: Path) -> dict[str, Path]:
    train = examples / "knn_examples" / "train"
    return {"obama": examples / "obama.jpg", "obama2": examples / "obama2.jpg",
            "obama_small": examples / "obama_small.jpg", "biden": examples / "biden.jpg",
            "biden2": train / "biden" / "biden2.jpg", "lin": examples / "lin-manuel-miranda.png",
            "alex": examples / "alex-lacamoire.png", "alex2": train / "alex_lacamoire" / "img1.jpg"}


def _gallery(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gallery.yaml"
    path.write_text(text)
    return path


def _embedding(gallery: Gallery, pipeline: FacePipeline, image: Path) -> np.ndarray:
    from facewatch.images import load_image

    faces = pipeline.analyze([load_image(image)])[0]
    assert faces.embeddings is not None and len(faces) >= 1
    areas = [(b[2] - b[0]) * (b[3] - b[1]) for b in faces.detections.boxes]
    vector: np.ndarray = faces.embeddings[int(np.argmax(areas))]
    return vector


def test_a_not_photo_stops_a_stranger_being_named_as_that_person(
        tmp_path: Path, pipeline: FacePipeline, portraits: dict[str, Path]) -> None:
    # A threshold so low that a stranger is named: Alex Lacamoire as Lin-Manuel Miranda.
    lin = f"  - id: lin\n    images: [{portraits['lin']}]\n"
    plain = Gallery.open(_gallery(tmp_path, "people:\n" + lin), pipeline,
                         state_dir=tmp_path / "s", threshold=0.05)
    alex = _embedding(plain, pipeline, portraits["alex"])
    own = _embedding(plain, pipeline, portraits["lin"])
    assert [m.person_id for m in plain.identify(np.stack([alex, own]))] == ["lin", "lin"]

    # Another photo of Alex marked "not lin": Alex's face resembles it more than Lin's
    # portrait, so he is not named Lin; Lin himself still is.
    marked = Gallery.open(_gallery(tmp_path, "people:\n" + lin + f"    not: [{portraits['alex2']}]\n"),
                          pipeline, state_dir=tmp_path / "s", threshold=0.05)
    assert marked.report.not_images == 1 and marked.not_vectors.shape[0] == 1
    refused, named = marked.identify(np.stack([alex, own]))
    assert refused.person_id is None and refused.vetoed == "lin" and refused.nearest_id is None
    assert named.person_id == "lin" and named.vetoed is None

    # With someone else enrolled, the vetoed person's place goes to the next nearest.
    two = Gallery.open(_gallery(tmp_path, "people:\n" + lin + f"    not: [{portraits['alex2']}]\n"
                                          f"  - id: obama\n    images: [{portraits['obama']}]\n"),
                       pipeline, state_dir=tmp_path / "s", threshold=0.05)
    (m,) = two.identify(alex[None])
    assert (m.nearest_id, m.vetoed, m.person_id) == ("obama", "lin", None)
    assert m.similarity == pytest.approx(float(alex @ two.templates.embeddings[1]), abs=1e-5)


def test_not_entries_are_checked_like_images(tmp_path: Path, portraits: dict[str, Path]) -> None:
    bad = _gallery(tmp_path, f"people:\n  - id: obama\n    images: [{portraits['obama']}]\n"
                             f"    not: [missing.jpg]\n")
    with pytest.raises(GalleryError, match=r"gallery.yaml:4: people\[0\].not\[0\]: 'missing.jpg' "
                                           r"matches no image"):
        load_gallery_spec(bad)
    both = _gallery(tmp_path, f"people:\n  - id: obama\n    images: [{portraits['obama']}]\n"
                              f"    not: [{portraits['obama']}]\n")
    with pytest.raises(GalleryError, match="also one of 'obama''s images"):
        load_gallery_spec(both)
    wrong_key = _gallery(tmp_path, f"people:\n  - id: obama\n    images: [{portraits['obama']}]\n"
                                   f"    nott: [{portraits['biden']}]\n")
    with pytest.raises(GalleryError, match=r"unknown key 'nott' \(allowed: id, images, "
                                           r"metadata, name, not\)"):
        load_gallery_spec(wrong_key)


def test_a_person_is_matched_through_the_mean_of_their_photos_less_an_odd_one(
        tmp_path: Path, pipeline: FacePipeline, portraits: dict[str, Path]) -> None:
    g = Gallery.open(_gallery(tmp_path, f"people:\n  - id: obama\n    images: [{portraits['obama']}, "
                                        f"{portraits['obama2']}, {portraits['obama_small']}, "
                                        f"{portraits['biden']}]\n"), pipeline,
                     state_dir=tmp_path / "s")
    assert g.report.enrolled == 4 and len(g.templates) == 1
    assert [(i.person_id, i.image.name) for i in g.report.left_out] == [("obama", "biden.jpg")]
    assert "is it someone else?" in g.report.left_out[0].message
    kept = g.index.embeddings[[i for i, p in enumerate(g.entry_images) if p.name != "biden.jpg"]]
    mean = kept.sum(axis=0) / np.linalg.norm(kept.sum(axis=0))
    np.testing.assert_allclose(g.templates.embeddings[0], mean, atol=1e-5)
    # Biden's own face is not Obama's, however his photo got into the list
    biden = _embedding(g, pipeline, portraits["biden2"])
    assert g.identify(biden[None])[0].person_id is None
    assert g.identify(_embedding(g, pipeline, portraits["obama2"])[None])[0].person_id == "obama"


def test_the_threshold_follows_the_number_of_people_enrolled(
        tmp_path: Path, pipeline: FacePipeline, portraits: dict[str, Path]) -> None:
    assert pipeline.embedder is not None
    calibration = pipeline.embedder.manifest.open_set_for(pipeline.embedder.flip)
    assert calibration is not None, "facewatch's embedders ship an open-set calibration"
    people = ["obama", "lin", "alex"]
    thresholds = []
    for n in (1, 3):
        lines = ["people:"] + [f"  - id: {p}\n    images: [{portraits[p]}]" for p in people[:n]]
        g = Gallery.open(_gallery(tmp_path, "\n".join(lines) + "\n"), pipeline,
                         state_dir=tmp_path / "s")
        assert g.operating_point.source == "calibration" and g.operating_point.people == n
        assert g.threshold == pytest.approx(threshold_for(calibration, n, 0.01))
        thresholds.append(g.threshold)
        strict = Gallery.open(_gallery(tmp_path, "\n".join(lines) + "\n"), pipeline,
                              state_dir=tmp_path / "s", max_false_rate=0.001)
        assert strict.threshold > g.threshold
    assert thresholds[1] > thresholds[0]
    fixed = Gallery.open(_gallery(tmp_path, f"threshold: 0.33\npeople:\n  - id: obama\n"
                                            f"    images: [{portraits['obama']}]\n"),
                         pipeline, state_dir=tmp_path / "s")
    assert (fixed.threshold, fixed.operating_point.source) == (0.33, "gallery")
    config = Gallery.open(_gallery(tmp_path, f"threshold: 0.33\npeople:\n  - id: obama\n"
                                             f"    images: [{portraits['obama']}]\n"),
                          pipeline, state_dir=tmp_path / "s", threshold=0.35)
    assert (config.threshold, config.operating_point.source) == (0.35, "config")
