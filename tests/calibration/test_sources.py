"""Calibration sources: frames spread over a video, image folders, a gallery, a camera."""

from __future__ import annotations

from pathlib import Path

import pytest

from facewatch.calibration.sources import (
    camera_source,
    chain,
    folder_source,
    gallery_source,
    video_source,
)
from facewatch.errors import BadInputError


def test_video_frames_are_spread_over_the_whole_clip(hamilton: Path) -> None:
    source = video_source(hamilton, 5)
    frames = list(source.frames())
    assert source.count == 5 and len(frames) == 5
    assert frames[0].shape == (360, 640, 3)
    assert "5 of 275 frames" in source.description
    # Asking for more frames than the clip has gives every frame once.
    assert video_source(hamilton, 500).count == 275


def test_folders_galleries_and_chains(examples: Path, tmp_path: Path) -> None:
    folder = folder_source(examples)
    gallery = tmp_path / "g.yaml"
    gallery.write_text(f"people:\n  - id: obama\n    images: [{examples / 'obama.jpg'}]\n")
    g = gallery_source(gallery)
    assert g.count == 1 and len(list(g.frames())) == 1
    both = chain([folder, g])
    assert both.count == folder.count + 1 and "gallery" in both.description
    with pytest.raises(BadInputError, match="no calibration source"):
        chain([])
    with pytest.raises(BadInputError, match="not a folder"):
        folder_source(tmp_path / "missing")


def test_camera_frames_come_through_the_stream_reader_at_max_size(hamilton: Path,
                                                                  tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"cameras:\n  - name: clip\n    url: {hamilton}\n    realtime: false\n"
                      f"    max_size: 320x180\ngallery: g.yaml\n")
    frames = list(camera_source(config, "clip", 4, spacing_s=0.5).frames())
    assert len(frames) == 4 and all(f.shape == (180, 320, 3) for f in frames)
    with pytest.raises(BadInputError, match="no camera named 'door'"):
        camera_source(config, "door", 4)
