"""Edits at the same moment: two API edits at once both land (the gallery's lock, one
read-modify-write after the other), and an edit saved while the daemon is reloading the
gallery is loaded too (not lost behind the reload that was already reading the file)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from facewatch.gallery import watch
from facewatch.gallery.editing import add_person_images, edit_gallery
from facewatch.gallery.gallery import Gallery
from facewatch.gallery.watch import GalleryWatcher
from facewatch.pipeline import FacePipeline
from tests.api.conftest import Api


def _at_once(*calls: Any) -> list[Any]:
    """Run the calls in threads released together; their results in order."""
    start = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        start.wait()
        results[i] = calls[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results


def test_two_edits_at_the_same_moment_both_land(api: Api, lfw_dir: Path) -> None:
    faces = api.get("/api/faces", params={"limit": 500}).json()["faces"]
    by_track = {f["track_id"]: f["id"] for f in faces}
    # two new people at once
    answers = _at_once(
        lambda: api.post("/api/faces/assign", json={"faces": [by_track[0]], "person": "sharon"}),
        lambda: api.post("/api/faces/assign", json={"faces": [by_track[10]], "person": "powell"}))
    assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
    people = {p["id"]: p for p in api.doc()["people"]}
    assert set(people) == {"serena", "sharon", "powell"}
    # two photos for one person at once, one by assignment and one by upload
    photo = sorted((lfw_dir / "Serena_Williams").glob("*.jpg"))[11].read_bytes()
    answers = _at_once(
        lambda: api.post("/api/faces/assign", json={"faces": [by_track[1]], "person": "sharon"}),
        lambda: api.post("/api/people/sharon/photos",
                         files=[("photos", ("s.jpg", photo, "image/jpeg"))]))
    assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
    images = {p["id"]: p for p in api.doc()["people"]}["sharon"]["images"]
    assert len(images) == 3 and "faces/sharon/upload-1.jpg" in images
    assert "# from the album" in api.gallery.read_text()


def test_an_edit_saved_during_a_reload_is_loaded_after_it(
        tmp_path: Path, lfw_dir: Path, pipeline: FacePipeline,
        monkeypatch: pytest.MonkeyPatch) -> None:
    gallery = tmp_path / "people.yaml"
    serena = sorted((lfw_dir / "Serena_Williams").glob("*.jpg"))[9]
    gallery.write_text(f"people:\n  - id: serena\n    images: [{serena}]\n")
    watcher = GalleryWatcher(gallery, pipeline, tmp_path / "state")
    watcher.loaded(Gallery.open(gallery, pipeline, state_dir=tmp_path / "state"))
    powell = sorted((lfw_dir / "Colin_Powell").glob("*.jpg"))[20]
    real_open = Gallery.open
    edited = threading.Event()

    def open_then_edit(source: Path, *args: Any, **kwargs: Any) -> Gallery:
        opened = real_open(source, *args, **kwargs)
        if not edited.is_set():  # the reload has read the file: an edit lands now
            edited.set()
            edit_gallery(gallery, add_person_images("powell", None, [str(powell)]),
                         lambda _tmp: None)
        return opened

    monkeypatch.setattr(watch.Gallery, "open", staticmethod(open_then_edit))
    gallery.write_text(gallery.read_text() + "# a comment: the file changed\n")
    watcher.poll(force=True)
    loaded: list[list[str]] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (loaded and "powell" in loaded[-1]):
        watcher.poll()
        result = watcher.take_result()
        if result is not None:
            assert result.gallery is not None, result.error
            loaded.append([p.id for p in result.gallery.people])
        time.sleep(0.1)
    assert edited.is_set()
    assert loaded[0] == ["serena"]  # what the first reload had read
    assert loaded[-1] == ["serena", "powell"], loaded  # the edit made during it, loaded after
