"""Snapshot retention deletes only what facewatch wrote (issue 8): it deleted the oldest
`*/*.jpg` anywhere under `snapshots.dir`, and a dir pointed at a photo folder lost holiday
photos."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from facewatch.events.snapshots import MARKER, SnapshotStore, is_snapshot
from facewatch.images import load_image


def _face(examples: Path) -> np.ndarray:
    return load_image(examples / "obama.jpg")[80:420, 370:620]


def test_holiday_photos_in_the_same_folder_survive(tmp_path: Path, examples: Path) -> None:
    holiday = [tmp_path / "2019-italy" / "beach.jpg", tmp_path / "2019-italy" / "1.jpg",
               tmp_path / "door" / "2.jpg", tmp_path / "door" / "IMG_0001.jpg"]
    for n, photo in enumerate(holiday):  # real photos, older than any snapshot
        photo.parent.mkdir(exist_ok=True)
        shutil.copyfile(examples / "biden.jpg", photo)
        os.utime(photo, (1_500_000_000 + n, 1_500_000_000 + n))
    before = {p: p.read_bytes() for p in holiday}
    store = SnapshotStore(tmp_path, max_files=3)
    written = []
    for track in range(1, 8):
        path = store.save("door" if track % 2 else "garden", str(1_700_000_000_000 + track),
                          _face(examples))
        assert path is not None
        written.append(Path(path))
        os.utime(path, (1_600_000_000 + track, 1_600_000_000 + track))
    assert store.prune() == 4
    assert {p: p.read_bytes() for p in holiday} == before  # every photo, untouched
    assert sorted(p for p in tmp_path.glob("*/*.jpg") if p not in holiday) == sorted(written[-3:])
    assert store.prune() == 0


def test_snapshots_are_plain_jpegs_carrying_the_mark(tmp_path: Path, examples: Path) -> None:
    face = _face(examples)
    path = SnapshotStore(tmp_path).save("door", "7", face)
    assert path is not None and is_snapshot(Path(path))
    with Image.open(path) as img:
        assert img.format == "JPEG" and img.info["comment"] == MARKER
        assert img.size == (face.shape[1], face.shape[0])
    decoded = cv2.imread(path)
    assert decoded is not None and decoded.shape == face.shape
    assert not is_snapshot(examples / "obama.jpg")
    assert not is_snapshot(tmp_path / "missing.jpg")
