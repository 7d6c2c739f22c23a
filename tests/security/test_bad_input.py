"""Bad input that the rest of the suite does not already cover (see the coverage map in
tests/security/README.md): media our decoders cannot read, and model files that are the wrong
network or not the pinned file, each ending as one clear line, never a crash."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from facewatch.engines.files import sha256_file
from facewatch.events import CameraStatus
from facewatch.streams.reader import CameraFrame, CameraReader, StreamState, StreamStatus
from facewatch.streams.settings import StreamSettings
from tests.support.daemon import DaemonProcess, ZmqEvents, camera_state, write_yaml
from tests.support.mosquitto import free_port

REPO = Path(__file__).resolve().parents[2]


# -- media ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory, shared_dir: Path) -> Path:
    """Files a camera might be pointed at by mistake, each a real file."""
    folder = tmp_path_factory.mktemp("media")
    tree = (shared_dir / "data" / "videos" / "opencv_tree_noface.avi").read_bytes()
    assert tree.count(b"cvid") == 2  # Cinepak, in the stream header and the format
    # the same AVI, its codec renamed to a FourCC no decoder knows
    (folder / "unknown-codec.avi").write_bytes(tree.replace(b"cvid", b"ZZ9Z"))
    (folder / "notes.mp4").write_text("not a video\n" * 100)
    (folder / "empty.mp4").write_bytes(b"")
    clip = (shared_dir / "data" / "videos" / "short_hamilton_clip.mp4").read_bytes()
    (folder / "truncated.mp4").write_bytes(clip[:3000])  # the header, without the index
    photo = shared_dir / "data" / "photos" / "face_recognition_examples" / "examples" / "obama.jpg"
    (folder / "photo.mp4").write_bytes(photo.read_bytes())
    return folder


def read_all(path: Path, decoder: str) -> list[CameraFrame | StreamStatus]:
    settings = StreamSettings(url=str(path), decoder=decoder, realtime=False, fps=None)  # type: ignore[arg-type]
    return list(CameraReader("door", settings))


@pytest.mark.parametrize("decoder", ["gstreamer", "opencv"])
@pytest.mark.parametrize(("name", "gstreamer_says", "opencv_says"), [
    ("unknown-codec.avi", "Missing decoder: video/x-avi-unknown",
     "not a video FFmpeg can decode here"),
    ("notes.mp4", "This appears to be a text file", "not a video FFmpeg can decode here"),
    ("empty.mp4", "Can't typefind empty stream", "the file is empty"),
    ("truncated.mp4", "no known streams found", "not a video FFmpeg can decode here"),
    ("missing.mp4", "Resource not found", "no such file"),
])
def test_undecodable_files_go_offline_with_the_reason(media: Path, decoder: str, name: str,
                                                      gstreamer_says: str, opencv_says: str) -> None:
    records = read_all(media / name, decoder)
    assert not any(isinstance(r, CameraFrame) for r in records)
    # A file that cannot be opened is not retried: one status, offline.  (On a loaded machine a
    # pipeline may also sit silent past no_frame_timeout_s first: one reconnection, then this.)
    last = records[-1]
    assert isinstance(last, StreamStatus) and last.state is StreamState.OFFLINE
    assert all(isinstance(r, StreamStatus) and r.state is StreamState.RECONNECTING
               for r in records[:-1]), records
    assert last.cause == "unreachable" and last.reason.startswith("unreachable: ")
    expected = gstreamer_says if decoder == "gstreamer" else opencv_says
    assert expected in last.reason, last.reason
    assert "\n" not in last.reason


@pytest.mark.parametrize("decoder", ["gstreamer", "opencv"])
def test_a_photo_named_mp4_is_one_frame_then_eof(media: Path, decoder: str) -> None:
    """Both decoders look at the content, not the name: a JPEG is a one-frame video."""
    records = read_all(media / "photo.mp4", decoder)
    frames = [r for r in records if isinstance(r, CameraFrame)]
    assert len(frames) == 1 and frames[0].image.ndim == 3
    assert isinstance(records[-1], StreamStatus) and records[-1].reason == "eof"


def test_the_daemon_reports_an_undecodable_camera_and_keeps_the_others(
        tmp_path: Path, media: Path, models_dir: Path, shared_dir: Path, examples: Path) -> None:
    write_yaml(tmp_path / "gallery.yaml",
               {"people": [{"id": "obama", "images": [str(examples / "obama.jpg")]}]})
    zmq_port = free_port()
    tree = shared_dir / "data" / "videos" / "opencv_tree_noface.avi"
    config = write_yaml(tmp_path / "config.yaml", {
        "cameras": [{"name": "odd", "url": str(media / "unknown-codec.avi")},
                    {"name": "text", "url": str(media / "notes.mp4"), "decoder": "opencv"},
                    {"name": "tree", "url": str(tree), "realtime": False}],
        "gallery": "gallery.yaml", "state_dir": "state",
        "outputs": {"zmq": {"bind": f"tcp://127.0.0.1:{zmq_port}"}, "jsonl": "events.jsonl"},
        "metrics": {"enabled": False}})
    events = ZmqEvents(f"tcp://127.0.0.1:{zmq_port}")
    try:
        with DaemonProcess(config, models_dir, tmp_path) as daemon:
            events.follow(daemon)
            daemon.start()
            odd = events.wait_for(camera_state("offline", "odd"), 90, "the odd codec reported")
            text = events.wait_for(camera_state("offline", "text"), 90, "the text file reported")
            events.wait_for(camera_state("offline", "tree"), 90, "the good file played to its end")
            assert daemon.returncode is None  # still running, nothing crashed
            daemon.terminate()
            assert daemon.wait(15) == 0, daemon.log_tail()
            log = daemon.log_text()
    finally:
        events.close()
    assert isinstance(odd, CameraStatus) and "Missing decoder: video/x-avi-unknown" in odd.reason
    assert isinstance(text, CameraStatus) and "not a video FFmpeg can decode here" in text.reason
    assert [e.state for e in events.events if e.camera == "tree"] == ["online", "offline"]
    assert "Traceback" not in log and "crashed" not in log and "restarting" not in log, log[-3000:]
    written = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert {e["camera"] for e in written} == {"odd", "text", "tree"}


# -- models -----------------------------------------------------------------------------------

def _models_copy(models_dir: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "models"
    shutil.copytree(models_dir, copy, ignore=shutil.ignore_patterns("sources", "engines"))
    return copy


def _detect(models: Path, image: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "facewatch", "detect", "--models", str(models),
                           str(image)], cwd=REPO, capture_output=True, text=True, timeout=120,
                          check=False, env={**os.environ})


def _one_line(result: subprocess.CompletedProcess[str], *parts: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("facewatch: error: "), result.stderr
    for part in parts:
        assert part in lines[0], lines[0]


def test_the_wrong_network_under_a_pinned_manifest_is_refused(models_dir: Path, tmp_path: Path,
                                                              examples: Path) -> None:
    """Someone copies P-Net over R-Net and updates the sha256: the file is the one the manifest
    pins, but not the network its role needs.  Refused when loaded, not deep in the detector."""
    models = _models_copy(models_dir, tmp_path)
    shutil.copyfile(models / "mtcnn-pnet.onnx", models / "mtcnn-rnet.onnx")
    manifest = json.loads((models / "mtcnn-rnet.json").read_text())
    manifest["sha256"] = sha256_file(models / "mtcnn-rnet.onnx")
    (models / "mtcnn-rnet.json").write_text(json.dumps(manifest))
    _one_line(_detect(models, examples / "obama.jpg"), str(models / "mtcnn-rnet.json"),
              "output 'reg' has shape [1, 4, 7, 7]", "is mtcnn-rnet.onnx the right network?")


def test_garbage_with_a_matching_sha_is_refused(models_dir: Path, tmp_path: Path,
                                                examples: Path) -> None:
    models = _models_copy(models_dir, tmp_path)
    (models / "mtcnn-onet.onnx").write_bytes(os.urandom(4096))
    manifest = json.loads((models / "mtcnn-onet.json").read_text())
    manifest["sha256"] = sha256_file(models / "mtcnn-onet.onnx")
    (models / "mtcnn-onet.json").write_text(json.dumps(manifest))
    _one_line(_detect(models, examples / "obama.jpg"), str(models / "mtcnn-onet.onnx"),
              "ONNX Runtime cannot load it")


def test_a_changed_model_file_is_refused_by_the_cli(models_dir: Path, tmp_path: Path,
                                                    examples: Path) -> None:
    models = _models_copy(models_dir, tmp_path)
    with (models / "mtcnn-pnet.onnx").open("ab") as f:
        f.write(b"\0")
    _one_line(_detect(models, examples / "obama.jpg"), "mtcnn-pnet", "sha256")
