"""Camera streams on real files and a real RTSP server subprocess on 127.0.0.1; no mocks."""

from __future__ import annotations

import itertools
import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from facewatch.errors import ConfigError
from facewatch.streams.auto import choose_backend
from facewatch.streams.decimation import Decimator
from facewatch.streams.reader import (
    CameraFrame,
    CameraReader,
    StreamState,
    StreamStatus,
)
from facewatch.streams.settings import StreamSettings
from facewatch.streams.urls import (
    SourceKind,
    classify_url,
    redact_url,
    validate_url,
    without_credentials,
)
from tests.support.rtsp_process import RtspServerProcess

SHARED = Path(os.environ.get("FACEWATCH_SHARED") or Path(__file__).resolve().parents[2].parent / "shared")
VIDEOS = SHARED / "data" / "videos"
BACKENDS = ["gstreamer", "opencv"]

Record = CameraFrame | StreamStatus


def video(name: str) -> Path:
    path = VIDEOS / name
    if not path.is_file():
        pytest.skip(f"shared test data absent: {path} (set FACEWATCH_SHARED to the shared/ folder)")
    return path


def read_all(settings: StreamSettings, max_frames: int | None = None) -> tuple[list[CameraFrame], list[StreamStatus]]:
    records = list(CameraReader("cam", settings, max_frames=max_frames))
    frames = [r for r in records if isinstance(r, CameraFrame)]
    statuses = [r for r in records if isinstance(r, StreamStatus)]
    return frames, statuses


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Collector:
    """Runs a CameraReader in a thread; the test waits for the records it expects."""

    def __init__(self, reader: CameraReader) -> None:
        self.reader = reader
        self.seen: list[Record] = []
        self._queue: queue.Queue[Record] = queue.Queue()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        for record in self.reader:
            self._queue.put(record)

    def wait_for(self, predicate: Callable[[Record], bool], timeout_s: float, what: str) -> Record:
        deadline = time.monotonic() + timeout_s
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                record = self._queue.get(timeout=remaining)
            except queue.Empty:
                break
            self.seen.append(record)
            if predicate(record):
                return record
        statuses = [f"{s.state.value}:{s.reason}" for s in self.seen if isinstance(s, StreamStatus)]
        frames = sum(isinstance(r, CameraFrame) for r in self.seen)
        raise AssertionError(f"no {what} within {timeout_s} s; saw {frames} frames and statuses {statuses}")

    def wait_frames(self, count: int, timeout_s: float) -> list[CameraFrame]:
        got: list[CameraFrame] = []
        while len(got) < count:
            frame = self.wait_for(lambda r: isinstance(r, CameraFrame), timeout_s, f"frame {len(got) + 1}/{count}")
            assert isinstance(frame, CameraFrame)
            got.append(frame)
        return got

    def close(self) -> None:
        self.reader.stop()
        self._thread.join(10)
        assert not self._thread.is_alive(), "the reader did not stop within 10 s"


def is_status(state: StreamState, cause: str | None = None) -> Callable[[Record], bool]:
    return lambda r: isinstance(r, StreamStatus) and r.state is state and (cause is None or r.cause == cause)


@pytest.fixture
def collect() -> Iterator[Callable[[CameraReader], Collector]]:
    collectors: list[Collector] = []

    def start(reader: CameraReader) -> Collector:
        collectors.append(Collector(reader))
        return collectors[-1]

    yield start
    for collector in collectors:
        collector.close()


@pytest.fixture
def rtsp_server(tmp_path: Path) -> Iterator[RtspServerProcess]:
    with RtspServerProcess(video("short_hamilton_clip.mp4"), tmp_path) as server:
        server.start()
        yield server


def rtsp_settings(url: str, **overrides: object) -> StreamSettings:
    values: dict[str, object] = {
        "decoder": "gstreamer", "no_frame_timeout_s": 3.0, "reconnect_initial_s": 0.2, "reconnect_max_s": 1.0}
    values.update(overrides)
    return StreamSettings(url, **values)  # type: ignore[arg-type]


# -- URLs and settings ----------------------------------------------------------------------


@pytest.mark.parametrize(("url", "kind"), [
    ("rtsp://cam.local:554/stream1", SourceKind.RTSP),
    ("rtsps://user:pw@cam/stream", SourceKind.RTSP),
    ("http://cam/video.mjpg", SourceKind.HTTP),
    ("https://cam:8443/live", SourceKind.HTTP),
    ("file:///srv/clips/door.mp4", SourceKind.FILE),
    ("/srv/clips/door.mp4", SourceKind.FILE),
    ("clips/door.mp4", SourceKind.FILE),
    ("/dev/video0", SourceKind.DEVICE),
    ("/dev/v4l/by-id/usb-Logitech_C920-video-index0", SourceKind.DEVICE),
])
def test_classify_url(url: str, kind: SourceKind) -> None:
    assert classify_url(url) is kind
    assert validate_url(url) == url


@pytest.mark.parametrize(("url", "message"), [
    ("", "empty"),
    ("rtmp://cam/live", "unsupported scheme 'rtmp'"),
    ("rtsp:///stream", "no host"),
    ("rtsp://cam:99999/stream", "malformed"),
    ("rtsp://cam/my stream", "whitespace"),
    ("file://nas/clips/a.mp4", "must be local"),
    ("/dev/sda", "only V4L2 devices"),
])
def test_invalid_urls_are_one_line_config_errors(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as error:
        validate_url(url)
    assert "\n" not in str(error.value)


def test_invalid_url_error_never_shows_the_password() -> None:
    with pytest.raises(ConfigError) as error:
        validate_url("rtmp://admin:hunter2@cam/live")
    assert "hunter2" not in str(error.value)
    assert "admin:***@cam" in str(error.value)


@pytest.mark.parametrize(("url", "shown"), [
    ("rtsp://admin:hunter2@10.0.0.5:554/Streaming/101", "rtsp://admin:***@10.0.0.5:554/Streaming/101"),
    ("rtsp://admin:p@ss:w0rd@cam/stream", "rtsp://admin:***@cam/stream"),
    ("http://cam/video.cgi?user=admin&pwd=hunter2&res=hd", "http://cam/video.cgi?user=admin&pwd=***&res=hd"),
    # a user part without a password may be the secret itself (an access token): hidden
    ("rtsp://viewer@cam/stream", "rtsp://***@cam/stream"),
    ("rtsp://9f8e7d6c5b4a3f2e1d0c@relay.example.net/cam1", "rtsp://***@relay.example.net/cam1"),
    ("rtsp://to@ken@cam/s", "rtsp://***@cam/s"),
    ("rtsp://cam/live/a@b", "rtsp://cam/live/a@b"),  # an @ in the path is not user info
    ("http://cam?notify=admin@example.org", "http://cam?notify=admin@example.org"),
    # parameters separated by ; (Dahua-style paths and queries) and in the path itself
    ("rtsp://cam:554/user=admin;password=hunter2;channel=1;stream=0.sdp",
     "rtsp://cam:554/user=admin;password=***;channel=1;stream=0.sdp"),
    ("rtsp://cam/cam/realmonitor?channel=1;subtype=0;password=hunter2",
     "rtsp://cam/cam/realmonitor?channel=1;subtype=0;password=***"),
    ("rtsp://cam/user=admin&password=hunter2&channel=1", "rtsp://cam/user=admin&password=***&channel=1"),
    ("rtsp://cam/stream", "rtsp://cam/stream"),
    ("/srv/clips/door.mp4", "/srv/clips/door.mp4"),
    ("not a url at all", "not a url at all"),
])
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_credentials_are_split_off_and_decoded() -> None:
    bare, user, password = without_credentials("rtsp://admin:p%40ss@cam:554/s?x=1")
    assert (bare, user, password) == ("rtsp://cam:554/s?x=1", "admin", "p@ss")


@pytest.mark.parametrize(("overrides", "message"), [
    ({"url": "rtsp://cam/s", "loop": True}, "loop applies to files only"),
    ({"url": "a.mp4", "fps": 0}, "fps must be > 0"),
    ({"url": "a.mp4", "reconnect_initial_s": 5.0, "reconnect_max_s": 1.0}, "reconnect_initial_s <= reconnect_max_s"),
    ({"url": "a.mp4", "no_frame_timeout_s": 0}, "no_frame_timeout_s must be > 0"),
    ({"url": "a.mp4", "rtsp_transport": "quic"}, "rtsp_transport must be"),
    ({"url": "a.mp4", "max_size": (8, 8)}, "max_size"),
])
def test_settings_are_checked(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        StreamSettings(**overrides)  # type: ignore[arg-type]


def test_backend_choice() -> None:
    assert choose_backend(StreamSettings("a.mp4", decoder="opencv")) == "opencv"
    assert choose_backend(StreamSettings("a.mp4")) in ("gstreamer", "opencv")


def test_decimator_takes_every_third_frame_of_29_97_fps_at_10_fps() -> None:
    decimator = Decimator(10)
    taken = [i for i in range(275) if decimator.take(i * 1001 / 30000)]
    assert len(taken) == 92
    assert taken[:4] == [0, 3, 6, 9]
    assert decimator.take(0.0)  # timestamps going backwards restart the schedule


# -- files ---------------------------------------------------------------------------------


@pytest.mark.parametrize("decoder", BACKENDS)
def test_file_decodes_every_frame_then_goes_offline_at_eof(decoder: str) -> None:
    clip = video("short_hamilton_clip.mp4")
    frames, statuses = read_all(StreamSettings(str(clip), realtime=False, decoder=decoder))  # type: ignore[arg-type]
    assert len(frames) == 275
    assert [f.seq for f in frames] == list(range(275))
    assert all(f.image.shape == (360, 640, 3) and f.image.dtype == np.uint8 for f in frames)
    stream_ts = [f.stream_ts for f in frames]
    assert stream_ts == sorted(stream_ts) and stream_ts[-1] == pytest.approx(274 * 1001 / 30000, abs=0.01)
    assert [(s.state, s.cause, s.reason) for s in statuses] == [
        (StreamState.ONLINE, "connected", "online"), (StreamState.OFFLINE, "eof", "eof")]


@pytest.mark.parametrize("decoder", BACKENDS)
def test_file_decimated_to_10_fps(decoder: str) -> None:
    clip = video("short_hamilton_clip.mp4")
    frames, _ = read_all(StreamSettings(str(clip), realtime=False, fps=10, decoder=decoder))  # type: ignore[arg-type]
    assert 91 <= len(frames) <= 93
    gaps = np.diff([f.stream_ts for f in frames])
    assert gaps.min() > 0.09 and gaps.max() < 0.11


def test_both_backends_deliver_the_same_rgb_frame() -> None:
    clip = str(video("short_hamilton_clip.mp4"))
    gst, _ = read_all(StreamSettings(clip, realtime=False, decoder="gstreamer"), max_frames=100)
    cv, _ = read_all(StreamSettings(clip, realtime=False, decoder="opencv"), max_frames=100)
    a, b = gst[-1].image.astype(np.int16), cv[-1].image.astype(np.int16)
    # Same frame up to colour-conversion rounding; BGR would be ~12 grey levels off.
    assert np.abs(a - b).mean() < 4
    assert np.abs(a - b[..., ::-1]).mean() > 8
    assert not gst[-1].image.flags.writeable and not cv[-1].image.flags.writeable


@pytest.mark.parametrize("decoder", BACKENDS)
def test_looping_file_keeps_going_with_rising_timestamps(decoder: str) -> None:
    clip = video("opencv_tree_noface.avi")  # 68 frames
    settings = StreamSettings(str(clip), realtime=False, loop=True, decoder=decoder)  # type: ignore[arg-type]
    frames, statuses = read_all(settings, max_frames=150)
    assert len(frames) == 150
    assert all(b.stream_ts > a.stream_ts for a, b in itertools.pairwise(frames))
    # Every pass has all 68 frames and starts again at the first.
    assert np.array_equal(frames[68].image, frames[0].image)
    assert np.array_equal(frames[136].image, frames[0].image)
    assert not np.array_equal(frames[67].image, frames[0].image)
    assert [(s.state, s.cause) for s in statuses] == [
        (StreamState.ONLINE, "connected"), (StreamState.OFFLINE, "stopped")]


@pytest.mark.parametrize("decoder", BACKENDS)
def test_realtime_file_plays_at_native_rate(decoder: str) -> None:
    clip = video("short_hamilton_clip.mp4")
    started = time.monotonic()
    frames, _ = read_all(StreamSettings(str(clip), realtime=True, decoder=decoder), max_frames=60)  # type: ignore[arg-type]
    elapsed = time.monotonic() - started
    assert len(frames) == 60
    assert elapsed >= 1.5, f"60 frames at 29.97 fps took only {elapsed:.2f} s"


def test_max_size_downscales_keeping_aspect() -> None:
    clip = video("short_hamilton_clip.mp4")
    frames, _ = read_all(StreamSettings(str(clip), realtime=False, max_size=(320, 320)), max_frames=3)
    assert frames[0].image.shape == (180, 320, 3)


def test_missing_file_goes_offline_without_retrying(tmp_path: Path) -> None:
    frames, statuses = read_all(StreamSettings(str(tmp_path / "absent.mp4"), realtime=False))
    assert frames == []
    assert [(s.state, s.cause) for s in statuses] == [(StreamState.OFFLINE, "unreachable")]
    assert "absent.mp4" in statuses[0].reason


# -- RTSP ----------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_rtsp_frames_arrive(rtsp_server: RtspServerProcess, collect: Callable[[CameraReader], Collector],
                            transport: str) -> None:
    reader = collect(CameraReader("door", rtsp_settings(rtsp_server.url, rtsp_transport=transport)))
    reader.wait_for(is_status(StreamState.ONLINE), 10, "online status")
    frames = reader.wait_frames(15, 5)
    assert all(f.image.shape == (360, 640, 3) for f in frames)
    assert all(abs(f.capture_ts - time.time()) < 10 for f in frames)


def test_rtsp_with_opencv_backend(rtsp_server: RtspServerProcess,
                                  collect: Callable[[CameraReader], Collector]) -> None:
    reader = collect(CameraReader("door", rtsp_settings(rtsp_server.url, decoder="opencv")))
    reader.wait_for(is_status(StreamState.ONLINE), 15, "online status")
    assert reader.wait_frames(10, 5)[0].image.shape == (360, 640, 3)


def test_rtsp_server_killed_then_restarted(rtsp_server: RtspServerProcess,
                                           collect: Callable[[CameraReader], Collector]) -> None:
    reader = collect(CameraReader("door", rtsp_settings(rtsp_server.url, fps=10)))
    reader.wait_for(is_status(StreamState.ONLINE), 10, "online status")
    before = reader.wait_frames(5, 5)[-1].seq

    rtsp_server.kill()
    lost = reader.wait_for(is_status(StreamState.RECONNECTING), 6, "reconnecting status after kill -9")
    assert isinstance(lost, StreamStatus) and lost.cause in ("lost", "eof", "stalled")
    # While the server is down the reader keeps trying, backing off.
    retry = reader.wait_for(is_status(StreamState.RECONNECTING, "unreachable"), 5, "failed reconnection")
    assert isinstance(retry, StreamStatus) and retry.reason.startswith("unreachable:")

    rtsp_server.start()
    reader.wait_for(is_status(StreamState.ONLINE), 10, "online status after restart")
    after = reader.wait_frames(5, 5)
    assert after[0].seq > before


def test_rtsp_stopped_server_trips_the_watchdog(rtsp_server: RtspServerProcess,
                                                collect: Callable[[CameraReader], Collector]) -> None:
    reader = collect(CameraReader("door", rtsp_settings(rtsp_server.url, no_frame_timeout_s=2.0)))
    reader.wait_for(is_status(StreamState.ONLINE), 10, "online status")
    reader.wait_frames(5, 5)

    rtsp_server.pause()
    stopped_at = time.monotonic()
    stalled = reader.wait_for(is_status(StreamState.RECONNECTING), 6, "watchdog status after SIGSTOP")
    waited = time.monotonic() - stopped_at
    assert isinstance(stalled, StreamStatus)
    assert (stalled.cause, stalled.reason) == ("stalled", "no frames for 2 s")
    assert 1.5 <= waited <= 4.5, f"watchdog fired after {waited:.1f} s"
    # A reconnection to the stopped server connects (the kernel still accepts) but gets no
    # answer: the watchdog must catch that too, and closing must not hang.
    reader.wait_for(is_status(StreamState.RECONNECTING, "stalled"), 6, "second watchdog status")

    rtsp_server.resume()
    reader.wait_for(is_status(StreamState.ONLINE), 10, "online status after SIGCONT")
    reader.wait_frames(5, 5)


def test_unreachable_at_start_reports_and_backs_off(collect: Callable[[CameraReader], Collector]) -> None:
    url = f"rtsp://admin:hunter2@127.0.0.1:{free_port()}/door"
    settings = rtsp_settings(url, reconnect_initial_s=0.1, reconnect_max_s=0.4)
    reader = collect(CameraReader("door", settings))
    statuses = [reader.wait_for(is_status(StreamState.RECONNECTING), 5, f"failure {i + 1}") for i in range(4)]
    assert all(isinstance(s, StreamStatus) for s in statuses)
    reports = [s for s in statuses if isinstance(s, StreamStatus)]
    assert [s.cause for s in reports] == ["unreachable"] * 4
    assert [s.attempt for s in reports] == [1, 2, 3, 4]
    assert [s.retry_in_s for s in reports] == [0.1, 0.2, 0.4, 0.4]
    assert all(s.reason.startswith("unreachable: ") and "hunter2" not in s.reason for s in reports)
    assert reports[3].at - reports[0].at >= 0.1 + 0.2 + 0.4 - 0.05


def test_a_camera_that_stays_away_is_one_warning_in_the_log(caplog: pytest.LogCaptureFixture) -> None:
    """The journal says when a camera goes away and comes back, not once per retry."""
    import logging

    from facewatch.streams.process import _log_status
    from facewatch.streams.reader import StreamState, StreamStatus

    def status(state: StreamState, cause: str, reason: str) -> StreamStatus:
        return StreamStatus("door", state, cause, reason, 0.0,  # type: ignore[arg-type]
                            retry_in_s=1.0 if state is StreamState.RECONNECTING else None)

    url = "rtsp://user:***@127.0.0.1:1/x"
    last = None
    with caplog.at_level(logging.DEBUG, logger="facewatch.streams.process"):
        for record in [status(StreamState.RECONNECTING, "unreachable", "unreachable: refused")] * 3 + [
                status(StreamState.ONLINE, "connected", "online"),
                status(StreamState.RECONNECTING, "stalled", "no frames for 10 s")]:
            last = _log_status(record, url, last)
    seen = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert [level for level, _ in seen] == ["WARNING", "DEBUG", "DEBUG", "INFO", "WARNING"]
    assert seen[0][1] == f"camera door ({url}) is reconnecting: unreachable: refused; retrying in 1 s"
    assert seen[3][1] == f"camera door ({url}) is online: online"
