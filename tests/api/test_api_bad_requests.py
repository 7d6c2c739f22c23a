"""Every bad request gets a 4xx with `{"error": one line}` and changes nothing: not the gallery
YAML, not a file beside it, not the library's edits or groups."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from facewatch.config.cameras import CAMERA_NAME_PATTERN
from facewatch.library.sqlite_store import SqliteLibrary
from facewatch.library.store import FaceQuery
from facewatch.pipeline import FacePipeline
from tests.api.conftest import Api, files_under, make_api


def _state(api: Api) -> tuple[Any, ...]:
    """What a refused request must leave as it was."""
    store = SqliteLibrary(api.state / "library")
    try:
        faces = [(f.id, f.cluster_id, f.assigned_to) for f in store.faces(FaceQuery(limit=1000))]
        groups = [(c.id, c.dismissed, c.assigned_to) for c in
                  store.clusters(include_dismissed=True, include_assigned=True)]
        edits = [(a.id, a.undone) for a in store.actions(include_undone=True)]
    finally:
        store.close()
    return files_under(api.gallery.parent), faces, groups, edits


def _refused(answer: Any, code: int, *words: str) -> str:
    assert answer.status_code == code, (answer.status_code, answer.text)
    body = answer.json()
    assert set(body) == {"error"}, body
    error: str = body["error"]
    assert error and "\n" not in error and "\r" not in error
    for word in words:
        assert word in error, error
    return error


@pytest.fixture
def before(api: Api) -> Iterator[tuple[Any, ...]]:
    state = _state(api)
    yield state
    assert _state(api) == state, "a refused request changed something"
    assert api.reloads() == 0


def _png(width: int, height: int, seed: int = 0) -> bytes:
    noise = np.random.default_rng(seed).integers(0, 255, (height, width, 3), np.uint8)
    buf = io.BytesIO()
    Image.fromarray(noise).save(buf, "PNG")
    return buf.getvalue()


def test_a_missing_or_wrong_token(api: Api, before: Any) -> None:
    face = api.get("/api/faces", params={"limit": 1}).json()["faces"][0]
    requests = [("GET", "/api/faces"), ("GET", f"/api/faces/{face['id']}/crop"),
                ("GET", "/api/clusters"), ("GET", "/api/people"), ("GET", "/api/events/stream"),
                ("POST", "/api/faces/assign"), ("POST", "/api/recognize"),
                ("DELETE", "/api/people/serena"), ("PATCH", "/api/people/serena")]
    for headers in ({}, {"Authorization": "Bearer wrong-wrong-wrong-wrong"},
                    {"Authorization": "Basic x"}):
        for method, url in requests:
            answer = api.client.request(method, url, headers=headers,
                                        json={"faces": [face["id"]], "person": "x"})
            _refused(answer, 401, "token")
    # the page itself is static and holds no data: it loads without the token
    assert api.client.get("/").status_code == 200


def test_an_upload_too_large(tmp_path: Path, lfw_dir: Path, models_dir: Path,
                             daemon_pipeline: FacePipeline) -> None:
    small = make_api(tmp_path, lfw_dir, models_dir, daemon_pipeline, None, "", max_upload_mb=0.2)
    big = _png(600, 600)  # about 1 MB of noise
    with small.client:
        for url, field in (("/api/recognize", "image"), ("/api/search", "image")):
            answer = small.client.post(url, files={field: ("big.png", big, "image/png")})
            _refused(answer, 413)
        answer = small.client.post("/api/people", data={"id": "x"},
                                   files=[("photos", ("big.png", big, "image/png"))])
        _refused(answer, 413)

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
            yield b"--x\r\nContent-Disposition: form-data; name=\"image\"; filename=\"b.png\"\r\n\r\n"
            for start in range(0, len(big), 65536):
                yield big[start:start + 65536]
            yield b"\r\n--x--\r\n"

        answer = small.client.post("/api/recognize", content=chunks(),
                                   headers={"Content-Type": "multipart/form-data; boundary=x"})
        _refused(answer, 413)
    assert not (small.gallery.parent / "faces").exists()


def test_an_upload_that_is_not_an_image(api: Api, before: Any, lfw_dir: Path) -> None:
    photo = sorted((lfw_dir / "Colin_Powell").glob("*.jpg"))[20].read_bytes()
    for name, data in (("notes.jpg", b"these are my notes, not a photo\n"),
                       ("half.jpg", photo[: len(photo) // 3]), ("empty.jpg", b"")):
        for url in ("/api/recognize", "/api/search"):
            _refused(api.post(url, files={"image": (name, data, "image/jpeg")}), 415, name)
        _refused(api.post("/api/people", data={"id": "powell"},
                          files=[("photos", (name, data, "image/jpeg"))]), 415, name)
        _refused(api.post("/api/people/serena/photos",
                          files=[("photos", ("ok.jpg", photo, "image/jpeg")),
                                 ("photos", (name, data, "image/jpeg"))]), 415, name)
    # a file name is shown, never used
    _refused(api.post("/api/recognize", files={"image": ("../../etc/x\n.jpg", b"x", "image/jpeg")}),
             415)


def test_unknown_ids(api: Api, before: Any) -> None:
    _refused(api.get("/api/faces/987654"), 404, "987654")
    _refused(api.get("/api/faces/987654/crop"), 404, "987654")
    _refused(api.get("/api/faces/987654/snapshot"), 404)
    _refused(api.get("/api/tracks/987654"), 404, "track 987654")
    _refused(api.get("/api/clusters/987654"), 404)
    _refused(api.post("/api/clusters/987654/assign", json={"person": "someone"}), 404)
    _refused(api.post("/api/clusters/987654/dismiss", json={}), 404)
    _refused(api.post("/api/faces/assign", json={"faces": [987654], "person": "someone"}), 404)
    _refused(api.post("/api/faces/not", json={"faces": [987654], "person": "serena"}), 404)
    _refused(api.post("/api/faces/987654/split"), 404)
    _refused(api.post("/api/edits/987654/undo"), 404)
    _refused(api.post("/api/search", data={"face": "987654"}), 404)
    _refused(api.post("/api/search", data={"track": "987654"}), 404)
    _refused(api.get("/api/people/nobody"), 404, "nobody")
    _refused(api.patch("/api/people/nobody", json={"name": "N"}), 404)
    _refused(api.delete("/api/people/nobody"), 404)
    _refused(api.get("/api/people/serena/photos/0123456789abcdef"), 404)
    _refused(api.delete("/api/people/serena/photos/0123456789abcdef"), 404)
    _refused(api.get("/api/no/such/route"), 404)
    # not ids at all
    for url in ("/api/faces/0", "/api/faces/-3", "/api/faces/x", f"/api/faces/{2**70}",
                "/api/clusters/1.5", "/api/people/serena/photos/NOTHEX"):
        _refused(api.get(url), 400)


TRICKS = ["..", "../serena", "a/b", "/etc/passwd", "a#b", "home/+/door", "a+b", "#", "+",
          "a\x00b", "ada\n", "a\nb", "a\rb", ".hidden", "-dash", "x" * 129, "é", " serena",
          "serena "]


def test_ids_with_path_or_mqtt_tricks(api: Api, before: Any) -> None:
    from urllib.parse import quote

    face = api.get("/api/faces", params={"limit": 1}).json()["faces"][0]
    group = face["group"]
    for trick in TRICKS:
        body = {"faces": [face["id"]], "person": trick}
        _refused(api.post("/api/faces/assign", json=body), 400)
        _refused(api.post("/api/faces/not", json=body), 400)
        _refused(api.post(f"/api/clusters/{group}/assign", json={"person": trick}), 400)
        _refused(api.post("/api/people", data={"id": trick},
                          files=[("photos", ("a.png", _png(8, 8), "image/png"))]), 400)
        _refused(api.get("/api/faces", params={"person": trick}), 400)
        if not re.fullmatch(CAMERA_NAME_PATTERN, trick):  # "-dash" is a valid camera name
            _refused(api.get("/api/faces", params={"camera": trick}), 400)
        path = quote(trick, safe="")
        for method, url in (("GET", f"/api/people/{path}"), ("DELETE", f"/api/people/{path}"),
                            ("PATCH", f"/api/people/{path}"),
                            ("POST", f"/api/people/{path}/photos")):
            answer = api.client.request(method, url, headers=api.headers, json={"name": "N"})
            # a separator in the id no longer names this route (404); anything else is refused
            assert answer.status_code in (400, 404), (trick, method, answer.text)
            _refused(answer, answer.status_code)


def test_bad_bodies(api: Api, before: Any) -> None:
    face = api.get("/api/faces", params={"limit": 1}).json()["faces"][0]["id"]
    for body in ({"faces": [], "person": "x"}, {"faces": [-1], "person": "x"},
                 {"faces": [face]}, {"faces": "1", "person": "x"},
                 {"faces": [face], "person": "x", "extra": 1},
                 {"faces": [face], "person": "x", "name": "two\nlines"},
                 {"faces": [face], "person": "x", "name": " "},
                 {"faces": [face], "person": "x", "name": "n" * 201},
                 {"faces": list(range(1, 1002)), "person": "x"}):
        _refused(api.post("/api/faces/assign", json=body), 400)
    _refused(api.client.post("/api/faces/assign", headers={**api.headers,
                                                           "Content-Type": "application/json"},
                             content=b"{not json"), 400)
    _refused(api.patch("/api/people/serena", json={"name": "a\x00b"}), 400)
    _refused(api.post("/api/clusters/1/assign", json={"person": "x", "photos": 0}), 400)
    _refused(api.get("/api/faces", params={"since": "yesterday-ish"}), 400, "since")
    _refused(api.get("/api/faces", params={"limit": 0}), 400, "limit")
    _refused(api.post("/api/search", data={"order": "random", "face": str(face)}), 400)
    _refused(api.post("/api/search", data={}), 400, "exactly one")


def test_a_gallery_edit_that_would_not_enrol(api: Api, before: Any, photos: Path,
                                             lfw_dir: Path) -> None:
    dogs = (photos / "dlib_examples_faces" / "dogs.jpg").read_bytes()  # no human face
    _refused(api.post("/api/people", data={"id": "rex", "name": "Rex"},
                      files=[("photos", ("dogs.jpg", dogs, "image/jpeg"))]), 400,
             "cannot be enrolled", "no face")
    _refused(api.post("/api/people/serena/photos",
                      files=[("photos", ("dogs.jpg", dogs, "image/jpeg"))]), 400, "no face")
    two = sorted((lfw_dir / "Colin_Powell").glob("*.jpg"))[22].read_bytes()  # two faces
    _refused(api.post("/api/people", data={"id": "powell"},
                      files=[("photos", ("two.jpg", two, "image/jpeg"))]), 400, "2 faces")
    # a "not" for somebody who is not in the gallery
    face = api.get("/api/faces", params={"limit": 1}).json()["faces"][0]["id"]
    _refused(api.post("/api/faces/not", json={"faces": [face], "person": "nobody"}), 400)
