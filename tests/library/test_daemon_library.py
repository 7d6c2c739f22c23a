"""The face library in the running daemon: the Hamilton clip, looping, with only Lin-Manuel
Miranda enrolled.  Everything real: the daemon and its processes, the models, the clip, the
CLI a user would type."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from facewatch.events import Event, FaceRecognized, FaceUnknown, TrackEnded, TrackStarted
from tests.daemon.test_daemon_e2e import seat_of
from tests.support.daemon import DaemonProcess, ZmqEvents, wait_until, write_yaml
from tests.support.mosquitto import free_port

LOOP_S = 60.0  # several loops of the 9 s clip on a loaded machine


def facewatch(*args: str, models_dir: Path, timeout: float = 120.0) -> Any:
    """`facewatch ... --json` as a user would run it; its JSON document."""
    result = subprocess.run([sys.executable, "-m", "facewatch", *args, "--json"],
                            capture_output=True, text=True, check=False, timeout=timeout,
                            env={**os.environ, "FACEWATCH_MODELS": str(models_dir)})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def tracks_at(events: list[Event], seat: str) -> set[int]:
    return {e.track_id for e in events
            if isinstance(e, (TrackStarted, FaceUnknown, FaceRecognized)) and seat_of(e.bbox) == seat}


@pytest.fixture
def daemon_setup(tmp_path: Path, models_dir: Path, shared_dir: Path, examples: Path
                 ) -> tuple[Path, int]:
    write_yaml(tmp_path / "gallery.yaml", {"people": [
        {"id": "lin", "name": "Lin-Manuel Miranda",
         "images": [str(examples / "lin-manuel-miranda.png")]}]})
    zmq_port = free_port()
    config = write_yaml(tmp_path / "config.yaml", {
        "cameras": [{"name": "stage", "fps": 10, "loop": True, "realtime": True,
                     "url": str(shared_dir / "data" / "videos" / "short_hamilton_clip.mp4")}],
        "gallery": "gallery.yaml", "state_dir": "state",
        "outputs": {"zmq": {"bind": f"tcp://127.0.0.1:{zmq_port}"}},
        "metrics": {"enabled": False}})
    return config, zmq_port


# Barack Obama too: from his portraits his small audience face is named with little to spare
# (README, "Evaluating on video"); enrolled from the camera, at default settings, he is named.
@pytest.mark.parametrize(("seat", "person", "name"), [("michelle", "michelle", "Michelle Obama"),
                                                      ("obama", "barack", "Barack Obama")])
def test_unknown_faces_are_kept_grouped_and_a_group_named_is_recognised_next_time(
        daemon_setup: tuple[Path, int], tmp_path: Path, models_dir: Path, seat: str,
        person: str, name: str) -> None:
    config, zmq_port = daemon_setup
    events = ZmqEvents(f"tcp://127.0.0.1:{zmq_port}")
    try:
        with DaemonProcess(config, models_dir, tmp_path) as daemon:
            events.follow(daemon)
            daemon.start()
            # the first loop's audience: the person's track ends, unknown
            wait_until(lambda: any(isinstance(e, TrackEnded) and e.track_id in
                                   tracks_at(events.events, seat) for e in events.events),
                       90, f"{name}'s first track ended", daemon.log_tail, daemon.gone)
            tracks = tracks_at(events.events, seat)

            def their_faces() -> list[dict[str, Any]]:
                listed = facewatch("faces", "list", "--config", str(config), "--unknown",
                                   "--limit", "500", models_dir=models_dir)
                return [f for f in listed["faces"] if f["track_id"] in tracks]

            wait_until(lambda: bool(their_faces()), 30, "their face in the library",
                       daemon.log_tail, daemon.gone)
            face = their_faces()[0]
            assert face["status"] == "unknown" and face["camera"] == "stage"
            assert Path(face["crop"]).is_file()
            group = face["group"]
            assert group is not None
            groups = {g["id"]: g for g in
                      facewatch("clusters", "list", "--config", str(config),
                                models_dir=models_dir)["groups"]}
            assert group in groups and groups[group]["size"] >= 1
            # name the group: the gallery gains its crops, the daemon reloads it
            named_at = time.time()
            facewatch("clusters", "assign", str(group), "--person", person, "--name", name,
                      "--config", str(config), models_dir=models_dir)
            gallery = (tmp_path / "gallery.yaml").read_text()
            assert person in gallery and f"faces/{person}/" in gallery
            found = events.wait_for(
                lambda e: isinstance(e, FaceRecognized) and e.identity == person
                and e.ts > named_at, LOOP_S, f"{name} recognised in a later loop")
            assert seat_of(found.bbox) == seat
            before = len(facewatch("faces", "list", "--config", str(config), "--limit", "500",
                                   models_dir=models_dir)["faces"])
            daemon.terminate()
            assert daemon.wait(15) == 0, daemon.log_tail()
        # history survives the daemon
        after = facewatch("faces", "list", "--config", str(config), "--limit", "500",
                          models_dir=models_dir)["faces"]
        assert len(after) >= before > 0
    finally:
        events.close()
