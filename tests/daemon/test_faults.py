"""Faults the daemon must survive, each provoked for real on 127.0.0.1.

Everything is real: mosquitto, an RTSP server subprocess looping the Hamilton clip, the models
from ../shared, and `facewatch run` as a subprocess with its own processes.  Processes are
killed with real signals, found by the names they give themselves (`fw.inference`,
`fw.source:<camera>`).

Most tests share one daemon, `rig`, which is recognising before the first test starts; each
test leaves it as it found it, so the tests run in any order and alone:

    cameras   stage    the RTSP server (recognition on it: Lin-Manuel Miranda, Barack Obama)
              replay   the clip as a file in real time, in a loop: a second camera that must go
                       on producing events whatever happens to the others
              late     an RTSP address where nothing listens at start (served later)
              broken   a path the RTSP server does not have: it never works
    outputs   MQTT to a broker that persists sessions, with a persistent-session subscriber
              started before the daemon; ZeroMQ; the JSON-lines file, which is the daemon's
              own record of every event it numbered, i.e. the ground truth of what MQTT
              consumers must receive

The 60 s MQTT outage the issue asks for is one test, `test_mqtt_outage_...`: while the
broker is away, it kills the inference process and a stream process and freezes the RTSP
server (faults rarely come alone), then brings the broker back and checks that every event
arrived, in order.  The same faults are also tests of their own, each with a working broker.

Waits are generous (a loaded 2-core machine) and only bound how long a failure takes to show.
The one timed assertion is the issue's own bound: an inference process killed with SIGKILL analyses
frames again within 3 s.
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import socket
import sqlite3
import subprocess
import time
import urllib.error
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from facewatch.events import CameraStatus, Event, FaceRecognized, FaceUnknown, TrackEnded, from_json
from facewatch.supervisor.supervisor import SHM_DIR, STOP_BUDGET_S, ring_prefix
from tests.support.daemon import (
    DaemonProcess,
    MqttEvents,
    Predicate,
    ZmqEvents,
    describe,
    metric_sum,
    metrics_up,
    run_once,
    unique,
    wait_until,
    write_yaml,
)
from tests.support.mosquitto import Mosquitto, free_port, mosquitto_available
from tests.support.rtsp_process import RtspServerProcess

FIRST_EVENT_S = 120.0
EVENT_S = 60.0
OUTAGE_S = 60.0  # the broker outage
ENGINE_RESTART_BOUND_S = 3.0  # the bound, from SIGKILL to frames analysed again
NO_FRAME_TIMEOUT_S = 3.0

OUTBOX_PENDING = "facewatch_outbox_pending"
ANALYSED = "facewatch_frames_analysed_total"


def person(gallery_id: str, name: str, *images: Path) -> dict[str, Any]:
    return {"id": gallery_id, "name": name, "images": [str(image) for image in images]}


def recognized_on(camera: str, after_ts: float = 0.0) -> Predicate:
    """A recognition on `camera`, in a frame captured after `after_ts`."""
    return lambda e: isinstance(e, FaceRecognized) and e.camera == camera and e.ts > after_ts


def recognized_as(identity: str, after_ts: float) -> Predicate:
    return lambda e: isinstance(e, FaceRecognized) and e.identity == identity and e.ts > after_ts


def status_of(camera: str, *states: str) -> Predicate:
    return lambda e: isinstance(e, CameraStatus) and e.camera == camera and e.state in states




def read_jsonl(path: Path) -> list[Event]:
    """Whole lines of the daemon's JSON-lines file (each is written in one write())."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    return [from_json(line) for line in text.splitlines(keepends=True) if line.endswith("\n")]


def check_in_order_without_gaps(received: list[Event], written: list[Event]) -> None:
    """`received` (deduplicated) starts with every event of `written`, in the same order, and
    its seq numbers rise by one throughout."""
    seqs = [e.seq for e in received]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), \
        f"gaps or disorder in seq: {_runs(seqs)}"
    got = [e.event_id for e in received[:len(written)]]
    assert got == [e.event_id for e in written], "MQTT and the JSON-lines file differ"


def _runs(seqs: list[int | None]) -> str:
    """`1-40, 45-60, 41-44` for a failure message."""
    out: list[list[int]] = []
    for s in seqs:
        assert s is not None
        if out and s == out[-1][1] + 1:
            out[-1][1] = s
        else:
            out.append([s, s])
    return ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in out)


# -- the shared daemon ---------------------------------------------------------------------------


@dataclass
class Rig:
    tmp: Path
    config: Path
    config_data: dict[str, Any]
    gallery: Path
    models_dir: Path
    daemon: DaemonProcess
    broker: Mosquitto
    stage: RtspServerProcess
    late: RtspServerProcess
    zmq: ZmqEvents
    mqtt: MqttEvents
    metrics_port: int
    measured: dict[str, float] = field(default_factory=dict)

    @property
    def jsonl(self) -> Path:
        return self.tmp / "events.jsonl"

    def written(self) -> list[Event]:
        return read_jsonl(self.jsonl)

    def metric(self, name: str, **labels: str) -> float:
        try:
            return metric_sum(self.metrics_port, name, **labels)
        except urllib.error.HTTPError as exc:  # the daemon's log says why
            raise AssertionError(f"metrics endpoint: {exc}\n{self.daemon.log_tail(60)}") from None

    def require_running(self) -> None:
        if self.daemon.returncode is not None:
            pytest.fail(f"the daemon has exited ({self.daemon.returncode}):\n{self.daemon.log_tail()}")

    def wait(self, condition: Any, timeout_s: float, what: str) -> None:
        wait_until(condition, timeout_s, what, self.daemon.log_tail, self.daemon.gone)

    def write_config(self, **changes: Any) -> None:
        write_yaml(self.config, {**self.config_data, **changes})

    def log_since(self, mark: int) -> str:
        return self.daemon.log_text()[mark:]


@pytest.fixture(scope="module")
def clip(shared_dir: Path) -> Path:
    return shared_dir / "data" / "videos" / "short_hamilton_clip.mp4"


@pytest.fixture(scope="module")
def people(examples: Path) -> list[dict[str, Any]]:
    return [person("lin", "Lin-Manuel Miranda", examples / "lin-manuel-miranda.png"),
            person("obama", "Barack Obama", examples / "obama.jpg", examples / "obama2.jpg")]


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory, models_dir: Path, clip: Path,
        people: list[dict[str, Any]]) -> Iterator[Rig]:
    if not mosquitto_available():
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    tmp = tmp_path_factory.mktemp("faults")
    gallery = write_yaml(tmp / "gallery.yaml", {"people": people})
    with ExitStack() as stack:
        broker = Mosquitto(tmp / "mosquitto", persistence=True)
        stack.callback(broker.stop)
        broker.start()
        stage = stack.enter_context(RtspServerProcess(clip, tmp, mount="/stage"))
        stage_url = stage.start()
        late = stack.enter_context(RtspServerProcess(clip, tmp, mount="/late"))
        late.port = free_port()  # nothing listens there until the test starts it
        zmq_port, metrics_port = free_port(), free_port()
        quick = {"reconnect_initial_s": 0.5, "reconnect_max_s": 2}
        data: dict[str, Any] = {
            "cameras": [
                {"name": "stage", "url": stage_url, "fps": 10, "no_frame_timeout_s": NO_FRAME_TIMEOUT_S,
                 **quick},
                {"name": "replay", "url": str(clip), "fps": 5, "realtime": True, "loop": True},
                {"name": "late", "url": late.url, **quick},
                {"name": "broken", "url": stage_url.replace("/stage", "/nothing"),
                 "reconnect_initial_s": 0.5, "reconnect_max_s": 4},
            ],
            "gallery": "gallery.yaml", "state_dir": "state",
            "outputs": {"zmq": {"bind": f"tcp://127.0.0.1:{zmq_port}"}, "jsonl": "events.jsonl",
                        "mqtt": {"host": broker.host, "port": broker.port}},
            "metrics": {"enabled": True, "port": metrics_port},
        }
        config = write_yaml(tmp / "config.yaml", data)
        # consumers first: ZeroMQ keeps no history, and the MQTT session must exist before the
        # first event so that the broker queues everything for it from then on
        zmq_events = ZmqEvents(f"tcp://127.0.0.1:{zmq_port}")
        stack.callback(zmq_events.close)
        mqtt_events = MqttEvents(broker, "facewatch/events", session="faults-subscriber")
        stack.callback(mqtt_events.close)
        daemon = DaemonProcess(config, models_dir, tmp)
        zmq_events.follow(daemon)
        mqtt_events.follow(daemon)
        daemon.start()
        the_rig = Rig(tmp, config, data, gallery, models_dir, daemon, broker, stage, late,
                      zmq_events, mqtt_events, metrics_port)
        stack.callback(lambda: the_rig.daemon.stop())  # the last test replaces the daemon
        # Every test may run alone or in any order: each starts from a daemon that recognises
        # on both working cameras, with its metrics endpoint up.
        for camera in ("stage", "replay"):
            zmq_events.wait_for(recognized_on(camera), FIRST_EVENT_S, f"a recognition on {camera}")
        the_rig.wait(lambda: metrics_up(metrics_port), EVENT_S, "the metrics endpoint")
        yield the_rig
        if the_rig.measured:
            print("\nmeasured:", ", ".join(f"{k} {v:.2f} s" for k, v in the_rig.measured.items()))


def test_cameras_that_do_not_work_back_off_while_the_others_recognise(rig: Rig) -> None:
    restarts = rig.metric("facewatch_process_restarts_total")
    for camera in ("stage", "replay"):
        rig.zmq.wait_for(recognized_on(camera), FIRST_EVENT_S, f"a recognition on {camera}")
    sources = {cam: rig.daemon.child(f"source:{cam}") for cam in ("late", "broken")}
    assert all(sources.values()), sources
    attempts = status_of("broken", "reconnecting")
    wait_until(lambda: len(rig.zmq.matching(attempts)) >= 5, EVENT_S,
               "five failed attempts on the camera that never works", rig.zmq.summary,
               rig.daemon.gone)
    rig.zmq.wait_for(status_of("late", "reconnecting"), EVENT_S, "the unreachable camera retrying")
    failed = rig.zmq.matching(attempts)
    # Backoff: 0.5 s, then doubling up to 4 s between attempts (reconnect_initial_s,
    # reconnect_max_s).  Asserted loosely (the attempts' own duration adds to each interval):
    # the fourth interval (4 s planned) is clearly longer than the first (0.5 s planned).
    intervals = [b.ts - a.ts for a, b in itertools.pairwise(failed)]
    assert intervals[3] > intervals[0] + 2.0, [round(i, 2) for i in intervals]
    assert all(isinstance(e, CameraStatus) and e.reason for e in failed)
    # no crash: the same source processes still, and none restarted
    assert {cam: rig.daemon.child(f"source:{cam}") for cam in sources} == sources
    assert rig.metric("facewatch_process_restarts_total") == restarts
    # meanwhile both working cameras went on recognising people
    since = failed[0].ts
    for camera in ("stage", "replay"):
        rig.zmq.wait_for(recognized_on(camera, since), EVENT_S,
                         f"a recognition on {camera} while the others fail")

    # the unreachable camera comes online as soon as its server appears
    mark = rig.zmq.mark()
    rig.late.start()
    rig.zmq.wait_for(status_of("late", "online"), EVENT_S, "the late camera online", since=mark)
    rig.late.kill()  # and back to retrying, out of the way of the next tests
    rig.zmq.wait_for(status_of("late", "reconnecting", "offline"), EVENT_S,
                     "the late camera retrying again", since=mark)
    assert rig.daemon.child("source:late") == sources["late"]


def test_inference_killed_analyses_again_within_3_s(rig: Rig) -> None:
    rig.require_running()
    inference = rig.daemon.child("inference")
    assert inference is not None
    restarts = rig.metric("facewatch_process_restarts_total", role="inference")
    sources = {cam: rig.daemon.child(f"source:{cam}") for cam in ("stage", "replay")}
    t_wall = time.time()
    t0 = time.monotonic()
    os.kill(inference, signal.SIGKILL)
    while DaemonProcess.running(inference):
        time.sleep(0.005)
    analysed = rig.metric(ANALYSED)  # everything the dead inference process counted
    rig.wait(lambda: rig.metric(ANALYSED) > analysed, 30.0, "frames analysed again")
    elapsed = time.monotonic() - t0
    rig.measured["inference process SIGKILL to frames analysed again"] = elapsed
    new_inference = rig.daemon.child("inference")
    assert new_inference is not None and new_inference != inference
    # The bound; the metrics endpoint is polled, so the true figure is a little lower.
    assert elapsed < ENGINE_RESTART_BOUND_S, f"{elapsed:.2f} s"
    assert rig.metric("facewatch_process_restarts_total", role="inference") == restarts + 1
    # the streams went on (same processes) and recognition resumed on both
    assert {cam: rig.daemon.child(f"source:{cam}") for cam in sources} == sources
    for camera in sources:
        rig.zmq.wait_for(recognized_on(camera, t_wall), FIRST_EVENT_S,
                         f"a recognition on {camera} after the inference process restart")
    rig.require_running()


def test_stream_process_killed_is_restarted_and_the_other_camera_is_untouched(rig: Rig) -> None:
    rig.require_running()
    victim, bystander = rig.daemon.child("source:replay"), rig.daemon.child("source:stage")
    assert victim is not None and bystander is not None
    mark = rig.zmq.mark()
    stage_analysed = rig.metric(ANALYSED, camera="stage")
    t_wall = time.time()
    os.kill(victim, signal.SIGKILL)
    back = rig.zmq.wait_for(status_of("replay", "online"), EVENT_S, "the replay camera online again",
                            since=mark)
    replacement = rig.daemon.child("source:replay")
    assert replacement is not None and replacement != victim
    rig.zmq.wait_for(recognized_on("replay", back.ts), FIRST_EVENT_S,
                     "a recognition on the restarted camera")
    # the other camera: same process, never offline, analysed throughout
    assert rig.daemon.child("source:stage") == bystander
    assert not rig.zmq.matching(status_of("stage", "offline", "reconnecting"), since=mark)
    assert rig.metric(ANALYSED, camera="stage") > stage_analysed
    rig.zmq.wait_for(recognized_on("stage", t_wall), FIRST_EVENT_S, "a recognition on stage")


def test_frozen_rtsp_server_is_reported_and_recovers_after_sigcont(rig: Rig) -> None:
    rig.require_running()
    rig.zmq.wait_for(status_of("stage", "online"), EVENT_S, "the stage camera online")
    mark = rig.zmq.mark()
    rig.stage.pause()  # SIGSTOP: the connection stays open, no data and no end of stream
    try:
        lost = rig.zmq.wait_for(status_of("stage", "reconnecting", "offline"),
                                NO_FRAME_TIMEOUT_S + EVENT_S, "the frozen camera reported",
                                since=mark)
        assert isinstance(lost, CameraStatus) and "no frames" in lost.reason, describe(lost)
        # the other camera does not care
        rig.zmq.wait_for(recognized_on("replay", lost.ts), FIRST_EVENT_S,
                         "a recognition on replay while stage is frozen")
    finally:
        rig.stage.resume()
    back = rig.zmq.wait_for(status_of("stage", "online"), EVENT_S, "the stage camera online again",
                            since=mark)
    rig.zmq.wait_for(recognized_on("stage", back.ts), FIRST_EVENT_S,
                     "a recognition on stage after SIGCONT")


def test_mqtt_outage_of_60_s_with_other_faults_every_event_arrives_in_order(rig: Rig) -> None:
    rig.require_running()
    rig.mqtt.wait_for(recognized_on("stage"), FIRST_EVENT_S, "a recognition delivered over MQTT")
    rig.wait(lambda: rig.metric(OUTBOX_PENDING) == 0, EVENT_S, "the outbox empty before the outage")
    before = len(rig.written())
    outage_started, outage_started_wall = time.monotonic(), time.time()
    rig.broker.stop()
    # events go on being produced and numbered (ZeroMQ and the file get them), and wait on
    # disk for the broker
    rig.wait(lambda: len(rig.written()) >= before + 5, EVENT_S, "events during the outage")
    rig.wait(lambda: rig.metric(OUTBOX_PENDING) >= 5, EVENT_S, "events waiting in the outbox")
    # faults rarely come alone: the inference process and a camera's process die meanwhile
    for role in ("inference", "source:replay"):
        victim = rig.daemon.child(role)
        assert victim is not None, role
        os.kill(victim, signal.SIGKILL)
        rig.wait(lambda role=role, victim=victim: rig.daemon.child(role) not in (None, victim),
                 EVENT_S, f"{role} restarted")
    mark = rig.zmq.mark()
    rig.zmq.wait_for(recognized_on("stage", time.time()), FIRST_EVENT_S,
                     "a recognition after the restarts", since=mark)
    remaining = outage_started + OUTAGE_S - time.monotonic()
    if remaining > 0:
        time.sleep(remaining)
    rig.require_running()
    back_wall, back = time.time(), time.monotonic()
    rig.broker.start()
    rig.wait(lambda: rig.metric(OUTBOX_PENDING) == 0, 120.0, "the outbox emptied by the broker")
    rig.measured["broker back to outbox empty"] = time.monotonic() - back
    written = rig.written()
    wanted = {e.event_id for e in written}
    wait_until(lambda: wanted <= {e.event_id for e in rig.mqtt.events}, 60.0,
               f"all {len(written)} events on the MQTT subscriber", rig.mqtt.summary)
    # faces were recognised while the broker was away, and those events came through too
    during = [e for e in written if isinstance(e, (FaceRecognized, FaceUnknown, TrackEnded))
              and e.published_ts is not None and outage_started_wall < e.published_ts < back_wall]
    assert any(isinstance(e, FaceRecognized) for e in during), "no recognition during the outage"
    received = unique(rig.mqtt.events)
    check_in_order_without_gaps(received, written)
    assert received[0].seq == 1


def test_sighup_with_a_broken_config_keeps_the_running_one(rig: Rig) -> None:
    rig.require_running()
    children = sorted(rig.daemon.children())
    mark, log_mark = rig.zmq.mark(), len(rig.daemon.log_text())
    rig.config.write_text(rig.config.read_text() + "cameras: [\n")  # a YAML error
    t_wall = time.time()
    rig.daemon.send(signal.SIGHUP)
    rig.wait(lambda: rig.metric("facewatch_config_reloads_total", result="error") >= 1, EVENT_S,
             "the reload refused")
    assert re.search(r"config not reloaded, the running one stays: .*config\.yaml:\d+",
                     rig.log_since(log_mark)), rig.log_since(log_mark)
    rig.write_config()  # put it right again for the next tests
    for camera in ("stage", "replay"):
        rig.zmq.wait_for(recognized_on(camera, t_wall), FIRST_EVENT_S,
                         f"a recognition on {camera} after the refused reload", since=mark)
    assert sorted(rig.daemon.children()) == children, "a process was restarted"


def test_sighup_with_a_busy_zeromq_address_keeps_the_running_config(rig: Rig) -> None:
    """A reload whose new ZeroMQ address is taken would restart the publisher for ever, and
    nothing would reach any output: the supervisor checks the bind first and refuses it."""
    import zmq

    rig.require_running()
    children = sorted(rig.daemon.children())
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    squatter = context.socket(zmq.PUB)
    busy = squatter.bind_to_random_port("tcp://127.0.0.1")
    try:
        refused = rig.metric("facewatch_config_reloads_total", result="error")
        mark, log_mark = rig.zmq.mark(), len(rig.daemon.log_text())
        outputs = {**rig.config_data["outputs"], "zmq": {"bind": f"tcp://127.0.0.1:{busy}"}}
        rig.write_config(outputs=outputs)
        t_wall = time.time()
        rig.daemon.send(signal.SIGHUP)
        rig.wait(lambda: rig.metric("facewatch_config_reloads_total", result="error") > refused,
                 EVENT_S, "the reload refused")
        assert re.search(rf"config not reloaded, the running one stays: .*outputs\.zmq\.bind: "
                         rf"tcp://127\.0\.0\.1:{busy}: cannot bind", rig.log_since(log_mark)), \
            rig.log_since(log_mark)
        rig.write_config()  # put it right again for the next tests
        # events still go out on the address the running publisher holds
        rig.zmq.wait_for(recognized_on("stage", t_wall), FIRST_EVENT_S,
                         "a recognition after the refused reload", since=mark)
        assert sorted(rig.daemon.children()) == children, "a process was restarted"
    finally:
        squatter.close(0)
        context.term()


def test_sighup_with_a_broken_gallery_keeps_the_running_one(rig: Rig) -> None:
    rig.require_running()
    good = rig.gallery.read_text()
    failed = rig.metric("facewatch_gallery_reloads_total", result="error")
    mark, log_mark = rig.zmq.mark(), len(rig.daemon.log_text())
    try:
        rig.gallery.write_text(good + "people: [\n")
        t_wall = time.time()
        rig.daemon.send(signal.SIGHUP)
        rig.wait(lambda: rig.metric("facewatch_gallery_reloads_total", result="error") > failed,
                 EVENT_S, "the broken gallery refused")
        assert "gallery.yaml" in rig.log_since(log_mark), rig.log_since(log_mark)
        # both people still named: the running gallery stayed
        for who in ("lin", "obama"):
            rig.zmq.wait_for(recognized_as(who, t_wall), FIRST_EVENT_S, f"{who} recognised",
                             since=mark)
    finally:
        rig.gallery.write_text(good)
    rig.require_running()


def _mount(*args: str) -> bool:
    return subprocess.run(["mount", *args], capture_output=True, check=False).returncode == 0


@pytest.fixture
def unwritable(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    """A snapshots folder where writing fails: read-only or full.  As root, permission bits
    do not stop writes, so a read-only or a 64 KiB tmpfs is mounted there (root can); as
    anyone else, chmod 0500 makes it read-only and a path under a regular file (ENOTDIR)
    stands in for a full disk."""
    kind = request.param
    folder = tmp_path / f"snapshots-{kind}"
    folder.mkdir()
    mounted = False
    try:
        if os.geteuid() == 0:
            options = "ro,size=64k" if kind == "read-only" else "size=64k"
            mounted = _mount("-t", "tmpfs", "-o", options, "tmpfs", str(folder))
            if not mounted:
                pytest.skip("running as root without the right to mount a tmpfs: cannot make "
                            "a folder root cannot write to")
            if kind == "full":
                fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
                try:
                    with pytest.raises(OSError, match="No space left"):
                        while True:
                            os.write(fd, b"\0" * 4096)
                finally:
                    os.close(fd)
        elif kind == "read-only":
            folder.chmod(0o500)
        else:
            (tmp_path / "a-file").write_text("")
            folder = tmp_path / "a-file" / "snapshots"
        yield folder
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(tmp_path / f"snapshots-{kind}")], check=False)
        elif kind == "read-only":
            folder.chmod(0o700)


@pytest.mark.parametrize("unwritable", ["read-only", "full"], indirect=True)
def test_unwritable_snapshot_folder_events_go_on_without_snapshots(rig: Rig,
                                                                 unwritable: Path) -> None:
    rig.require_running()
    log_mark = len(rig.daemon.log_text())
    reloads = rig.metric("facewatch_config_reloads_total", result="ok")
    rig.write_config(snapshots={"dir": str(unwritable)})
    # Published track ids count up from the inference process's start in wall-clock milliseconds: only
    # the new inference process's tracks tell (the old one ended its own, with snapshots, as it stopped).
    new_inference = time.time() * 1000
    rig.daemon.send(signal.SIGHUP)  # a new snapshots.dir restarts the inference process
    try:
        rig.wait(lambda: rig.metric("facewatch_config_reloads_total", result="ok") > reloads,
                 EVENT_S, "the new snapshots folder applied")
        mark = rig.zmq.mark()

        def face_event(e: Event) -> bool:
            return isinstance(e, (FaceRecognized, FaceUnknown, TrackEnded)) \
                and e.track_id > new_inference

        wait_until(lambda: len(rig.zmq.matching(face_event, since=mark)) >= 6
                   and bool(rig.zmq.matching(lambda e: isinstance(e, FaceRecognized), since=mark)),
                   FIRST_EVENT_S, "face events after the reload, a recognition among them",
                   rig.zmq.summary, rig.daemon.gone)
        events = rig.zmq.matching(face_event, since=mark)
        assert [describe(e) for e in events if getattr(e, "snapshot", None) is not None] == []
        # one warning per interval (60 s), however many snapshots failed meanwhile
        text = rig.log_since(log_mark)
        assert len(re.findall(r"snapshots: cannot write", text)) == 1, text
        assert str(unwritable) in text
    finally:
        reloads = rig.metric("facewatch_config_reloads_total", result="ok")
        rig.write_config()
        rig.daemon.send(signal.SIGHUP)
        # before the folder is unmounted: the inference process saves its last snapshots as it stops
        rig.wait(lambda: rig.metric("facewatch_config_reloads_total", result="ok") > reloads,
                 EVENT_S, "the default snapshots folder back")
    rig.require_running()


def _rings(prefix: str) -> set[str]:
    return {name for name in os.listdir(SHM_DIR) if name.startswith(prefix)}


def test_rings_of_a_killed_daemon_are_removed_at_its_next_start(rig: Rig, tmp_path: Path,
                                                                shared_dir: Path,
                                                                people: list[dict[str, Any]]) -> None:
    """kill -9 of the whole process group leaves the frame rings in /dev/shm (nobody is left
    to unlink them); the next start with the same state folder removes them, and leaves those
    of another running daemon (the rig) alone."""
    rig.require_running()
    ours = ring_prefix(rig.tmp / "state")
    others = _rings(ours)
    assert others, f"no rings of the rig under {ours} in {SHM_DIR}"
    write_yaml(tmp_path / "gallery.yaml", {"people": people[:1]})
    tree = str(shared_dir / "data" / "videos" / "opencv_tree_noface.avi")
    config = write_yaml(tmp_path / "config.yaml", {
        "cameras": [{"name": "tree", "url": tree, "fps": 5, "loop": True}],
        "gallery": "gallery.yaml", "state_dir": "state", "outputs": {"zmq": False,
                                                                      "jsonl": "events.jsonl"},
        "metrics": {"enabled": False}})
    prefix = ring_prefix(tmp_path / "state")
    jsonl = tmp_path / "events.jsonl"

    def online() -> bool:
        return any(isinstance(e, CameraStatus) and e.state == "online" for e in read_jsonl(jsonl))

    with DaemonProcess(config, rig.models_dir, tmp_path) as first:
        first.start()
        wait_until(online, FIRST_EVENT_S, "the first run's camera online", first.log_tail, first.gone)
        left = _rings(prefix)
        assert left
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(10)
    time.sleep(1.0)  # the children die with the group
    assert _rings(prefix) == left, "the rings went away by themselves: this test proves nothing"
    jsonl.unlink()
    with DaemonProcess(config, rig.models_dir, tmp_path) as second:
        second.start()
        wait_until(online, FIRST_EVENT_S, "the second run's camera online", second.log_tail,
                   second.gone)
        now = _rings(prefix)
        assert now and not now & left, (left, now)
        assert "removed 1 frame ring(s)" in second.log_text()
        assert others <= _rings(ours), "another daemon's rings were removed"
        second.terminate()
        assert second.wait(STOP_BUDGET_S) == 0, second.log_tail()
    assert not _rings(prefix), "a clean stop leaves no ring behind"


def test_outbox_survives_a_daemon_restart(rig: Rig) -> None:
    """Events the broker never acknowledged stay in the outbox when the daemon stops, and go
    out after the next start, before the new ones, with seq carrying on."""
    rig.require_running()
    rig.wait(lambda: rig.metric(OUTBOX_PENDING) == 0, EVENT_S, "the outbox empty")
    rig.broker.stop()
    rig.wait(lambda: rig.metric(OUTBOX_PENDING) >= 3, EVENT_S, "events waiting for the broker")
    rig.daemon.terminate()
    assert rig.daemon.wait(STOP_BUDGET_S) == 0, rig.daemon.log_tail()
    written_first = rig.written()
    with sqlite3.connect(rig.tmp / "state" / "outbox.sqlite") as db:
        kept = [row[0] for row in db.execute("SELECT seq FROM events ORDER BY seq")]
    assert len(kept) >= 3 and kept == [e.seq for e in written_first[-len(kept):]]
    rig.broker.start()
    rig.daemon = DaemonProcess(rig.config, rig.models_dir, rig.tmp)
    rig.zmq.follow(rig.daemon)
    rig.mqtt.follow(rig.daemon)
    rig.daemon.start()
    rig.wait(lambda: len(rig.written()) > len(written_first) + 3, FIRST_EVENT_S,
             "events of the second run")
    rig.wait(lambda: rig.metric(OUTBOX_PENDING) == 0, EVENT_S, "the outbox emptied")
    written = rig.written()
    wanted = {e.event_id for e in written}
    wait_until(lambda: wanted <= {e.event_id for e in rig.mqtt.events}, EVENT_S,
               f"all {len(written)} events on the MQTT subscriber", rig.mqtt.summary)
    # one numbering over both runs, and MQTT got all of it, in that order
    assert [e.seq for e in written] == list(range(1, len(written) + 1))
    check_in_order_without_gaps(unique(rig.mqtt.events), written)
    # the second daemon stays: it is the rig's from now on, recognising like the first
    mark = rig.zmq.mark()
    rig.zmq.wait_for(recognized_on("stage"), FIRST_EVENT_S, "a recognition", since=mark)


# -- daemons of their own --------------------------------------------------------------------------


def test_a_lossless_file_loses_no_frame_when_inference_is_killed(
        tmp_path: Path, models_dir: Path, clip: Path, people: list[dict[str, Any]]) -> None:
    """`realtime: false` promises every frame analysed.  The inference process is killed in the middle of
    the file; the new one carries on from the first frame the dead one had not finished."""
    write_yaml(tmp_path / "gallery.yaml", {"people": people})
    metrics_port = free_port()
    config = write_yaml(tmp_path / "config.yaml", {
        "cameras": [{"name": "file", "url": str(clip), "fps": None, "realtime": False}],
        "gallery": "gallery.yaml", "state_dir": "state",
        "outputs": {"zmq": False, "jsonl": "events.jsonl"},
        "metrics": {"enabled": True, "port": metrics_port}})

    def analysed() -> float:
        return metric_sum(metrics_port, ANALYSED, camera="file")

    def ended() -> bool:
        return any(isinstance(e, CameraStatus) and e.state == "offline"
                   for e in read_jsonl(tmp_path / "events.jsonl"))

    with DaemonProcess(config, models_dir, tmp_path) as daemon:
        daemon.start()
        wait_until(lambda: metrics_up(metrics_port), EVENT_S, "the metrics endpoint",
                   daemon.log_tail, daemon.gone)
        wait_until(lambda: analysed() >= 30, FIRST_EVENT_S, "30 frames analysed", daemon.log_tail,
                   daemon.gone)
        inference = daemon.child("inference")
        assert inference is not None
        os.kill(inference, signal.SIGKILL)
        at_kill = analysed()
        wait_until(ended, FIRST_EVENT_S, "the end of the file", daemon.log_tail, daemon.gone)
        decoded = metric_sum(metrics_port, "facewatch_frames_decoded_total", camera="file")
        assert at_kill < decoded, "the file was over before the kill: this test proves nothing"
        wait_until(lambda: analysed() >= decoded, EVENT_S, f"all {decoded:.0f} frames analysed",
                   daemon.log_tail, daemon.gone)
        # every frame once, but for the one the inference process may have finished analysing but not
        # yet reported when it died (then the new inference process analyses it again)
        assert decoded <= analysed() <= decoded + 1
        assert metric_sum(metrics_port, "facewatch_frames_dropped_total", camera="file") == 0
        assert "resuming at frame" in daemon.log_text()
        daemon.terminate()
        assert daemon.wait(STOP_BUDGET_S) == 0, daemon.log_tail()


def test_zeromq_address_in_use_is_a_config_error(tmp_path: Path, models_dir: Path,
                                                  shared_dir: Path,
                                                  people: list[dict[str, Any]]) -> None:
    write_yaml(tmp_path / "gallery.yaml", {"people": people[:1]})
    tree = str(shared_dir / "data" / "videos" / "opencv_tree_noface.avi")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write_yaml(tmp_path / "config.yaml", {
            "cameras": [{"name": "tree", "url": tree}], "gallery": "gallery.yaml",
            "state_dir": "state", "outputs": {"zmq": {"bind": f"tcp://127.0.0.1:{port}"}}})
        result = run_once(config, models_dir)
    assert result.returncode == 3, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and re.search(
        rf"config\.yaml:\d+: outputs\.zmq\.bind: tcp://127\.0\.0\.1:{port}: cannot bind "
        r"\(Address already in use\)", lines[0]), result.stderr


def test_a_publisher_that_cannot_start_stops_the_daemon_with_code_3(
        tmp_path: Path, models_dir: Path, shared_dir: Path,
        people: list[dict[str, Any]]) -> None:
    """Not the preflight's: a state folder whose outbox cannot be opened is found by the
    publisher process; the supervisor stops instead of restarting it for ever."""
    write_yaml(tmp_path / "gallery.yaml", {"people": people[:1]})
    tree = str(shared_dir / "data" / "videos" / "opencv_tree_noface.avi")
    (tmp_path / "state" / "outbox.sqlite").mkdir(parents=True)  # a folder where the file goes
    config = write_yaml(tmp_path / "config.yaml", {
        "cameras": [{"name": "tree", "url": tree, "loop": True}], "gallery": "gallery.yaml",
        "state_dir": "state", "outputs": {"zmq": False, "jsonl": "events.jsonl"},
        "metrics": {"enabled": False}})
    result = run_once(config, models_dir, timeout_s=120.0)
    assert result.returncode == 3, result.stderr
    assert re.search(r"outbox\.sqlite: cannot open the outbox", result.stderr), result.stderr
    assert result.stderr.count("publisher cannot start with this config") == 1, result.stderr
    assert "restarting" not in result.stderr, result.stderr
