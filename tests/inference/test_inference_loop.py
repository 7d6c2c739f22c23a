"""The inference process's loop, driven in this process on real frames of the Hamilton clip:
real models, a real frame ring and the real channels, without the supervisor."""

from __future__ import annotations

import queue
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from facewatch.config import load_resolved
from facewatch.events import Event, FaceRecognized, FaceUnknown, TrackEnded, TrackStarted
from facewatch.frames.ring import FrameRing
from facewatch.inference.process import InferenceLoop
from facewatch.library.records import Named, TrackRecordCodec
from facewatch.metrics import Metrics
from facewatch.processes.channels import (
    Channel,
    ControlCodec,
    ControlCommand,
    EventCodec,
    FrameRefCodec,
    InferenceChannels,
)

# The daemon's own tests name Barack Obama's small three-quarter face at this threshold
# (see tests/daemon/test_daemon_e2e.py).
THRESHOLD = 0.25


def clip_frames(path: Path, every: int = 3) -> Iterator[np.ndarray]:
    """RGB frames of a video, every `every`th (about 10 fps from 29.97)."""
    capture = cv2.VideoCapture(str(path))
    index = 0
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                return
            if index % every == 0:
                yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            index += 1
    finally:
        capture.release()


@pytest.fixture
def loop_parts(tmp_path: Path, models_dir: Path, examples: Path
               ) -> Iterator[tuple[InferenceLoop, FrameRing, InferenceChannels]]:
    (tmp_path / "gallery.yaml").write_text(yaml.safe_dump({"threshold": THRESHOLD, "people": [
        {"id": "lin", "name": "Lin-Manuel Miranda",
         "images": [str(examples / "lin-manuel-miranda.png")]},
        {"id": "obama", "name": "Barack Obama", "images": [str(examples / "obama.jpg")]}]}))
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({
        "cameras": [{"name": "stage", "url": str(tmp_path / "stage.mp4")}],
        "gallery": "gallery.yaml", "state_dir": "state",
        "inference": {"models_dir": str(models_dir)}}))
    config = load_resolved(tmp_path / "config.yaml")
    ring = FrameRing.create("stage", slots=6, max_width=640, max_height=360)
    channels = InferenceChannels({"stage": ring.name}, Channel("frames", FrameRefCodec()),
                                 Channel("events", EventCodec(), 4 << 20),
                                 Channel("control", ControlCodec()), {},
                                 Channel("library", TrackRecordCodec(), 8 << 20))
    loop = InferenceLoop(config, channels, Metrics())
    yield loop, ring, channels
    for channel in (channels.frames, channels.events, channels.control, channels.library):
        channel.close()
    ring.close()


def drain(channel: Channel[Event]) -> list[Event]:
    out = []
    while True:
        try:
            out.append(channel.get_nowait())
        except queue.Empty:
            return out


def test_a_clip_becomes_tracks_and_names_frame_by_frame(
        loop_parts: tuple[InferenceLoop, FrameRing, InferenceChannels], shared_dir: Path) -> None:
    loop, ring, channels = loop_parts
    clip = shared_dir / "data" / "videos" / "short_hamilton_clip.mp4"
    events: list[Event] = []
    for i, frame in enumerate(clip_frames(clip)):
        channels.frames.put(ring.write(frame, capture_ts=1000.0 + i / 10))
        assert loop.step(timeout=1.0) == 1
        events += drain(channels.events)
    loop.finish()
    events += drain(channels.events)
    names = {e.identity for e in events if isinstance(e, FaceRecognized)}
    assert names == {"lin", "obama"}, names
    assert any(isinstance(e, FaceUnknown) for e in events)  # Michelle Obama, the audience
    started = {e.track_id for e in events if isinstance(e, TrackStarted)}
    ended = {e.track_id for e in events if isinstance(e, TrackEnded)}
    assert started and started == ended  # finish() ends every track it started
    assert all(e.camera == "stage" for e in events)
    # the face library gets a record of every decided segment, named as the events said
    records = []
    while True:
        try:
            records.append(channels.library.get_nowait())
        except queue.Empty:
            break
    decided = {e.track_id for e in events if isinstance(e, (FaceRecognized, FaceUnknown))}
    assert {r.track_id for r in records} == decided
    for record in records:
        record.validate()
        assert 1 <= record.embeddings.shape[0] <= loop.config.library.embeddings_per_track
        assert list(record.qualities) == sorted(record.qualities, reverse=True)
        assert isinstance(record.snapshot, bytes)
    named_ids = {r.verdict.person_id for r in records if isinstance(r.verdict, Named)}
    assert named_ids == {"lin", "obama"}


def test_a_frame_overwritten_in_the_ring_is_dropped_not_misread(
        loop_parts: tuple[InferenceLoop, FrameRing, InferenceChannels], shared_dir: Path) -> None:
    loop, ring, channels = loop_parts
    frame = next(clip_frames(shared_dir / "data" / "videos" / "short_hamilton_clip.mp4"))
    stale = ring.write(frame, capture_ts=1.0)
    for i in range(ring.slots):  # the slot is reused before the reference is read
        ring.write(frame, capture_ts=2.0 + i)
    channels.frames.put(stale)
    assert loop.step(timeout=1.0) == 0


def test_the_supervisor_asks_for_a_gallery_reload(
        loop_parts: tuple[InferenceLoop, FrameRing, InferenceChannels]) -> None:
    loop, _ring, channels = loop_parts
    before = loop.watcher._last_poll
    channels.control.put(ControlCommand.RELOAD_GALLERY)
    loop.step(timeout=0.05)
    assert loop.watcher._last_poll > before


def test_a_restart_while_the_gallery_file_is_broken_keeps_the_last_good_gallery(
        loop_parts: tuple[InferenceLoop, FrameRing, InferenceChannels], tmp_path: Path) -> None:
    """A restarted inference process (a crash, a reload that changed its settings) must not
    crash for ever on a gallery file broken meanwhile, nor forget everyone."""
    loop, _ring, channels = loop_parts
    assert {p.id for p in loop.gallery.people} == {"lin", "obama"}
    gallery = tmp_path / "gallery.yaml"
    gallery.write_text(gallery.read_text() + "people: [\n")  # a bad edit
    again = InferenceLoop(loop.config, channels, Metrics())
    assert {p.id for p in again.gallery.people} == {"lin", "obama"}
    assert again.gallery.report.enrolled == 2
