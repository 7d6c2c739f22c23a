"""The API's routes on a real library and gallery: faces, groups, edits, people, recognize and
search, each through the same library operations as the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from tests.api.conftest import Api


def _jpeg(path: Path) -> bytes:
    return path.read_bytes()


def _lfw(lfw_dir: Path, person: str, n: int) -> Path:
    return sorted((lfw_dir / person).glob("*.jpg"))[n]


def test_recent_faces_filter_and_page(api: Api) -> None:
    everything = api.get("/api/faces", params={"limit": 500}).json()
    assert everything["total"] == 24 and len(everything["faces"]) == 24
    last = [f["last_ts"] for f in everything["faces"]]
    assert last == sorted(last, reverse=True)  # newest first
    page = api.get("/api/faces", params={"limit": 5, "offset": 5}).json()
    assert [f["id"] for f in page["faces"]] == [f["id"] for f in everything["faces"][5:10]]
    assert page["total"] == 24
    assert api.get("/api/faces", params={"unknown": "true"}).json()["total"] == 24
    assert api.get("/api/faces", params={"unknown": "false"}).json()["total"] == 0
    assert api.get("/api/faces", params={"camera": "door"}).json()["total"] == 24
    assert api.get("/api/faces", params={"camera": "yard"}).json()["total"] == 0
    newest = everything["faces"][0]
    since = api.get("/api/faces", params={"since": str(newest["last_ts"] - 1)}).json()
    assert 1 <= since["total"] < 24
    group = newest["group"]
    in_group = api.get("/api/faces", params={"group": group, "limit": 100}).json()
    assert {f["group"] for f in in_group["faces"]} == {group}
    # files are URLs served by id, never paths
    assert newest["crop_url"] == f"/api/faces/{newest['id']}/crop"
    assert "crop" not in newest and "snapshot" not in newest


def test_a_face_its_crop_and_snapshot(api: Api) -> None:
    face = api.get("/api/faces", params={"limit": 1}).json()["faces"][0]
    detail = api.get(f"/api/faces/{face['id']}").json()
    assert detail["id"] == face["id"] and detail["edits"] == []
    for url in (face["crop_url"], face["snapshot_url"]):
        answer = api.get(url)
        assert answer.status_code == 200 and answer.headers["content-type"] == "image/jpeg"
        image = cv2.imdecode(np.frombuffer(answer.content, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None and image.shape[0] > 50
    crop = cv2.imdecode(np.frombuffer(api.get(face["crop_url"]).content, np.uint8), 1)
    assert crop.shape[:2] == (112, 112)  # the aligned face
    track = api.get(f"/api/tracks/{face['track_id']}").json()
    assert [f["id"] for f in track] == [face["id"]]


def test_groups_assign_recognize_and_undo(api: Api, lfw_dir: Path, models_dir: Path,
                                          tmp_path: Path) -> None:
    groups = api.get("/api/clusters").json()["groups"]
    assert len(groups) >= 4 and all(1 <= len(g["faces"]) <= 8 for g in groups)
    chirac = api.get("/api/faces", params={"limit": 500}).json()["faces"]
    chirac_group = next(f["group"] for f in chirac if f["track_id"] == 30)  # Jacques Chirac
    shown = api.get(f"/api/clusters/{chirac_group}").json()
    assert shown["size"] == len(shown["faces"]) >= 3
    named = api.post(f"/api/clusters/{chirac_group}/assign",
                     json={"person": "chirac", "name": "Jacques Chirac", "photos": 3})
    assert named.status_code == 200, named.text
    result = named.json()
    assert result["created_person"] and len(result["edits"]) == 3
    assert api.reloads() == 1  # the inference process is asked to reload
    people = api.doc()["people"]
    assert people[1]["id"] == "chirac" and len(people[1]["images"]) == 3
    assert all(i.startswith("faces/chirac/") for i in people[1]["images"])
    assert "# from the album" in api.gallery.read_text()
    assert chirac_group not in [g["id"] for g in api.get("/api/clusters").json()["groups"]]

    # recognize: the same JSON as `facewatch identify --json`, naming him in a new photo
    photo = _lfw(lfw_dir, "Jacques_Chirac", 12)
    answer = api.post("/api/recognize", files={"image": ("chirac.jpg", _jpeg(photo), "image/jpeg")})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["images"][0]["path"] == "chirac.jpg"
    faces = body["images"][0]["faces"]
    assert any(f["identity"] == "chirac" and f["name"] == "Jacques Chirac" for f in faces)
    cli = subprocess.run(
        [sys.executable, "-m", "facewatch", "identify", "--json", "--gallery", str(api.gallery),
         "--min-face", "40", str(photo)], capture_output=True, text=True, check=False,
        env={**os.environ, "FACEWATCH_MODELS": str(models_dir)}, timeout=300)
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)["images"][0]["faces"] == faces

    # undo every edit: he leaves the gallery, his group comes back for review
    for edit in result["edits"]:
        undone = api.post(f"/api/edits/{edit['id']}/undo")
        assert undone.status_code == 200 and undone.json()["undone"]
    assert [p["id"] for p in api.doc()["people"]] == ["serena"]
    assert not any((api.gallery.parent / "faces" / "chirac").glob("*.jpg"))
    assert chirac_group in [g["id"] for g in api.get("/api/clusters").json()["groups"]]
    again = api.post(f"/api/edits/{result['edits'][0]['id']}/undo")
    assert again.status_code == 409 and "already undone" in again.json()["error"]


def test_assign_faces_to_an_existing_person_split_and_dismiss(api: Api) -> None:
    faces = api.get("/api/faces", params={"limit": 500}).json()["faces"]
    sharon = [f for f in faces if f["track_id"] in (0, 1)]
    answer = api.post("/api/faces/assign",
                      json={"faces": [f["id"] for f in sharon], "person": "serena"})
    assert answer.status_code == 200, answer.text
    assert not answer.json()["created_person"]
    assert len(api.doc()["people"][0]["images"]) == 3
    assert [e["kind"] for e in api.get("/api/edits").json()] == ["assign", "assign"]
    # split one face of a group off into its own group
    other = next(f for f in faces if f["track_id"] == 12)
    split = api.post(f"/api/faces/{other['id']}/split").json()
    assert split["group"] != other["group"]
    assert api.get(f"/api/faces/{other['id']}").json()["group"] == split["group"]
    # dismiss a group and bring it back
    group = next(f["group"] for f in faces if f["track_id"] == 20)
    assert api.post(f"/api/clusters/{group}/dismiss", json={}).json()["dismissed"]
    assert group not in [g["id"] for g in api.get("/api/clusters").json()["groups"]]
    assert group in [g["id"] for g in api.get("/api/clusters?all=true").json()["groups"]]
    api.post(f"/api/clusters/{group}/dismiss", json={"dismissed": False})
    assert group in [g["id"] for g in api.get("/api/clusters").json()["groups"]]
    regroup = api.post("/api/clusters/regroup").json()
    assert regroup["faces"] >= 20 and regroup["groups"] >= 4


def test_not_a_person_and_its_undo(api: Api) -> None:
    face = api.get("/api/faces", params={"limit": 1}).json()["faces"][0]
    answer = api.post("/api/faces/not", json={"faces": [face["id"]], "person": "serena"})
    assert answer.status_code == 200, answer.text
    entry = answer.json()["edits"][0]["entry"]
    assert entry.startswith("faces/serena/not/")
    assert api.doc()["people"][0]["not"] == [entry]
    assert api.get("/api/people/serena").json()["not_entries"] == 1
    api.post(f"/api/edits/{answer.json()['edits'][0]['id']}/undo")
    assert "not" not in api.doc()["people"][0]


def test_people_create_rename_photos_delete(api: Api, lfw_dir: Path) -> None:
    listed = api.get("/api/people").json()
    assert listed["editable"] and [p["id"] for p in listed["people"]] == ["serena"]
    serena = listed["people"][0]
    assert [p["source"] for p in serena["photos"]] == ["gallery"]
    photo = api.get(serena["photos"][0]["url"])
    assert photo.status_code == 200 and photo.headers["content-type"] == "image/jpeg"
    thumb = api.get(serena["photos"][0]["url"], params={"size": 64})
    assert max(cv2.imdecode(np.frombuffer(thumb.content, np.uint8), 1).shape[:2]) == 64

    powell = [_lfw(lfw_dir, "Colin_Powell", n) for n in (20, 21)]
    created = api.post("/api/people", data={"id": "powell", "name": "Colin Powell"},
                       files=[("photos", (p.name, _jpeg(p), "image/jpeg")) for p in powell])
    assert created.status_code == 201, created.text
    assert created.json()["added"] == ["faces/powell/upload-1.jpg", "faces/powell/upload-2.jpg"]
    assert api.reloads() == 1
    person = api.get("/api/people/powell").json()
    assert person["name"] == "Colin Powell"
    assert [p["source"] for p in person["photos"]] == ["upload", "upload"]
    # he is recognised in another photo of his
    other = _lfw(lfw_dir, "Colin_Powell", 30)
    faces = api.post("/api/recognize", files={"image": ("x.jpg", _jpeg(other), "image/jpeg")}
                     ).json()["images"][0]["faces"]
    assert "powell" in [f["identity"] for f in faces]
    # the same id again is refused, and changes nothing
    again = api.post("/api/people", data={"id": "powell"},
                     files=[("photos", ("a.jpg", _jpeg(powell[0]), "image/jpeg"))])
    assert again.status_code == 400 and "already exists" in again.json()["error"]
    assert len(list((api.gallery.parent / "faces" / "powell").iterdir())) == 2

    renamed = api.patch("/api/people/powell", json={"name": "General Powell"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "General Powell"
    assert api.doc()["people"][1]["name"] == "General Powell"
    added = api.post("/api/people/powell/photos",
                     files=[("photos", ("b.jpg", _jpeg(_lfw(lfw_dir, "Colin_Powell", 23)),
                                        "image/jpeg"))])
    assert added.status_code == 200, added.text
    assert added.json()["added"] == ["faces/powell/upload-3.jpg"]
    first = added.json()["person"]["photos"][0]
    removed = api.delete(f"/api/people/powell/photos/{first['id']}")
    assert removed.status_code == 200 and len(removed.json()["photos"]) == 2
    assert not (api.gallery.parent / "faces" / "powell" / "upload-1.jpg").exists()
    # Serena's only photo cannot go; it is hers, so it stays on disk either way
    only = api.delete(f"/api/people/serena/photos/{serena['photos'][0]['id']}")
    assert only.status_code == 400 and "only photo" in only.json()["error"]

    deleted = api.delete("/api/people/powell")
    assert deleted.status_code == 204
    assert [p["id"] for p in api.doc()["people"]] == ["serena"]
    assert not (api.gallery.parent / "faces" / "powell").exists()
    assert "# from the album" in api.gallery.read_text()


def test_search_by_photo_face_and_track(api: Api, lfw_dir: Path) -> None:
    faces = api.get("/api/faces", params={"limit": 500}).json()["faces"]
    powell = {f["id"] for f in faces if 10 <= f["track_id"] < 20}  # Colin Powell's tracks
    photo = _lfw(lfw_dir, "Colin_Powell", 25)
    by_photo = api.post("/api/search", files={"image": ("p.jpg", _jpeg(photo), "image/jpeg")})
    assert by_photo.status_code == 200, by_photo.text
    results = by_photo.json()["results"]
    assert results and {r["id"] for r in results} <= powell
    sims = [r["similarity"] for r in results]
    assert sims == sorted(sims, reverse=True)
    one = next(iter(powell))
    by_face = api.post("/api/search", data={"face": str(one), "order": "newest"}).json()
    assert one not in {r["id"] for r in by_face["results"]}
    assert {r["id"] for r in by_face["results"]} <= powell
    last = [r["last_ts"] for r in by_face["results"]]
    assert last == sorted(last, reverse=True)
    by_track = api.post("/api/search", data={"track": "10", "camera": "yard"}).json()
    assert by_track["results"] == []
    both = api.post("/api/search", data={"face": str(one), "track": "10"})
    assert both.status_code == 400 and "exactly one" in both.json()["error"]


def test_health_reports_the_library(api: Api) -> None:
    body = api.get("/api/health").json()
    assert body["library"] == {"enabled": True, "faces": 24, "groups": body["library"]["groups"],
                               "problem": None}
    assert body["library"]["groups"] >= 4
    assert body["auth"] is True and body["gallery"]["people"] == 1


def test_the_page_and_the_docs_are_served(api: Api) -> None:
    page = api.client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert api.client.get("/static/app.js").status_code == 200
    docs = api.client.get("/api/openapi.json").json()
    for path in ("/api/faces", "/api/clusters/{cluster_id}/assign", "/api/faces/not",
                 "/api/people", "/api/recognize", "/api/search", "/api/edits/{edit_id}/undo"):
        assert path in docs["paths"], path
    assert api.client.get("/api/docs").status_code == 200


def test_without_a_gallery_file_yet(api: Api, lfw_dir: Path) -> None:
    """A first run: nobody enrolled, every face unknown; the first edit creates the file."""
    api.gallery.unlink()
    assert api.get("/api/people").json()["people"] == []
    photo = _lfw(lfw_dir, "Colin_Powell", 20)
    answer = api.post("/api/recognize", files={"image": ("p.jpg", _jpeg(photo), "image/jpeg")})
    assert answer.status_code == 200, answer.text
    assert [f["identity"] for f in answer.json()["images"][0]["faces"]] == [None]
    assert api.get("/api/health").json()["gallery"]["people"] == 0
    created = api.post("/api/people", data={"id": "powell"},
                       files=[("photos", ("p.jpg", _jpeg(photo), "image/jpeg"))])
    assert created.status_code == 201, created.text
    assert [p["id"] for p in api.doc()["people"]] == ["powell"]
