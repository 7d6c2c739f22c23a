"""The daemon's proof: `facewatch run --config FILE` as a user runs it, against real parts.

Everything is real and on 127.0.0.1: a mosquitto broker, an RTSP server looping the Hamilton
clip, the ONNX models built from ../shared, the portraits from face_recognition's examples, and
the daemon itself as a subprocess with its own processes (sources, inference process, publisher).  The
tests read what it publishes, as consumers would: MQTT (paho, QoS 1), a ZeroMQ SUB socket, and
the retained MQTT topics a client that connects later sees.

Waits are long (a loaded 2-core machine runs the decoder, the detector and the test at once)
and only bound how long a failure takes to show: every assertion is about what was published,
never about how soon.  `facewatch bench` measures speed.

The first tests share one daemon on the RTSP stream (`stage`), in file order: recognition,
retained state, a camera outage, then SIGTERM, which ends that daemon.
"""

from __future__ import annotations

import os
import re
import signal
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from facewatch.events import (
    CameraStatus,
    Event,
    FaceRecognized,
    FaceUnknown,
    TrackEnded,
    TrackStarted,
    from_json,
)
from facewatch.gallery.watch import POLL_EVERY_S
from facewatch.supervisor.supervisor import STOP_BUDGET_S
from tests.support.daemon import (
    DaemonProcess,
    EventLog,
    MqttEvents,
    MqttMessage,
    Predicate,
    ZmqEvents,
    camera_state,
    describe,
    of_type,
    recognized,
    run_once,
    status_state,
    unique,
    wait_until,
    write_yaml,
)
from tests.support.mosquitto import Mosquitto, free_port, mosquitto_available
from tests.support.rtsp_process import RtspServerProcess

# How long a wait may take before the test fails: generous, see the module docstring.
FIRST_EVENT_S = 90.0
EVENT_S = 60.0

# -- what the Hamilton clip shows ----------------------------------------------------------------
#
# short_hamilton_clip.mp4 is 640x360, 275 frames at 29.97 fps (9.2 s); the RTSP server loops it.
# Its shots (cuts before frames 20, 82 and 211), with face boxes (x1, y1, x2, y2) measured with
# the detector on frames 10 and 240:
#   0.0-0.7 s  the stage from afar: Lin-Manuel Miranda standing (524, 45, 566, 100), the pianist
#              Alex Lacamoire at the bottom left (52, 184, 76, 219);
#   0.7-2.7 s  Alex Lacamoire in close-up (his face 170-200 px wide; Lin's is never 150);
#   2.7-7.0 s  Lin-Manuel Miranda in close-up (60-110 px wide), moving across the left half;
#   7.0-9.2 s  the audience: Barack Obama (314, 29, 394, 146), Michelle Obama to his right in
#              the image (380, 78, 451, 186), two guests at (40, 60, 104, 140) and
#              (162, 80, 226, 176) -- the latter where Lin's close-up starts, so a shot is told
#              by time, from the tracks of someone seen only in it, not by position alone.
SEATS = {
    "lin-far": (524.0, 45.0, 566.0, 100.0),
    "pianist": (52.0, 184.0, 76.0, 219.0),
    "obama": (314.0, 29.0, 394.0, 146.0),
    "michelle": (380.0, 78.0, 451.0, 186.0),
}
CLOSE_UP_WIDTH = 150.0
ENROLLED = {"lin", "obama"}

# The gallery runs at the default operating point (no threshold set): for two people enrolled,
# the default embedder (mobilefacenet-fused) names someone at 0.326 (`facewatch gallery build`
# says so).  What the clip's tracks score against it (`facewatch eval video`): Barack Obama
# 0.336 against the mean of his two portraits (0.326 against obama.jpg alone), Lin 0.42 on the
# far stage and 0.80 close up; everyone not enrolled stays below 0.10.
GALLERY_HEADER = """\
# The Hamilton clip's gallery, at the default threshold for its size.
"""


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def seat_of(bbox: Sequence[float]) -> str | None:
    """The seat a face box is at (the one it overlaps most, if at least 0.3), else None."""
    best = max(SEATS, key=lambda s: iou(bbox, SEATS[s]))
    return best if iou(bbox, SEATS[best]) >= 0.3 else None


def at_seat(seat: str, *types: str) -> Predicate:
    """Events of `types` about the face at `seat`."""
    return lambda e: (isinstance(e, (TrackStarted, FaceRecognized, FaceUnknown))
                      and e.type in types and seat_of(e.bbox) == seat)


def recognized_at(identity: str, seat: str) -> Predicate:
    return lambda e: isinstance(e, FaceRecognized) and e.identity == identity \
        and seat_of(e.bbox) == seat


def recognized_after(ts: float) -> Predicate:
    """A recognition in a frame captured after `ts`."""
    return lambda e: isinstance(e, FaceRecognized) and e.ts > ts


def ended(track_ids: set[int]) -> Predicate:
    return lambda e: isinstance(e, TrackEnded) and e.track_id in track_ids


def not_online(e: Event) -> bool:
    return isinstance(e, CameraStatus) and e.state != "online"


def shots_without_lin(events: list[Event]) -> list[tuple[float, float]]:
    """(first, last) capture time of each audience shot and each close-up of Alex Lacamoire,
    from the tracks of Michelle Obama and of Alex's large face: a track is started on its
    second frame, and no decision comes before that, so [started, ended] holds every
    decision of that shot after the track's own start."""
    marks = {e.track_id: e.ts for e in events if isinstance(e, TrackStarted)
             and (seat_of(e.bbox) == "michelle" or e.bbox[2] - e.bbox[0] > CLOSE_UP_WIDTH)}
    ended = {e.track_id: e.ts for e in events if isinstance(e, TrackEnded)}
    return [(ts - 0.001, ended.get(tid, float("inf")) + 0.001) for tid, ts in marks.items()]


def check_who_is_named(events: list[Event]) -> None:
    """Lin-Manuel Miranda and Barack Obama are named, where they are, and nobody else is."""
    named = [e for e in events if isinstance(e, FaceRecognized)]
    assert {e.identity for e in named} <= ENROLLED
    assert {e.identity for e in events if isinstance(e, TrackEnded)} <= ENROLLED | {None}
    shots = shots_without_lin(events)
    for e in named:
        where = describe(e)
        if e.identity == "obama":
            assert seat_of(e.bbox) == "obama", f"Barack Obama named away from his seat: {where}"
        else:
            assert not any(first <= e.ts <= last for first, last in shots), \
                f"someone in the audience or Alex Lacamoire named Lin-Manuel Miranda: {where}"
            assert seat_of(e.bbox) != "pianist", f"the pianist named: {where}"
    michelle = {e.track_id for e in events if isinstance(e, (TrackStarted, FaceUnknown))
                and seat_of(e.bbox) == "michelle"}
    assert any(isinstance(e, FaceUnknown) and e.track_id in michelle for e in events), \
        "Michelle Obama's track was never decided unknown"
    assert not [describe(e) for e in named if e.track_id in michelle or seat_of(e.bbox) == "michelle"]
    assert all(e.identity is None for e in events
               if isinstance(e, TrackEnded) and e.track_id in michelle)


def open_tracks(events: list[Event], camera: str) -> set[int]:
    started = {e.track_id for e in events if isinstance(e, TrackStarted) and e.camera == camera}
    return started - {e.track_id for e in events if isinstance(e, TrackEnded)}




def person(gallery_id: str, name: str, *images: Path) -> dict[str, Any]:
    return {"id": gallery_id, "name": name, "images": [str(image) for image in images]}


def daemon_config(path: Path, cameras: list[dict[str, Any]], *, zmq_port: int,
                  broker: Mosquitto | None = None, metrics_port: int | None = None) -> Path:
    """A daemon config beside `path`'s gallery.yaml: ZeroMQ on `zmq_port`, the JSON-lines file
    events.jsonl, state in state/, MQTT and metrics when given."""
    outputs: dict[str, Any] = {"zmq": {"bind": f"tcp://127.0.0.1:{zmq_port}"},
                               "jsonl": "events.jsonl"}
    if broker is not None:
        outputs["mqtt"] = {"host": broker.host, "port": broker.port}
    config: dict[str, Any] = {
        "cameras": cameras, "gallery": "gallery.yaml", "state_dir": "state", "outputs": outputs,
        "metrics": {"enabled": True, "port": metrics_port} if metrics_port else {"enabled": False}}
    return write_yaml(path, config)


def late_subscriber(broker: Mosquitto, topic: str) -> MqttMessage:
    """What a client that subscribes now gets at once: the retained message on `topic`."""
    client = MqttEvents(broker, topic)
    try:
        return client.wait_for_message(topic, lambda m: m.retain, 10.0, "the retained message")
    finally:
        client.close()


@pytest.fixture(scope="module")
def clip(shared_dir: Path) -> Path:
    return shared_dir / "data" / "videos" / "short_hamilton_clip.mp4"


@pytest.fixture(scope="module")
def lin(examples: Path) -> dict[str, Any]:
    return person("lin", "Lin-Manuel Miranda", examples / "lin-manuel-miranda.png")


@pytest.fixture(scope="module")
def obama(examples: Path) -> dict[str, Any]:
    # his two portraits in ../shared (obama-*p.jpg and obama_small.jpg are obama.jpg resized)
    return person("obama", "Barack Obama", examples / "obama.jpg", examples / "obama2.jpg")


# -- one daemon on a live RTSP stream ------------------------------------------------------------


@dataclass
class Stage:
    daemon: DaemonProcess
    rtsp: RtspServerProcess
    broker: Mosquitto
    zmq: ZmqEvents
    mqtt: MqttEvents
    jsonl: Path  # the daemon's own record of every event it published

    @property
    def logs(self) -> tuple[EventLog, EventLog]:
        return self.zmq, self.mqtt

    def require_running(self) -> None:
        if self.daemon.returncode is not None:
            pytest.fail(f"the daemon has exited ({self.daemon.returncode}):\n{self.daemon.log_tail()}")


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory, models_dir: Path, clip: Path,
          lin: dict[str, Any], obama: dict[str, Any]) -> Iterator[Stage]:
    if not mosquitto_available():
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    tmp = tmp_path_factory.mktemp("stage")
    write_yaml(tmp / "gallery.yaml", {"people": [lin, obama]},
               GALLERY_HEADER)
    with ExitStack() as stack:
        broker = Mosquitto(tmp / "mosquitto")
        stack.callback(broker.stop)
        broker.start()
        rtsp = stack.enter_context(RtspServerProcess(clip, tmp, mount="/stage"))
        url = rtsp.start()
        zmq_port = free_port()
        # Short reconnection backoff: the outage test restarts the server within seconds.
        config = daemon_config(
            tmp / "config.yaml",
            [{"name": "stage", "url": url, "fps": 10, "reconnect_initial_s": 0.5,
              "reconnect_max_s": 2}],
            zmq_port=zmq_port, broker=broker)
        # Consumers first: ZeroMQ keeps no history and the events topic is not retained.
        zmq_events = ZmqEvents(f"tcp://127.0.0.1:{zmq_port}")
        stack.callback(zmq_events.close)
        mqtt_events = MqttEvents(broker, "facewatch/#")
        stack.callback(mqtt_events.close)
        daemon = stack.enter_context(DaemonProcess(config, models_dir, tmp))
        zmq_events.follow(daemon)
        mqtt_events.follow(daemon)
        daemon.start()
        # Every test may run alone or in any order: each starts from a daemon that is
        # recognising (the first recognition is what the slowest start waits for).
        zmq_events.wait_for(of_type("face.recognized"), FIRST_EVENT_S, "a first recognition")
        yield Stage(daemon, rtsp, broker, zmq_events, mqtt_events, tmp / "events.jsonl")


def test_stage_names_the_enrolled_and_nobody_else_on_mqtt_and_zeromq(stage: Stage) -> None:
    stage.require_running()
    for log in stage.logs:
        log.wait_for(recognized("lin"), FIRST_EVENT_S, "Lin-Manuel Miranda recognised")
        log.wait_for(recognized("obama"), FIRST_EVENT_S, "Barack Obama recognised")
        log.wait_for(at_seat("michelle", "face.unknown"), EVENT_S, "Michelle Obama as unknown")
        # the rest of that audience shot: her track's end
        michelle = {e.track_id for e in log.events
                    if isinstance(e, TrackStarted) and seat_of(e.bbox) == "michelle"}
        log.wait_for(ended(michelle), EVENT_S, "the end of the audience shot")
    for log in stage.logs:
        check_who_is_named(log.events)
    # each recognition also on its per-camera topic, as a consumer of one camera reads it
    recognitions = {e.event_id for e in stage.mqtt.matching(of_type("face.recognized"))}

    def on_camera_topic() -> set[str]:
        return {from_json(m.payload).event_id
                for m in stage.mqtt.messages("facewatch/stage/face.recognized")}

    wait_until(lambda: recognitions <= on_camera_topic(), 10.0,
               "every recognition on facewatch/stage/face.recognized")


def test_stage_state_is_retained_for_late_subscribers(stage: Stage) -> None:
    stage.require_running()
    stage.mqtt.wait_for(camera_state("online", "stage"), FIRST_EVENT_S, "the camera online")
    status = late_subscriber(stage.broker, "facewatch/stage/status")
    assert status_state(status) == "online"
    available = late_subscriber(stage.broker, "facewatch/available")
    assert available.payload == b"online"


def test_stage_camera_outage_is_published_and_recognition_resumes(stage: Stage) -> None:
    stage.require_running()
    for log in stage.logs:
        log.wait_for(camera_state("online", "stage"), FIRST_EVENT_S, "the camera online")
    marks = [log.mark() for log in stage.logs]
    stage.rtsp.kill()  # SIGKILL: no RTSP TEARDOWN, the connection just ends
    for log, mark in zip(stage.logs, marks):
        lost = log.wait_for(not_online, EVENT_S, "the camera offline or reconnecting",
                            since=mark)
        assert isinstance(lost, CameraStatus) and lost.camera == "stage"
        assert lost.state in ("offline", "reconnecting")
    # the broker keeps the camera's latest state for whoever asks now
    assert status_state(late_subscriber(stage.broker, "facewatch/stage/status")) != "online"

    stage.rtsp.start()  # the same port: the camera is back where it was
    for log, mark in zip(stage.logs, marks):
        back = log.wait_for(camera_state("online", "stage"), EVENT_S, "the camera online again",
                            since=mark)
        # a face seen in a frame captured after the camera came back
        log.wait_for(recognized_after(back.ts), FIRST_EVENT_S, "a recognition after the restart",
                     since=mark)
    assert status_state(late_subscriber(stage.broker, "facewatch/stage/status")) == "online"


def test_stage_sigterm_ends_open_tracks_and_says_offline(stage: Stage) -> None:
    stage.require_running()
    # stop while someone is being followed, so that there are tracks left to end
    wait_until(lambda: bool(open_tracks(stage.zmq.events, "stage")), FIRST_EVENT_S,
               "an open track", stage.zmq.summary, stage.daemon.gone)
    stage.daemon.terminate()
    code = stage.daemon.wait(STOP_BUDGET_S)
    assert code == 0, stage.daemon.log_tail()

    # Every event went out on both transports, in order, none lost: the JSON-lines file is
    # the daemon's own record (seq 1, 2, ... N); the last messages may still be in flight.
    written = [from_json(line) for line in stage.jsonl.read_text().splitlines()]
    assert [e.seq for e in written] == list(range(1, len(written) + 1))
    wait_until(lambda: len(stage.zmq.events) >= len(written)
               and len(unique(stage.mqtt.events)) >= len(written), 10.0,
               f"all {len(written)} events on ZeroMQ and MQTT")
    mqtt_events = unique(stage.mqtt.events)
    assert [e.event_id for e in stage.zmq.events] == [e.event_id for e in written]
    assert [e.event_id for e in mqtt_events] == [e.event_id for e in written]
    assert not open_tracks(written, "stage"), "tracks left without track.ended"
    statuses = [e for e in written if isinstance(e, CameraStatus)]
    assert statuses[-1].state == "offline", describe(statuses[-1])
    # a clean stop leaves "offline" behind, for the daemon and for its camera
    assert late_subscriber(stage.broker, "facewatch/available").payload == b"offline"
    assert status_state(late_subscriber(stage.broker, "facewatch/stage/status")) == "offline"
    # the whole run, restart included, named the right people only
    for events in (stage.zmq.events, mqtt_events):
        check_who_is_named(events)
    # every track has its own snapshot file (a track split at a cut must not overwrite the
    # previous person's view)
    owners: dict[str, set[int]] = {}
    for e in stage.zmq.events:
        if isinstance(e, (FaceRecognized, FaceUnknown, TrackEnded)) and e.snapshot is not None:
            owners.setdefault(e.snapshot, set()).add(e.track_id)
    assert owners, "no event carried a snapshot"
    assert {path: ids for path, ids in owners.items() if len(ids) > 1} == {}
    assert all(Path(path).is_file() for path in owners)


# -- a video without faces ----------------------------------------------------------------------

TREE_FRAMES = 68


def metric(port: int, name: str, labels: str) -> float:
    """A counter from the daemon's Prometheus endpoint, e.g. `metric(port,
    "facewatch_frames_analysed_total", 'camera="tree"')`; 0 before its first sample."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    prefix = f"{name}{{{labels}}} "
    return sum(float(line[len(prefix):]) for line in text.splitlines() if line.startswith(prefix))


def test_a_video_without_faces_gives_no_face_events(tmp_path: Path, models_dir: Path,
                                                    shared_dir: Path, lin: dict[str, Any],
                                                    obama: dict[str, Any]) -> None:
    write_yaml(tmp_path / "gallery.yaml", {"people": [lin, obama]},
               GALLERY_HEADER)
    zmq_port, metrics_port = free_port(), free_port()
    tree = shared_dir / "data" / "videos" / "opencv_tree_noface.avi"
    # every frame analysed (fps: null), none dropped (realtime: false), then the file ends
    config = daemon_config(tmp_path / "config.yaml",
                           [{"name": "tree", "url": str(tree), "fps": None, "realtime": False}],
                           zmq_port=zmq_port, metrics_port=metrics_port)
    events = ZmqEvents(f"tcp://127.0.0.1:{zmq_port}")
    try:
        with DaemonProcess(config, models_dir, tmp_path) as daemon:
            events.follow(daemon)
            daemon.start()
            end = events.wait_for(camera_state("offline", "tree"), FIRST_EVENT_S, "the end of the file")
            assert isinstance(end, CameraStatus) and end.reason == "eof"
            # the absence of faces means something only if every frame was looked at
            analysed = ("facewatch_frames_analysed_total", 'camera="tree"')
            wait_until(lambda: metric(metrics_port, *analysed) >= TREE_FRAMES, EVENT_S,
                       f"{TREE_FRAMES} frames analysed", daemon.log_tail, daemon.gone)
            assert metric(metrics_port, *analysed) == TREE_FRAMES
            daemon.terminate()
            assert daemon.wait(STOP_BUDGET_S) == 0, daemon.log_tail()
    finally:
        events.close()
    seen = [(e.type, getattr(e, "state", None), getattr(e, "reason", None)) for e in events.events]
    assert seen == [("camera.status", "online", "online"), ("camera.status", "offline", "eof")]


def test_sighup_applies_a_new_camera_and_seq_carries_on(tmp_path: Path, models_dir: Path,
                                                        shared_dir: Path,
                                                        lin: dict[str, Any]) -> None:
    write_yaml(tmp_path / "gallery.yaml", {"people": [lin]})
    zmq_port = free_port()
    tree = {"name": "tree", "url": str(shared_dir / "data" / "videos" / "opencv_tree_noface.avi"),
            "realtime": False}
    config = daemon_config(tmp_path / "config.yaml", [tree], zmq_port=zmq_port)
    events = ZmqEvents(f"tcp://127.0.0.1:{zmq_port}")
    try:
        with DaemonProcess(config, models_dir, tmp_path) as daemon:
            events.follow(daemon)
            daemon.start()
            events.wait_for(camera_state("offline", "tree"), FIRST_EVENT_S, "the first file's end")
            # a second camera: the inference process and the publisher restart with it (new topics)
            daemon_config(tmp_path / "config.yaml", [tree, {**tree, "name": "second"}],
                          zmq_port=zmq_port)
            daemon.send(signal.SIGHUP)
            events.wait_for(camera_state("offline", "second"), FIRST_EVENT_S,
                            "the second camera's end")
            daemon.terminate()
            assert daemon.wait(STOP_BUDGET_S) == 0, daemon.log_tail()
    finally:
        events.close()
    written = [from_json(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    # one run, one sequence: the restarted publisher went on from where the first stopped
    assert [e.seq for e in written] == list(range(1, len(written) + 1))
    assert [e.event_id for e in events.events] == [e.event_id for e in written]
    # the file that had ended was not read again: its config did not change
    assert [(e.camera, getattr(e, "state", None)) for e in written] == [
        ("tree", "online"), ("tree", "offline"), ("second", "online"), ("second", "offline")]


def test_children_stop_when_the_supervisor_is_killed(tmp_path: Path, models_dir: Path,
                                                     shared_dir: Path, lin: dict[str, Any]) -> None:
    """kill -9 (or the OOM killer) on the supervisor must not leave its children running,
    holding the ZeroMQ port and the cameras, so that the daemon could not start again."""
    write_yaml(tmp_path / "gallery.yaml", {"people": [lin]})
    zmq_port = free_port()
    tree = str(shared_dir / "data" / "videos" / "opencv_tree_noface.avi")
    config = daemon_config(tmp_path / "config.yaml",
                           [{"name": "tree", "url": tree, "fps": 5, "loop": True}],
                           zmq_port=zmq_port)
    events = ZmqEvents(f"tcp://127.0.0.1:{zmq_port}")
    try:
        with DaemonProcess(config, models_dir, tmp_path) as daemon:
            events.follow(daemon)
            daemon.start()
            events.wait_for(camera_state("online", "tree"), FIRST_EVENT_S, "the camera online")
            children = daemon.children()
            assert len(children) >= 3, children  # source, inference process, publisher
            daemon.send(signal.SIGKILL)
            daemon.wait(10)
            wait_until(lambda: not any(daemon.running(pid) for pid in children),
                       EVENT_S, f"the children {children} to exit")
    finally:
        events.close()


def test_sigterm_to_every_process_at_once_stops_cleanly(tmp_path: Path, models_dir: Path,
                                                        lin: dict[str, Any]) -> None:
    """systemd's default KillMode sends SIGTERM to every process of the unit at once.  A
    child waiting out its reconnection backoff (a camera that is down) then stops while the
    supervisor stops it too: with multiprocessing.Event as the stop flag, the child's signal
    handler deadlocked inside the wait it interrupted, holding the flag's lock, and the
    supervisor hung on that lock for good (3 runs of 3)."""
    write_yaml(tmp_path / "gallery.yaml", {"people": [lin]})
    zmq_port = free_port()
    down = f"rtsp://127.0.0.1:{free_port()}/door"  # nothing listens there
    config = daemon_config(tmp_path / "config.yaml", [{"name": "door", "url": down}],
                           zmq_port=zmq_port)
    events = ZmqEvents(f"tcp://127.0.0.1:{zmq_port}")
    try:
        with DaemonProcess(config, models_dir, tmp_path) as daemon:
            events.follow(daemon)
            daemon.start()
            events.wait_for(camera_state("reconnecting", "door"), FIRST_EVENT_S,
                            "the camera reconnecting")
            time.sleep(2.0)  # attempts fail at once; by now the source waits 2 s for the third
            daemon.send_to_group(signal.SIGTERM)
            assert daemon.wait(STOP_BUDGET_S) == 0, daemon.log_tail()
    finally:
        events.close()


# -- gallery edits while the daemon runs --------------------------------------------------------

GALLERY_BYTES = 4096


def write_gallery(path: Path, people: list[dict[str, Any]], *, unnoticed: bool = False) -> None:
    """The gallery YAML, padded with a comment to a fixed size.  `unnoticed` also gives it the
    previous file's modification time, so that the inference process's poll (which compares size and
    mtime) cannot see the edit: only SIGHUP can make the daemon read it."""
    import yaml

    text = GALLERY_HEADER + yaml.safe_dump({"people": people},
                                           sort_keys=False)
    text += "#" * (GALLERY_BYTES - len(text) - 1) + "\n"
    assert len(text.encode()) == GALLERY_BYTES
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    if unnoticed:
        before = path.stat()
        os.utime(tmp, ns=(before.st_atime_ns, before.st_mtime_ns))
    tmp.replace(path)  # one rename: the poll never sees half a file


def test_gallery_edits_change_who_is_recognised(tmp_path: Path, models_dir: Path, clip: Path,
                                               lin: dict[str, Any], obama: dict[str, Any]) -> None:
    gallery = tmp_path / "gallery.yaml"
    write_gallery(gallery, [lin])
    zmq_port, metrics_port = free_port(), free_port()
    # realtime: false analyses every pass of the loop alike, so a change in who is named comes
    # from the gallery, not from which frames happened to be analysed
    config = daemon_config(tmp_path / "config.yaml",
                           [{"name": "replay", "url": str(clip), "fps": 10, "realtime": False,
                             "loop": True}],
                           zmq_port=zmq_port, metrics_port=metrics_port)
    log = ZmqEvents(f"tcp://127.0.0.1:{zmq_port}")
    try:
        with DaemonProcess(config, models_dir, tmp_path) as daemon:
            log.follow(daemon)
            daemon.start()
            # 1. only Lin enrolled: Lin named, Barack Obama's face unknown
            log.wait_for(recognized("lin"), FIRST_EVENT_S, "Lin-Manuel Miranda recognised")
            log.wait_for(at_seat("obama", "face.unknown"), FIRST_EVENT_S,
                         "Barack Obama as unknown")
            assert not log.matching(recognized("obama"))
            # Lin far away (0.43): what step 4 turns into unknown
            log.wait_for(recognized_at("lin", "lin-far"), FIRST_EVENT_S,
                         "Lin on the far stage recognised")

            # 2. Obama added to the file: the inference process notices and names him
            mark = log.mark()
            write_gallery(gallery, [lin, obama])
            log.wait_for(recognized_at("obama", "obama"), FIRST_EVENT_S,
                         "Barack Obama recognised", since=mark)

            # 3. a broken edit (an image that does not exist) is refused: the running gallery
            # stays, and both go on being named
            failed = ("facewatch_gallery_reloads_total", 'result="error"')
            assert metric(metrics_port, *failed) == 0
            write_gallery(gallery, [lin, obama, person("ghost", "Nobody", tmp_path / "no.jpg")])
            wait_until(lambda: metric(metrics_port, *failed) == 1, EVENT_S,
                       "the broken gallery refused", daemon.log_tail, daemon.gone)
            mark = log.mark()
            log.wait_for(recognized("lin"), FIRST_EVENT_S, "Lin recognised", since=mark)
            log.wait_for(recognized("obama"), FIRST_EVENT_S, "Obama recognised", since=mark)

            # 4. Lin removed: Lin on the far stage comes out unknown
            mark = log.mark()
            write_gallery(gallery, [obama])
            log.wait_for(at_seat("lin-far", "face.unknown"), FIRST_EVENT_S,
                         "Lin-Manuel Miranda as unknown", since=mark)

            # 5. Lin enrolled again, but unnoticeably: frames captured over two poll periods
            # later, and three more passes (Obama named each time) name nobody else; SIGHUP
            # makes the daemon read it
            mark = log.mark()
            polled = time.time() + 2 * POLL_EVERY_S + 1.0
            write_gallery(gallery, [lin, obama], unnoticed=True)
            wait_until(lambda: len(log.matching(recognized("obama"), since=mark)) >= 3
                       and bool(log.matching(lambda e: e.ts > polled, since=mark)),
                       FIRST_EVENT_S, "three passes of the clip", log.summary, daemon.gone)
            assert not log.matching(recognized("lin"), since=mark), \
                "the poll saw an edit that kept size and time: this step proves nothing"
            mark = log.mark()
            daemon.send(signal.SIGHUP)
            log.wait_for(recognized("lin"), FIRST_EVENT_S, "Lin-Manuel Miranda recognised after "
                         "SIGHUP", since=mark)

            daemon.terminate()
            assert daemon.wait(STOP_BUDGET_S) == 0, daemon.log_tail()
    finally:
        log.close()
    check_who_is_named_by_gallery(log.events)


def check_who_is_named_by_gallery(events: list[Event]) -> None:
    """Whoever the gallery held at the time, nobody but those two was ever named."""
    assert {e.identity for e in events if isinstance(e, FaceRecognized)} <= ENROLLED
    assert not [describe(e) for e in events
                if isinstance(e, FaceRecognized) and seat_of(e.bbox) in ("michelle", "pianist")]


# -- a config that cannot work -------------------------------------------------------------------


@pytest.mark.parametrize("case", ["misspelt key", "broken gallery", "no models"])
def test_a_broken_config_exits_3_with_one_line(tmp_path: Path, models_dir: Path, shared_dir: Path,
                                               lin: dict[str, Any], case: str) -> None:
    write_yaml(tmp_path / "gallery.yaml", {"people": [lin]})
    tree = str(shared_dir / "data" / "videos" / "opencv_tree_noface.avi")
    camera: dict[str, Any] = {"name": "door", "url": tree}
    extra: dict[str, Any] = {}
    if case == "misspelt key":
        camera["fsp"] = 10
        expected = r"config\.yaml:\d+: cameras\[0\]\.fsp: unknown key 'fsp' \(did you mean 'fps'\?"
    elif case == "broken gallery":
        # a gallery that exists and cannot be read refuses the start (a missing one is an
        # empty gallery: tests/test_first_run.py)
        (tmp_path / "broken.yaml").write_text("people:\n  - id: ada\n    images: [\n")
        extra["gallery"] = "broken.yaml"
        expected = r"broken\.yaml:\d+: malformed YAML"
    else:
        (tmp_path / "empty").mkdir()
        extra["inference"] = {"models_dir": "empty"}
        expected = r"no model named 'mtcnn-pnet'"
    config = write_yaml(tmp_path / "config.yaml",
                        {"cameras": [camera], "gallery": "gallery.yaml", **extra})
    result = run_once(config, models_dir)
    assert result.returncode == 3, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and re.search(expected, lines[0]), result.stderr
