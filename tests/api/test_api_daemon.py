"""The API in the running daemon on the looping Hamilton clip, with only Lin-Manuel Miranda
enrolled: the Obamas are kept as unknown groups, naming Michelle's group through the API makes
the next loop name her (no restart), and "not lin" on a track wrongly named Lin removes that
name on the next pass.  Everything real: the daemon and its processes, the models, the clip,
HTTP to the api process with its token."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from facewatch.events import Event, FaceRecognized, FaceUnknown, TrackEnded
from tests.daemon.test_daemon_e2e import CLOSE_UP_WIDTH, seat_of
from tests.library.test_daemon_library import tracks_at
from tests.support.daemon import DaemonProcess, ZmqEvents, wait_until, write_yaml
from tests.support.mosquitto import free_port

TOKEN = "correct-horse-battery-staple-42"
LOOP_S = 60.0  # several loops of the 9 s clip on a loaded machine


class Http:
    """The API as a client sees it: JSON over HTTP with the bearer token."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {TOKEN}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=120) as answer:
            return json.loads(answer.read() or b"null")

    def up(self) -> bool:
        try:
            self.call("GET", "/api/health")
        except (OSError, urllib.error.URLError):
            return False
        return True


@pytest.fixture
def hamilton(tmp_path: Path, shared_dir: Path, examples: Path) -> tuple[Path, int, int]:
    """The daemon's config: the clip looping in real time, Lin in the gallery, a token."""
    write_yaml(tmp_path / "gallery.yaml", {"people": [
        {"id": "lin", "name": "Lin-Manuel Miranda",
         "images": [str(examples / "lin-manuel-miranda.png")]}]})
    (tmp_path / "token").write_text(TOKEN)
    zmq_port, api_port = free_port(), free_port()
    config = write_yaml(tmp_path / "config.yaml", {
        "cameras": [{"name": "stage", "fps": 10, "loop": True, "realtime": True,
                     "url": str(shared_dir / "data" / "videos" / "short_hamilton_clip.mp4")}],
        "gallery": "gallery.yaml", "state_dir": "state",
        "outputs": {"zmq": {"bind": f"tcp://127.0.0.1:{zmq_port}"}},
        "metrics": {"enabled": False}, "api": {"port": api_port, "token_file": "token"}})
    return config, zmq_port, api_port


def _at_seat(events: list[Event], seat: str) -> set[int]:
    return tracks_at(events, seat)


def test_naming_michelles_group_through_the_api(hamilton: tuple[Path, int, int], tmp_path: Path,
                                                models_dir: Path) -> None:
    config, zmq_port, api_port = hamilton
    events = ZmqEvents(f"tcp://127.0.0.1:{zmq_port}")
    api = Http(api_port)
    try:
        with DaemonProcess(config, models_dir, tmp_path) as daemon:
            events.follow(daemon)
            daemon.start()
            # the first loop's audience: both Obamas' tracks end, unknown
            for seat in ("michelle", "obama"):
                wait_until(lambda s=seat: any(  # type: ignore[misc]
                    isinstance(e, TrackEnded) and e.track_id in _at_seat(events.events, s)
                    for e in events.events), 120, f"a track at {seat}'s seat ended",
                    daemon.log_tail, daemon.gone)
            wait_until(api.up, 60, "the API up", daemon.log_tail, daemon.gone)

            def group_of(seat: str) -> int | None:
                tracks = _at_seat(events.events, seat)
                faces = api.call("GET", "/api/faces?unknown=true&limit=500")["faces"]
                groups = {f["group"] for f in faces if f["track_id"] in tracks}
                return next(iter(groups)) if groups else None

            wait_until(lambda: group_of("michelle") is not None and group_of("obama") is not None,
                       60, "both Obamas' faces in the library", daemon.log_tail, daemon.gone)
            michelle, barack = group_of("michelle"), group_of("obama")
            assert michelle != barack  # one group each
            groups = {g["id"]: g for g in api.call("GET", "/api/clusters")["groups"]}
            assert {michelle, barack} <= set(groups)
            assert groups[michelle]["cameras"] == ["stage"]
            assert all(f["status"] == "unknown" for f in groups[michelle]["faces"])
            health = api.call("GET", "/api/health")
            assert health["library"]["faces"] >= 2 and health["library"]["groups"] >= 2
            inference = daemon.child("inference")

            named_at = time.time()
            result = api.call("POST", f"/api/clusters/{michelle}/assign",
                              {"person": "michelle", "name": "Michelle Obama"})
            assert result["created_person"] and result["edits"]
            assert "faces/michelle/" in (tmp_path / "gallery.yaml").read_text()
            found = events.wait_for(
                lambda e: isinstance(e, FaceRecognized) and e.identity == "michelle"
                and e.ts > named_at, LOOP_S, "Michelle Obama recognised in a later loop")
            assert seat_of(found.bbox) == "michelle"
            assert daemon.child("inference") == inference  # reloaded, not restarted
            people = {p["id"]: p for p in api.call("GET", "/api/people")["people"]}
            assert people["michelle"]["name"] == "Michelle Obama"
            assert {p["source"] for p in people["michelle"]["photos"]} == {"camera"}
            daemon.terminate()
            assert daemon.wait(15) == 0, daemon.log_tail()
    finally:
        events.close()


def test_not_lin_on_a_track_wrongly_named_lin_sticks(hamilton: tuple[Path, int, int],
                                                      tmp_path: Path, models_dir: Path) -> None:
    config, zmq_port, api_port = hamilton
    # a threshold so low that the pianist, Alex Lacamoire, is named Lin in his close-up
    text = config.read_text().replace("metrics:", "recognition:\n  threshold: 0.05\nmetrics:", 1)
    config.write_text(text)

    def close_up(e: Event) -> bool:
        return isinstance(e, (FaceRecognized, FaceUnknown)) and e.bbox[2] - e.bbox[0] >= CLOSE_UP_WIDTH

    events = ZmqEvents(f"tcp://127.0.0.1:{zmq_port}")
    api = Http(api_port)
    try:
        with DaemonProcess(config, models_dir, tmp_path) as daemon:
            events.follow(daemon)
            daemon.start()
            wrong = events.wait_for(lambda e: close_up(e) and isinstance(e, FaceRecognized)
                                    and e.identity == "lin", 120, "the pianist named Lin")
            assert isinstance(wrong, FaceRecognized)
            events.wait_for(lambda e: isinstance(e, TrackEnded) and e.track_id == wrong.track_id,
                            LOOP_S, "the pianist's track ended")

            def stored() -> list[dict[str, Any]]:
                try:
                    found: list[dict[str, Any]] = api.call("GET", f"/api/tracks/{wrong.track_id}")
                except urllib.error.HTTPError as exc:
                    exc.close()
                    return []
                return found

            wait_until(lambda: bool(stored()), 60, "his track in the library", daemon.log_tail,
                       daemon.gone)
            face = stored()[0]
            assert face["person_id"] == "lin"
            marked_at = time.time()
            result = api.call("POST", "/api/faces/not", {"faces": [face["id"]], "person": "lin"})
            assert result["edits"][0]["entry"].startswith("faces/lin/not/")
            # the next pass: his close-up is unknown, and stays so a loop later
            first = events.wait_for(lambda e: close_up(e) and isinstance(e, FaceUnknown)
                                    and e.ts > marked_at, LOOP_S, "the pianist unknown")
            events.wait_for(lambda e: close_up(e) and e.ts > first.ts + 12.0, LOOP_S,
                            "his close-up a loop later")
            false_names = [e for e in events.events if close_up(e) and e.ts >= first.ts
                           and isinstance(e, FaceRecognized) and e.identity == "lin"]
            assert false_names == []
            # Lin himself is still named
            events.wait_for(lambda e: isinstance(e, FaceRecognized) and e.identity == "lin"
                            and e.ts > first.ts and not close_up(e), LOOP_S, "Lin still named")
            daemon.terminate()
            assert daemon.wait(15) == 0, daemon.log_tail()
    finally:
        events.close()
