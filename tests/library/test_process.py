"""`run_library` as the daemon runs it: a spawned child on the process base, records sent over
the daemon's own channel with their codec, a clean stop that stores what was queued and saves
the index."""

from __future__ import annotations

import time
from pathlib import Path

from facewatch.config import parse_config, resolve
from facewatch.library.index import index_path
from facewatch.library.records import TrackRecord, TrackRecordCodec
from facewatch.library.sqlite_store import SqliteLibrary
from facewatch.library.store import FaceQuery
from facewatch.library.writer import CHANNEL_BYTES, KIND, run_library
from facewatch.processes.channels import Channel, LogRecordCodec
from facewatch.processes.child import Child, make_context
from tests.library.conftest import PEOPLE, FaceSample, named, record


def test_the_library_process_stores_groups_and_stops_cleanly(
        tmp_path: Path, lfw_faces: dict[str, list[FaceSample]], embedder_sha: str,
        models_dir: Path) -> None:
    config = resolve(parse_config(f"""
cameras: [{{name: door, url: clip.mp4}}]
gallery: people.yaml
state_dir: {tmp_path / 'state'}
inference: {{models_dir: {models_dir}}}
library: {{embeddings_per_track: 3, max_faces: 20}}
""", tmp_path / "config.yaml"))
    channel: Channel[TrackRecord] = Channel("library", TrackRecordCodec(), CHANNEL_BYTES)
    logs = Channel("logs", LogRecordCodec(), 1 << 20)
    child = Child("library", KIND, run_library, (config, channel), make_context("library", logs, 20))
    child.start()
    try:
        assert child.ctx.ready_event.wait(60), "the library process never became ready"
        channel._writer.send(b"FWTR garbage")  # undecodable: dropped, and the process goes on
        for p, person in enumerate(PEOPLE[:4]):
            for t, sample in enumerate(lfw_faces[person]):
                channel.put(record([sample], p * 10 + t, embedder_sha,
                                   verdict=named(person) if p == 0 else None), timeout=30)
        channel.put(record(lfw_faces[PEOPLE[4]][:5], 99, embedder_sha), timeout=30)  # K 5 > 3
        store = SqliteLibrary(tmp_path / "state" / "library")
        deadline = time.monotonic() + 60
        while store.count() < 20 and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        child.stop(timeout=20)
        channel.close()
        logs.close()
    # retention kept the newest 20 of 24 (max_faces), oldest first
    faces = store.faces(FaceQuery(limit=100))
    assert len(faces) == 20 and min(f.track_id for f in faces) == 4
    assert store.find("door", 99) is None
    unknown = [f for f in faces if f.person_id is None]
    assert len(unknown) == 18 and all(f.cluster_id is not None for f in unknown)
    assert all(f.cluster_id is None for f in faces if f.person_id is not None)
    assert index_path(tmp_path / "state" / "library" / "index", embedder_sha).is_file()
    store.close()
