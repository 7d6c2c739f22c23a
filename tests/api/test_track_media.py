"""The face images events link to (GET /api/tracks/{id}/snapshot and /crop): in process through
the API's ASGI app, with real snapshot files and a real library store; then in the running
daemon on the Hamilton clip, where a face.recognized event's links are opened as a phone would
open them (no header), and Home Assistant's entities for the person follow."""

from __future__ import annotations

import json
import queue
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from fastapi.testclient import TestClient

from facewatch.api.app import ApiContext, create_app
from facewatch.api.live import LiveEvents
from facewatch.config import DaemonConfig, load_resolved
from facewatch.config.api import ApiConfig
from facewatch.events import FaceRecognized, TrackEnded
from facewatch.events.snapshots import SnapshotStore
from facewatch.events.urls import api_base_url, media_links, media_path
from facewatch.library.records import Named, TrackRecord
from facewatch.library.sqlite_store import SqliteLibrary
from facewatch.library.writer import library_dir
from tests.support.daemon import DaemonProcess, MqttEvents, wait_until, write_yaml
from tests.support.mosquitto import Mosquitto, free_port

TOKEN = "correct-horse-battery-staple-42"


def config_file(tmp_path: Path, *, library: bool = True, **api: Any) -> Path:
    (tmp_path / "token").write_text(TOKEN + "\n")
    return write_yaml(tmp_path / "config.yaml", {
        "cameras": [{"name": "door", "url": str(tmp_path / "door.mp4")},
                    {"name": "yard", "url": str(tmp_path / "yard.mp4")}],
        "gallery": "gallery.yaml", "state_dir": "state", "library": {"enabled": library},
        "api": {"port": 8765, **api}})


def client(config: DaemonConfig) -> TestClient:
    return TestClient(create_app(ApiContext(config, LiveEvents(queue.Queue()))))


def portrait(examples: Path) -> np.ndarray:
    return np.ascontiguousarray(cv2.imread(str(examples / "obama.jpg"))[:, :, ::-1])


def save_snapshot(config: DaemonConfig, examples: Path, camera: str, track_id: int) -> Path:
    assert config.snapshots.dir is not None
    path = SnapshotStore(Path(config.snapshots.dir)).save(camera, str(track_id),
                                                          portrait(examples)[::4, ::4])
    assert path is not None
    return Path(path)


def store_face(config: DaemonConfig, examples: Path, camera: str, track_id: int) -> Path:
    """The track as the library process stores it; the path of its crop."""
    assert config.state_dir is not None
    image = portrait(examples)
    crop = np.ascontiguousarray(cv2.resize(image[80:380, 150:450], (112, 112)))
    ok, jpeg = cv2.imencode(".jpg", np.ascontiguousarray(image[::5, ::5, ::-1]))
    assert ok
    vectors = np.random.default_rng(track_id).normal(size=(2, 128)).astype(np.float32)
    record = TrackRecord(camera, track_id, 1.0e9, 1.0e9 + 2, Named("obama", "Barack Obama", 0.6),
                         crop, jpeg.tobytes(), vectors, np.array([0.9, 0.8], np.float32), "0" * 64)
    store = SqliteLibrary(library_dir(Path(config.state_dir)), writer=True)
    try:
        return store.add(record, record.mean_embedding()).crop
    finally:
        store.close()


def one_line_error(answer: Any, status: int) -> str:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == {"error"} and "\n" not in body["error"]
    return str(body["error"])


def test_a_signed_link_opens_its_image_and_nothing_else(tmp_path: Path, examples: Path) -> None:
    config = load_resolved(config_file(tmp_path, token_file="token",
                                       public_url="http://nvr.test:8765"))
    api = client(config)
    snapshot = save_snapshot(config, examples, "yard", 5)
    links = media_links(config)
    assert links is not None
    url = links.url(5, "snapshot")
    assert url.startswith("http://nvr.test:8765/api/tracks/5/snapshot?sig=") and TOKEN not in url
    relative = url.removeprefix("http://nvr.test:8765")
    answer = api.get(relative)  # no header, as a phone fetches a notification's image
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/jpeg"
    assert answer.content == snapshot.read_bytes()
    assert "private" in answer.headers["cache-control"]
    sig = relative.rpartition("=")[2]
    for wrong in (f"/api/tracks/5/crop?sig={sig}", f"/api/tracks/6/snapshot?sig={sig}",
                  f"/api/tracks/5/snapshot?sig={sig[:-1]}0", f"/api/tracks/5/snapshot?sig={sig[:16]}",
                  "/api/tracks/5/snapshot"):
        assert "token" in one_line_error(api.get(wrong), 401)
    # the token itself opens every image, as for the rest of the API
    assert api.get("/api/tracks/5/snapshot",
                   headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_snapshot_and_crop_from_the_files_and_the_library(tmp_path: Path, examples: Path) -> None:
    config = load_resolved(config_file(tmp_path))  # loopback, no token: every request is served
    api = client(config)
    assert media_links(config) is None  # no address others could open
    # a live track: its snapshot file is there; its crop comes once the library keeps it
    snapshot = save_snapshot(config, examples, "door", 7)
    assert api.get("/api/tracks/7/snapshot").content == snapshot.read_bytes()
    assert "once the track has ended" in one_line_error(api.get("/api/tracks/7/crop"), 404)
    # an ended track: the library's crop; its snapshot from the library once pruned from disk
    crop = store_face(config, examples, "door", 8)
    answer = api.get("/api/tracks/8/crop")
    assert answer.status_code == 200 and answer.content == crop.read_bytes()
    kept = api.get("/api/tracks/8/snapshot")
    assert kept.status_code == 200 and kept.content.startswith(b"\xff\xd8")
    assert "no snapshot" in one_line_error(api.get("/api/tracks/9/snapshot"), 404)
    # only facewatch's own snapshots are served: a photo someone put in the folder is not
    assert config.snapshots.dir is not None
    stray = Path(config.snapshots.dir) / "door" / "10.jpg"
    stray.write_bytes((examples / "biden.jpg").read_bytes())
    one_line_error(api.get("/api/tracks/10/snapshot"), 404)
    for bad in ("-1", "x", str(2**70), "1.5"):
        one_line_error(api.get(f"/api/tracks/{bad}/snapshot"), 400)


def test_without_the_library_there_is_no_crop_and_no_crop_link(tmp_path: Path,
                                                              examples: Path) -> None:
    config = load_resolved(config_file(tmp_path, library=False, public_url="http://nvr.test:8765"))
    save_snapshot(config, examples, "door", 3)
    api = client(config)
    assert "library is off" in one_line_error(api.get("/api/tracks/3/crop"), 404)
    links = media_links(config)
    assert links is not None and links.token is None
    event = links.add_to(FaceRecognized(camera="door", ts=1.0, track_id=3, identity="a", name="A",
                                        score=0.5, bbox=(0, 0, 1, 1), snapshot="/x/door/3.jpg"))
    assert isinstance(event, FaceRecognized)
    assert event.snapshot_url == "http://nvr.test:8765/api/tracks/3/snapshot"  # no token: no sig
    assert event.crop_url is None
    assert api.get(event.snapshot_url.removeprefix("http://nvr.test:8765")).status_code == 200
    # a track without a snapshot gets no links: nothing would answer them
    bare = TrackEnded(camera="door", ts=1.0, track_id=4, duration_s=0.0)
    assert links.add_to(bare) is bare


def test_where_links_point() -> None:
    def base(**api: Any) -> str | None:
        return api_base_url(ApiConfig(**api), hostname="nvr")

    assert base() is None  # loopback: nobody else could open it
    assert base(public_url="https://faces.example.org/") == "https://faces.example.org"
    assert base(bind="192.168.1.20", port=9000) == "http://192.168.1.20:9000"
    assert base(bind="0.0.0.0") == "http://nvr:8765"
    assert base(bind="::") == "http://nvr:8765"
    assert base(bind="fd00::5") == "http://[fd00::5]:8765"
    assert base(enabled=False, public_url="http://nvr:8765") is None
    assert media_path(12, "crop") == "/api/tracks/12/crop"


# -- in the running daemon --------------------------------------------------------------------------

def fetch(url: str) -> tuple[int, bytes, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.read(), answer.headers.get("content-type", "")
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read(), exc.headers.get("content-type", "")


def test_in_the_daemon_a_recognised_face_links_to_its_images_and_has_its_entities(
        tmp_path: Path, models_dir: Path, shared_dir: Path, examples: Path,
        mosquitto: Mosquitto) -> None:
    port = free_port()
    (tmp_path / "token").write_text(TOKEN)
    write_yaml(tmp_path / "gallery.yaml", {"people": [
        {"id": "lin", "name": "Lin-Manuel Miranda", "images": [str(examples / "lin-manuel-miranda.png")]}]})
    config = write_yaml(tmp_path / "config.yaml", {
        "cameras": [{"name": "stage", "fps": 10, "loop": True, "realtime": True,
                     "url": str(shared_dir / "data" / "videos" / "short_hamilton_clip.mp4")}],
        "gallery": "gallery.yaml", "state_dir": "state", "metrics": {"enabled": False},
        "outputs": {"zmq": False, "mqtt": {"host": mosquitto.host, "port": mosquitto.port,
                                           "home_assistant": True}},
        "api": {"port": port, "token_file": "token", "public_url": f"http://127.0.0.1:{port}"}})
    mqtt = MqttEvents(mosquitto, "#")
    try:
        with DaemonProcess(config, models_dir, tmp_path) as daemon:
            mqtt.follow(daemon)
            daemon.start()
            lin = mqtt.wait_for(lambda e: isinstance(e, FaceRecognized) and e.identity == "lin"
                                and e.snapshot_url is not None, 120, "Lin-Manuel Miranda named")
            assert isinstance(lin, FaceRecognized) and lin.snapshot_url and lin.crop_url
            assert lin.snapshot_url.startswith(f"http://127.0.0.1:{port}/api/tracks/{lin.track_id}/")
            status, body, kind = fetch(lin.snapshot_url)  # no header: the link's signature
            assert (status, kind) == (200, "image/jpeg") and body.startswith(b"\xff\xd8")
            status, body, _ = fetch(lin.snapshot_url[:-4] + "0000")
            assert status == 401 and set(json.loads(body)) == {"error"}
            # the aligned crop, once the track has ended and the library has stored it
            mqtt.wait_for(lambda e: isinstance(e, TrackEnded) and e.track_id == lin.track_id,
                          120, "Lin's track ended")
            crops: list[tuple[int, bytes, str]] = []

            def crop_served() -> bool:
                crops.append(fetch(lin.crop_url or ""))
                return crops[-1][0] == 200

            wait_until(crop_served, 60, "the crop served", daemon.log_tail, daemon.gone)
            image = cv2.imdecode(np.frombuffer(crops[-1][1], np.uint8), cv2.IMREAD_COLOR)
            assert image is not None and image.shape == (112, 112, 3)

            # Home Assistant: Lin's device, present, last seen on the stage, and the face
            mqtt.wait_for_message("homeassistant/binary_sensor/facewatch/person_lin_presence/config",
                                  lambda m: bool(m.payload), 30, "Lin's presence entity")
            mqtt.wait_for_message("facewatch/people/lin/presence", lambda m: m.payload == b"ON", 30,
                                  "Lin present")
            seen = mqtt.wait_for_message("facewatch/people/lin/last_seen", lambda m: True, 30,
                                         "Lin last seen")
            assert json.loads(seen.payload)["camera"] == "stage"
            face = mqtt.wait_for_message("facewatch/stage/last_face", lambda m: True, 30, "the face")
            assert face.payload.startswith(b"\xff\xd8")
            daemon.terminate()
            assert daemon.wait(20) == 0
    finally:
        mqtt.close()
