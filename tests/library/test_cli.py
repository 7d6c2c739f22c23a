"""`facewatch faces ...` and `facewatch clusters ...` on a state folder the daemon's writer
filled: listing, search, naming a group, undo; --json documents; one-line errors and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from facewatch.cli.main import main
from facewatch.library.sqlite_store import SqliteLibrary
from facewatch.library.writer import LibraryWriter, WriterSettings
from tests.library.conftest import PEOPLE, FaceSample, named, record
from tests.library.test_clusters import SETTINGS


@pytest.fixture
def state(tmp_path: Path, lfw_faces: dict[str, list[FaceSample]], embedder_sha: str,
          models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A state folder whose library holds 6 tracks of each of PEOPLE[:4] (Colin Powell named)."""
    monkeypatch.setenv("FACEWATCH_MODELS", str(models_dir))
    writer = LibraryWriter(lambda: SqliteLibrary(tmp_path / "state" / "library", writer=True),
                           WriterSettings(clusters=SETTINGS))
    for p, person in enumerate(PEOPLE[:4]):
        for t, sample in enumerate(lfw_faces[person]):
            rec = record([sample], p * 10 + t, embedder_sha, camera="door" if t < 3 else "yard",
                         verdict=named(person) if person == "Colin_Powell" else None)
            assert writer.handle(rec) is not None
    writer.close()
    return tmp_path / "state"


def cli(capsys: pytest.CaptureFixture[str], *args: str, code: int = 0) -> Any:
    assert main([*args, "--json"]) == code
    captured = capsys.readouterr()
    assert captured.out.count("\n") == 1
    doc = json.loads(captured.out)
    if code:  # the error, once, on one line of stderr as well
        assert captured.err == f"facewatch: error: {doc['error']}\n"
    return doc


def test_list_show_and_page(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = cli(capsys, "faces", "list", "--state-dir", str(state), "--limit", "5")
    assert doc["total"] == 24 and [f["track_id"] for f in doc["faces"]] == [35, 34, 33, 32, 31]
    page = cli(capsys, "faces", "list", "--state-dir", str(state), "--limit", "5", "--offset", "5")
    assert [f["track_id"] for f in page["faces"]] == [30, 25, 24, 23, 22]
    known = cli(capsys, "faces", "list", "--state-dir", str(state), "--known", "--camera", "yard")
    assert {(f["person_id"], f["camera"]) for f in known["faces"]} == {("colin_powell", "yard")}
    assert known["total"] == 3
    recent = cli(capsys, "faces", "list", "--state-dir", str(state), "--unknown", "--since", "1w")
    assert recent["total"] == 18
    one = cli(capsys, "faces", "show", str(doc["faces"][0]["id"]), "--state-dir", str(state))
    assert one["track_id"] == 35 and one["status"] == "unknown" and one["edits"] == []
    assert Path(one["crop"]).is_file() and one["group"] is not None
    assert main(["faces", "list", "--state-dir", str(state)]) == 0
    assert "24 of 24 face(s)" in capsys.readouterr().out


def test_name_a_group_search_and_undo(state: Path, tmp_path: Path, lfw_dir: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    gallery = tmp_path / "people.yaml"
    gallery.write_text("# nobody yet\npeople: []\n")
    groups = cli(capsys, "clusters", "list", "--state-dir", str(state))["groups"]
    assert len(groups) >= 3 and sum(g["size"] for g in groups) == 18
    biggest = max(groups, key=lambda g: g["size"])
    members = cli(capsys, "clusters", "show", str(biggest["id"]), "--state-dir", str(state))
    person = {PEOPLE[f["track_id"] // 10] for f in members["faces"]}
    assert len(person) == 1
    who = person.pop()
    done = cli(capsys, "clusters", "assign", str(biggest["id"]), "--person", "someone",
               "--name", who.replace("_", " "), "--photos", "2", "--state-dir", str(state),
               "--gallery", str(gallery))
    assert done["created_person"] and len(done["edits"]) == 2
    entry = yaml.safe_load(gallery.read_text())["people"][0]
    assert entry["id"] == "someone" and len(entry["images"]) == 2
    assert gallery.read_text().startswith("# nobody yet\n")
    assert biggest["id"] not in [g["id"] for g in cli(capsys, "clusters", "list", "--state-dir",
                                                      str(state))["groups"]]
    # search with a photo the library never saw: that person's faces first
    photo = sorted((lfw_dir / who).glob("*.jpg"))[7]
    hits = cli(capsys, "faces", "search", "--image", str(photo), "--state-dir", str(state))
    assert hits["results"] and {PEOPLE[h["track_id"] // 10] for h in hits["results"][:3]} == {who}
    assert all(h["similarity"] >= hits["min_similarity"] for h in hits["results"])
    newest = cli(capsys, "faces", "search", "--face", str(hits["results"][0]["id"]), "--newest",
                 "--state-dir", str(state))["results"]
    by_track = cli(capsys, "faces", "search", "--track", str(hits["results"][0]["track_id"]),
                   "--newest", "--state-dir", str(state))["results"]
    assert by_track == newest
    times = [h["last_ts"] for h in newest]
    assert times == sorted(times, reverse=True) and hits["results"][0]["id"] not in \
        [h["id"] for h in newest]
    for edit in done["edits"]:
        undone = cli(capsys, "faces", "undo", str(edit["id"]), "--state-dir", str(state))
        assert undone["undone"]  # the gallery came from the edit itself
    assert yaml.safe_load(gallery.read_text())["people"] == []
    # the gallery's cache is the one a daemon with this state folder keeps (<state>/gallery),
    # not beside the gallery; no temporary leftovers
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert (state / "gallery" / "analysis.sqlite").is_file()
    assert not (tmp_path / "people.facewatch").exists()
    dismissed = cli(capsys, "clusters", "dismiss", str(groups[0]["id"]), "--state-dir", str(state))
    assert dismissed["dismissed"]
    regrouped = cli(capsys, "clusters", "regroup", "--state-dir", str(state))
    assert regrouped["faces"] == 18


@pytest.mark.parametrize("args, message", [
    (["faces", "show", "999"], "face 999: no such face in the library"),
    (["faces", "list", "--since", "yesterday"], "'yesterday': not a time"),
    (["faces", "list", "--limit", "0"], "--limit 0: must be at least 1"),
    (["clusters", "show", "999"], "group 999: no such group of faces"),
    (["faces", "assign", "1", "--person", "../x"], "which gallery?"),
    (["faces", "undo", "5"], "edit 5: no such edit"),
    (["faces", "search", "--track", "4242"], "track 4242: not in the library"),
])
def test_bad_input_is_one_line_and_exit_2(state: Path, args: list[str], message: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    doc = cli(capsys, *args, "--state-dir", str(state), code=2)
    assert message in doc["error"] and doc["exit_code"] == 2


def test_a_missing_library_says_where_it_looked(tmp_path: Path, models_dir: Path) -> None:
    """As a user runs it: a real process, exit 2, one line naming the folder."""
    script = Path(sys.executable).with_name("facewatch")
    proc = subprocess.run([str(script), "faces", "list", "--state-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=120, check=False, stdin=subprocess.DEVNULL,
                          env={**os.environ, "FACEWATCH_MODELS": str(models_dir)})
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"facewatch: error: {tmp_path / 'library'}: no face library here (the daemon creates it "
        f"with library.enabled; point --config or --state-dir at its state folder)"]
