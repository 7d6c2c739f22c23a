"""Hostile and odd files given to the one-shot commands and the gallery (issue 8): file names
that are not UTF-8 or hold control characters, named pipes, the same path given twice.

Every command runs as a user runs it: the console script in a subprocess, real models, real
photos.  Its stdout is a pipe with strict UTF-8, as on an en_US.UTF-8 terminal (Python only
escapes undecodable names itself under the C locale)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

_SCRIPT = Path(sys.executable).with_name("facewatch")
COMMAND = [str(_SCRIPT)] if _SCRIPT.is_file() else [sys.executable, "-m", "facewatch"]

# A Latin-1 "é" (0xE9) is not UTF-8: Python holds such a name as "caf\udce9.jpg".
LATIN1_NAME = b"caf\xe9.jpg"
ESCAPED_NAME = "caf\\xe9.jpg"
# A name that would turn the rest of a terminal red, and one with a newline in it.
ESC_NAME = "x\x1b[31mred.jpg"


@pytest.fixture(scope="module")
def env(models_dir: Path) -> dict[str, str]:
    strict = {"PYTHONIOENCODING": "utf-8:strict", "LC_ALL": "", "LANG": "en_US.UTF-8"}
    return {**os.environ, "FACEWATCH_MODELS": str(models_dir), **strict}


def run(args: list[str], env: dict[str, str], cwd: Path | None = None,
        timeout: float = 300) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*COMMAND, *args], check=False, capture_output=True, env=env,
                          cwd=cwd, timeout=timeout, stdin=subprocess.DEVNULL)


def run_json(args: list[str], env: dict[str, str], code: int = 0, cwd: Path | None = None) -> Any:
    proc = run([*args, "--json"], env, cwd)
    assert proc.returncode == code, proc.stderr.decode(errors="replace")
    assert proc.stdout.count(b"\n") == 1, proc.stdout[:500]
    return json.loads(proc.stdout)


def _no_raw_controls(data: bytes) -> None:
    text = data.decode("utf-8")  # strict: everything written is valid UTF-8
    assert not any(ord(ch) < 0x20 and ch != "\n" or 0x7F <= ord(ch) < 0xA0 for ch in text), text


# -- text output: any file name, nothing raw to the terminal ----------------------------------

def test_text_output_survives_a_non_utf8_file_name(env: dict[str, str], examples: Path,
                                                   tmp_path: Path) -> None:
    """All results were computed, then lost to a UnicodeEncodeError (exit 1)."""
    odd = os.path.join(os.fsencode(tmp_path), LATIN1_NAME)
    shutil.copyfile(examples / "obama2.jpg", odd)
    good = str(examples / "obama2.jpg")
    proc = run(["detect", good, os.fsdecode(odd)], env)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    _no_raw_controls(proc.stdout)
    lines = proc.stdout.decode().splitlines()
    assert lines[0] == f"{good}: 1 face(s)"
    assert f"{tmp_path}/{ESCAPED_NAME}: 1 face(s)" in lines
    # --json keeps the name exactly (JSON's \udce9 escape), in the order given
    doc = run_json(["detect", good, os.fsdecode(odd)], env)
    assert [i["path"] for i in doc["images"]] == [good, os.fsdecode(odd)]


def test_control_characters_in_names_are_escaped(env: dict[str, str], examples: Path,
                                                 tmp_path: Path) -> None:
    shutil.copyfile(examples / "obama2.jpg", tmp_path / ESC_NAME)
    (tmp_path / "x\nnot.jpg").write_text("not a photo")
    proc = run(["detect", ESC_NAME, "x\nnot.jpg"], env, cwd=tmp_path)
    assert proc.returncode == 2  # the second is not an image
    _no_raw_controls(proc.stdout)
    _no_raw_controls(proc.stderr)
    assert proc.stdout.decode().splitlines()[0] == "x\\x1b[31mred.jpg: 1 face(s)"
    [error] = proc.stderr.decode().splitlines()  # still one line, the newline shown as \n
    assert error.startswith("facewatch: warning: x\\nnot.jpg: not an image"), error


# -- named pipes and the same path twice --------------------------------------------------------

def test_a_named_pipe_is_refused_not_read_forever(env: dict[str, str], examples: Path,
                                                  tmp_path: Path) -> None:
    fifo = tmp_path / "x.jpg"
    os.mkfifo(fifo)
    good = str(examples / "obama2.jpg")
    try:
        proc = run(["detect", "--json", str(fifo), good], env, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("detect hung on a named pipe")
    assert proc.returncode == 2
    doc = json.loads(proc.stdout)
    assert [i["path"] for i in doc["images"]] == [str(fifo), good]
    assert "not a regular file" in doc["images"][0]["error"]
    assert len(doc["images"][1]["faces"]) == 1
    [warning] = proc.stderr.decode().splitlines()
    assert warning.startswith(f"facewatch: warning: {fifo}: not a regular file"), warning


def test_the_same_path_twice_keeps_the_order_given(env: dict[str, str], examples: Path) -> None:
    a, b, c = (str(examples / n) for n in ("obama.jpg", "biden.jpg", "two_people.jpg"))
    doc = run_json(["detect", a, b, c, a], env)
    assert [i["path"] for i in doc["images"]] == [a, b, c, a]
    assert doc["images"][0] == doc["images"][3]
    proc = run(["detect", a, b, c, a], env)
    heads = [line.split(": ")[0] for line in proc.stdout.decode().splitlines()
             if not line.startswith(" ")]
    assert heads == [a, b, c, a]


# -- a gallery folder with an oddly named photo -------------------------------------------------

def _latin1_gallery(tmp_path: Path, examples: Path) -> Path:
    """people.yaml with `images: ["obama/*.jpg"]`; one of the two photos has a Latin-1 name."""
    folder = tmp_path / "obama"
    folder.mkdir()
    shutil.copyfile(examples / "obama.jpg", folder / "a.jpg")
    shutil.copyfile(examples / "obama2.jpg", os.path.join(os.fsencode(folder), LATIN1_NAME))
    gallery = tmp_path / "people.yaml"
    gallery.write_text('people:\n  - id: obama\n    images: ["obama/*.jpg"]\n')
    return gallery


def test_a_gallery_photo_with_a_non_utf8_name_is_enrolled(env: dict[str, str], examples: Path,
                                                          tmp_path: Path) -> None:
    """`gallery build` exited 1 with a UnicodeEncodeError traceback."""
    gallery = _latin1_gallery(tmp_path, examples)
    built = run_json(["gallery", "build", str(gallery)], env)
    assert (built["images"], built["enrolled"], built["issues"]) == (2, 2, [])
    listed = run_json(["gallery", "list", str(gallery)], env)
    assert sorted(listed["people"][0]["images"]) == sorted(
        [str(tmp_path / "obama" / "a.jpg"), os.fsdecode(os.path.join(
            os.fsencode(tmp_path / "obama"), LATIN1_NAME))])
    proc = run(["gallery", "build", str(gallery)], env)  # text, strict stdout
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert "2/2 images enrolled" in proc.stdout.decode()
    doc = run_json(["identify", "--gallery", str(gallery), str(examples / "obama-480p.jpg")], env)
    assert [f["identity"] for f in doc["images"][0]["faces"]] == ["obama"]


def test_the_daemon_recognises_with_that_gallery(models_dir: Path, examples: Path,
                                                 shared_dir: Path, tmp_path: Path) -> None:
    """`facewatch run` passed its start-up checks, then its inference process crashed on the
    name and was restarted forever, never ready."""
    from tests.support.daemon import DaemonProcess, ZmqEvents, of_type, write_yaml
    from tests.support.mosquitto import free_port

    _latin1_gallery(tmp_path, examples)
    port = free_port()
    config = write_yaml(tmp_path / "config.yaml", {
        "cameras": [{"name": "clip", "url": str(shared_dir / "data" / "videos" /
                                                "short_hamilton_clip.mp4"), "realtime": False}],
        "gallery": "people.yaml", "state_dir": "state",
        "outputs": {"zmq": {"bind": f"tcp://127.0.0.1:{port}"}}, "metrics": {"enabled": False}})
    events = ZmqEvents(f"tcp://127.0.0.1:{port}")
    try:
        with DaemonProcess(config, models_dir, tmp_path) as daemon:
            events.follow(daemon)
            daemon.start()
            events.wait_for(of_type("track.started"), 180, "a face followed (analysis running)")
            daemon.terminate()
            assert daemon.wait(15) == 0, daemon.log_tail()
            log = daemon.log_text()
    finally:
        events.close()
    assert "Traceback" not in log and "restarting" not in log and "not enrolled" not in log, log[-3000:]



def test_tail_shows_hostile_event_text_escaped(env: dict[str, str]) -> None:
    """Any client allowed to publish could drive the terminal of whoever runs `facewatch tail`,
    or crash its strict stdout with a lone surrogate (a JSON \\udce9 escape)."""
    import threading
    import time

    import zmq

    from facewatch.events import FaceRecognized, to_dict
    from tests.support.mosquitto import free_port

    port = free_port()
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    pub = context.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.bind(f"tcp://127.0.0.1:{port}")
    event = json.dumps(to_dict(FaceRecognized(
        camera="door", ts=time.time(), track_id=3, identity="ada", name="\x1b[2JAda\udce9",
        score=0.7, bbox=(0, 0, 1, 1), seq=1, event_id="e1"))).encode()
    assert b"\x1b" not in event  # JSON escapes it; the danger is in what a reader prints
    stop = threading.Event()

    def publish() -> None:
        while not stop.is_set():
            pub.send_multipart([b"face.recognized/door", event])
            time.sleep(0.2)

    thread = threading.Thread(target=publish, daemon=True)
    thread.start()
    try:
        text = run(["tail", "--zmq", f"tcp://127.0.0.1:{port}", "--count", "1"], env, timeout=60)
        as_json = run(["tail", "--zmq", f"tcp://127.0.0.1:{port}", "--count", "1", "--json"], env,
                      timeout=60)
    finally:
        stop.set()
        thread.join(5)
        pub.close(0)
        context.term()
    assert text.returncode == 0, text.stderr.decode(errors="replace")
    _no_raw_controls(text.stdout)
    assert "track 3: \\x1b[2JAda\\xe9 (ada)" in text.stdout.decode()
    assert as_json.returncode == 0, as_json.stderr.decode(errors="replace")
    assert json.loads(as_json.stdout)[0]["name"] == "\x1b[2JAda\udce9"
