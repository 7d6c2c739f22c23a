"""The `facewatch` console script, run as a user runs it: a real subprocess, real models,
real photos.  With --json every subcommand prints exactly one JSON document on stdout; bad
input exits 2 with one line on stderr naming what is wrong."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from facewatch.images import load_image
from facewatch.pipeline import FacePipeline

_SCRIPT = Path(sys.executable).with_name("facewatch")
COMMAND = [str(_SCRIPT)] if _SCRIPT.is_file() else [sys.executable, "-m", "facewatch"]


@pytest.fixture(scope="module")
def env(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The user's environment, with per-user folders of the test's own and no daemon config
    (not the machine's /etc/facewatch), so that only tmp_path is written."""
    home = tmp_path_factory.mktemp("home")
    return {**os.environ, "FACEWATCH_MODELS": str(models_dir),
            "XDG_STATE_HOME": str(home / "state"), "XDG_CONFIG_HOME": str(home / "config"),
            "FACEWATCH_CONFIG": str(home / "no-config.yaml")}


def run(args: list[str], env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*COMMAND, *args], check=False, capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=600, stdin=subprocess.DEVNULL)


def run_json(args: list[str], env: dict[str, str], cwd: Path | None = None, code: int = 0) -> Any:
    proc = run([*args, "--json"], env, cwd)
    assert proc.returncode == code, proc.stderr
    assert proc.stdout.count("\n") == 1 and proc.stdout.endswith("\n"), proc.stdout[:500]
    return json.loads(proc.stdout)


def _one_line_error(proc: subprocess.CompletedProcess[str], *names: str, after_progress: bool = False) -> str:
    """Exit 2 and one line on stderr naming what is wrong.

    `after_progress`: for `models fetch`, whose INFO progress lines (one per model built)
    come first; the error is then still one line, and the last.
    """
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    if after_progress:
        assert "Traceback" not in proc.stderr
        assert [line for line in lines if "error" in line.lower()] == lines[-1:], proc.stderr
        lines = lines[-1:]
    assert len(lines) == 1, proc.stderr
    for name in names:
        assert name in lines[0]
    return lines[0]


def _numbers(value: Any, shape: tuple[int, ...]) -> np.ndarray:
    array = np.asarray(value)
    assert array.shape == shape and array.dtype.kind == "f", value
    return array


def _check_face(face: dict[str, Any]) -> None:
    assert {"box", "score", "landmarks"} <= set(face)
    box = _numbers(face["box"], (4,))
    assert box[2] > box[0] and box[3] > box[1]
    assert isinstance(face["score"], float) and 0.7 < face["score"] <= 1.0
    _numbers(face["landmarks"], (5, 2))


# detect / embed / identify ------------------------------------------------------------

def test_detect(env: dict[str, str], photos: Path, pipeline: FacePipeline) -> None:
    relative = "face_recognition_examples/examples/obama.jpg"
    absolute = str(photos / "facenet_pytorch" / "data" / "multiface.jpg")
    # the pipeline fixture detects down to 20 px, the CLI by default as the daemon (40)
    doc = run_json(["detect", "--min-face", "20", relative, absolute], env, cwd=photos)
    assert list(doc) == ["images"]
    assert [image["path"] for image in doc["images"]] == [relative, absolute]  # as given
    for image in doc["images"]:
        assert set(image) == {"path", "faces"}
        for face in image["faces"]:
            _check_face(face)
    obama, group = doc["images"]
    assert len(group["faces"]) == 6
    expected = pipeline.detector.detect(load_image(photos / relative))
    assert len(obama["faces"]) == len(expected)
    np.testing.assert_allclose(obama["faces"][0]["box"], expected.boxes[0], atol=0.006)
    np.testing.assert_allclose(obama["faces"][0]["landmarks"], expected.landmarks[0], atol=0.006)


def test_one_shot_commands_detect_as_the_daemon(env: dict[str, str], examples: Path) -> None:
    """The daemon's smallest face (40 px) by default: at 20 px the fold of Obama's jacket in
    his portrait is reported as a second face, which the daemon would never see."""
    photo = str(examples / "obama.jpg")
    assert len(run_json(["detect", photo], env)["images"][0]["faces"]) == 1
    assert len(run_json(["detect", "--min-face", "20", photo], env)["images"][0]["faces"]) == 2
    assert "(default: 40, the daemon's)" in " ".join(run(["detect", "--help"], env).stdout.split())


def test_embed(env: dict[str, str], examples: Path, pipeline: FacePipeline) -> None:
    doc = run_json(["embed", "--min-face", "20", str(examples / "obama2.jpg")], env)
    [face] = doc["images"][0]["faces"]
    _check_face(face)
    vector = _numbers(face["embedding"], (320,))  # the default embedder: foamliu + sirius, fused
    assert abs(np.linalg.norm(vector) - 1) < 1e-4
    expected = pipeline.analyze([load_image(examples / "obama2.jpg")])[0].embeddings
    assert expected is not None and float(vector @ expected[0]) > 0.9999


def test_identify(env: dict[str, str], examples: Path, tmp_path: Path) -> None:
    train, test = examples / "knn_examples" / "train", examples / "knn_examples" / "test"
    gallery = tmp_path / "gallery.yaml"
    gallery.write_text(f"people:\n  - id: obama\n    name: Barack Obama\n"
                       f"    images: [{train / 'obama' / 'obama2.jpg'}]\n"
                       f"  - id: biden\n    images: [{train / 'biden' / 'biden2.jpg'}]\n")
    doc = run_json(["identify", "--gallery", str(gallery), str(test / "obama_and_biden.jpg"),
                    str(test / "alex_lacamoire1.jpg")], env)
    both, alex = doc["images"]
    for face in both["faces"] + alex["faces"]:
        _check_face(face)
        assert {"identity", "name", "similarity"} <= set(face)
    named = {f["identity"]: f["name"] for f in both["faces"] if f["identity"]}
    assert named == {"obama": "Barack Obama", "biden": "biden"}
    assert [f["identity"] for f in alex["faces"]] == [None]  # not enrolled
    # The cache is the daemon's (its default state folder's gallery/), not beside the gallery.
    assert (Path(env["XDG_STATE_HOME"]) / "facewatch" / "gallery" / "analysis.sqlite").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gallery.yaml"]


def test_identify_accepts_what_gallery_build_accepts(env: dict[str, str], examples: Path,
                                                     photos: Path, tmp_path: Path) -> None:
    """--skip-bad, --largest and --state-dir as `gallery build` takes them, sharing the cache."""
    train, test = examples / "knn_examples" / "train", examples / "knn_examples" / "test"
    dogs = photos / "dlib_examples_faces" / "dogs.jpg"
    gallery = tmp_path / "gallery.yaml"
    gallery.write_text(f"people:\n  - id: obama\n    images: [{train / 'obama' / 'obama2.jpg'}]\n"
                       f"  - id: rex\n    images: [{dogs}]\n"
                       f"  - id: pair\n    images: [{examples / 'two_people.jpg'}]\n")
    state = ["--state-dir", str(tmp_path / "state")]
    probe = str(test / "obama1.jpg")
    _one_line_error(run(["identify", "--gallery", str(gallery), probe, *state], env),
                    "2 image(s) cannot be enrolled", str(dogs))
    built = run(["gallery", "build", str(gallery), "--skip-bad", *state], env)
    assert built.returncode == 0, built.stderr  # what --skip-bad skips is not a failure
    skipped = [line for line in (built.stdout + built.stderr).splitlines() if "dogs.jpg" in line]
    assert len(skipped) == 1, built.stdout + built.stderr  # listed once
    proc = run(["identify", "--gallery", str(gallery), probe, "--skip-bad", "--json", *state], env)
    assert proc.returncode == 0, proc.stderr
    [face] = json.loads(proc.stdout)["images"][0]["faces"]
    assert face["identity"] == "obama"
    assert "dogs.jpg" in proc.stderr and "two_people.jpg" in proc.stderr  # a warning each
    assert (tmp_path / "state" / "gallery" / "analysis.sqlite").is_file()  # the daemon's layout
    largest = run_json(["identify", "--gallery", str(gallery), probe, "--skip-bad", "--largest",
                        *state], env)
    assert largest["images"][0]["faces"][0]["identity"] == "obama"
    doc = run_json(["gallery", "list", str(gallery), "--skip-bad", "--largest", *state], env)
    assert [(p["id"], p["enrolled"]) for p in doc["people"]] == [("obama", 1), ("rex", 0), ("pair", 1)]


def test_bad_images_exit_2_naming_the_file(env: dict[str, str], examples: Path, tmp_path: Path) -> None:
    text = tmp_path / "notes.jpg"
    text.write_text("not a photo\n")
    good = str(examples / "obama2.jpg")
    doc = run_json(["detect", good, str(text)], env, code=2)
    assert [i["path"] for i in doc["images"]] == [good, str(text)]
    assert len(doc["images"][0]["faces"]) == 1
    assert doc["images"][1]["faces"] == [] and str(text) in doc["images"][1]["error"]
    proc = run(["detect", str(text), good], env)
    _one_line_error(proc, str(text), "not an image")
    assert proc.stdout.startswith(f"{good}: 1 face(s)")  # the good image is still reported
    truncated = tmp_path / "half.jpg"
    truncated.write_bytes((examples / "obama2.jpg").read_bytes()[:5000])
    _one_line_error(run(["embed", str(truncated)], env), str(truncated), "truncated")
    _one_line_error(run(["detect", str(tmp_path / "missing.jpg")], env), "missing.jpg", "no such file")


def test_bad_arguments_exit_2(env: dict[str, str], examples: Path, tmp_path: Path) -> None:
    line = _one_line_error(run(["detect", "--min-face", "5", str(examples / "obama2.jpg")], env),
                           "--min-face 5")
    assert line.startswith("facewatch: error: ")
    empty = tmp_path / "no-models"
    empty.mkdir()
    proc = run(["detect", "--json", "--models", str(empty), str(examples / "obama2.jpg")], env)
    _one_line_error(proc, str(empty / "mtcnn-pnet.json"), "models fetch")
    assert json.loads(proc.stdout) == {"error": proc.stderr.split("error: ", 1)[1].strip(), "exit_code": 2}


# gallery ------------------------------------------------------------------------------

def test_gallery_subcommands(env: dict[str, str], examples: Path, photos: Path, tmp_path: Path) -> None:
    train = examples / "knn_examples" / "train"
    gallery = tmp_path / "gallery.yaml"
    gallery.write_text(f"# front door\npeople:\n  - id: obama  # the boss\n    images: [{train / 'obama'}]\n")
    state = ["--state-dir", str(tmp_path / "state")]

    built = run_json(["gallery", "build", str(gallery), *state], env)
    assert (built["people"], built["images"], built["enrolled"], built["analysed"]) == (1, 2, 2, 2)
    assert built["issues"] == [] and built["people_list"][0]["id"] == "obama"

    added = run_json(["gallery", "add", str(gallery), "--id", "biden", "--name", "Joe Biden",
                      str(train / "biden" / "biden2.jpg"), *state], env)
    assert (added["people"], added["enrolled"], added["analysed"]) == (2, 3, 1)
    listed = run_json(["gallery", "list", str(gallery), *state], env)
    assert [(p["id"], p["name"], p["enrolled"]) for p in listed["people"]] == [
        ("obama", "obama", 2), ("biden", "Joe Biden", 1)]
    assert "# the boss" in gallery.read_text() and "# front door" in gallery.read_text()

    before = gallery.read_bytes()
    dogs = photos / "dlib_examples_faces" / "dogs.jpg"
    _one_line_error(run(["gallery", "add", str(gallery), "--id", "rex", str(dogs), *state], env),
                    str(dogs), "no face found")
    assert gallery.read_bytes() == before

    removed = run_json(["gallery", "remove", str(gallery), "biden", *state], env)
    assert [p["id"] for p in removed["people_list"]] == ["obama"]
    folder = tmp_path / "people"  # the folder-per-person layout
    folder.mkdir()
    for person in ("obama", "biden"):
        (folder / person).symlink_to(train / person, target_is_directory=True)
    listed = run_json(["gallery", "list", str(folder), *state], env)
    assert [(p["id"], p["enrolled"]) for p in listed["people"]] == [("biden", 2), ("obama", 2)]


def test_gallery_errors_are_one_line(env: dict[str, str], tmp_path: Path) -> None:
    gallery = tmp_path / "gallery.yaml"
    gallery.write_text("people:\n  - id: obama\n    images: [obama.jpg\n")
    _one_line_error(run(["gallery", "build", str(gallery)], env), f"{gallery}:4: malformed YAML")
    gallery.write_text("people:\n  - id: obama\n    images: [nope.jpg]\n")
    _one_line_error(run(["gallery", "build", str(gallery)], env),
                    f"{gallery}:3: people[0].images[0]: 'nope.jpg' matches no image")


# models and doctor --------------------------------------------------------------------

def test_models_fetch_from_and_list(env: dict[str, str], shared_dir: Path, models_dir: Path,
                                    tmp_path: Path) -> None:
    dest = tmp_path / "models"
    doc = run_json(["models", "fetch", "--from", str(shared_dir / "models"), "--dest", str(dest)], env)
    assert doc["dest"] == str(dest)
    assert {m["name"] for m in doc["models"]} == {p.stem for p in models_dir.glob("*.json")}
    assert all(m["obtained"] == f"imported from {shared_dir / 'models'}" for m in doc["models"])
    listed = run_json(["models", "list", "--models", str(dest)], env)
    assert sorted((m["name"], m["sha256"]) for m in listed["models"]) == sorted(
        (m["name"], m["sha256"]) for m in doc["models"])
    _one_line_error(run(["models", "fetch", "--from", str(tmp_path / "nowhere"), "--dest",
                         str(tmp_path / "other")], env),
                    str(tmp_path / "nowhere"), "not a directory", after_progress=True)


def test_models_fetch_unreachable_mirror(env: dict[str, str], shared_dir: Path, tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dest = tmp_path / "models"
    (dest / "sources").mkdir(parents=True)
    for net in ("pnet", "rnet", "onet"):  # MTCNN is there already; the GitHub files are not
        shutil.copyfile(shared_dir / "models" / "mtcnn" / f"{net}.pt", dest / "sources" / f"{net}.pt")
    _one_line_error(run(["models", "fetch", "--dest", str(dest), "--mirror", f"http://127.0.0.1:{port}"], env),
                    f"http://127.0.0.1:{port}/foamliu/", "download failed", after_progress=True)


def test_doctor(env: dict[str, str], tmp_path: Path) -> None:
    doc = run_json(["doctor"], env)
    assert doc["ok"] is True and doc["onnxruntime"]["ok"] is True
    assert doc["models"]["ok"] is True and doc["models"]["missing"] == []
    assert {"mtcnn-pnet", "mtcnn-rnet", "mtcnn-onet", "mobilefacenet-sirius"} <= {
        m["name"] for m in doc["models"]["found"]}
    empty = tmp_path / "empty"
    empty.mkdir()
    missing = run_json(["doctor", "--models", str(empty)], env, code=1)
    assert missing["ok"] is False and "mtcnn-pnet" in missing["models"]["missing"]


# bench and eval: the JSON contract only (speed and accuracy are measured elsewhere) ------

def test_bench_json(env: dict[str, str], shared_dir: Path, examples: Path) -> None:
    detect = run_json(["bench", "detect", "--source", str(shared_dir / "data" / "videos" /
                                                           "short_hamilton_clip.mp4"), "--frames", "3"], env)
    assert detect["frames"] == 3 and detect["frame_size"] == [640, 360]
    stages = detect["ms_per_frame_mean_by_stage"]
    assert set(stages) == {"pnet", "rnet", "onet", "outside_networks"}
    assert all(v > 0 for v in stages.values())
    assert detect["inputs_per_frame_mean"]["pnet"] == 1  # the whole pyramid in one canvas
    assert detect["mode"] == "full" and detect["fps"] == 10
    gated = run_json(["bench", "detect", "--source", str(shared_dir / "data" / "videos" /
                                                          "short_hamilton_clip.mp4"),
                      "--frames", "12", "--mode", "gated", "--min-face", "40"], env)
    assert gated["mode"] == "gated" and gated["frames"] == 12
    assert sum(gated["frames_by_work"].values()) == 12 and gated["frames_by_work"]["full"] >= 1
    assert 0 <= gated["recall_per_frame"] <= 1 and 0 <= gated["recall_per_track"] <= 1
    assert gated["reference"]["faces"] >= gated["faces_found"] - gated["faces_extra"]
    still = run_json(["bench", "detect", "--source", str(shared_dir / "data" / "videos" /
                                                         "opencv_tree_noface.avi"),
                      "--frames", "20", "--mode", "gated", "--still"], env)
    # a still scene: the first frame searched whole, then nothing at all
    assert still["frames_by_work"] == {"none": 19, "refresh": 0, "regions": 0, "full": 1}
    assert still["faces_found"] == 0 and still["core_percent_at_fps"] >= 0
    embed = run_json(["bench", "embed", "--source", str(examples / "obama2.jpg"), "--seconds", "0.2",
                      "--batch", "2"], env)
    assert embed["batch"] == 2 and embed["faces"] >= 2 and embed["embedder"] == "mobilefacenet-fused"


def test_eval_json(env: dict[str, str], lfw_dir: Path, tmp_path: Path) -> None:
    lines = (lfw_dir / "pairs.txt").read_text().splitlines()[1:]
    tiny = ["10\t1"]
    for fold in range(10):  # the first same-person and the first different-person pair of each fold
        tiny += [lines[fold * 600], lines[fold * 600 + 300]]
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("\n".join(tiny) + "\n")
    lfw = run_json(["eval", "lfw", "--lfw", str(lfw_dir), "--pairs", str(pairs),
                    "--cache", str(tmp_path / "cache.sqlite")], env)
    assert lfw["pairs"] == 20 and len(lfw["fold_accuracies"]) == 10 and 0 <= lfw["accuracy"] <= 1

    people = tmp_path / "lfw"
    people.mkdir()
    for name in ("Aaron_Peirsol", "Adam_Sandler", "Aaron_Eckhart"):  # 4, 4 and 1 photos
        (people / name).symlink_to(lfw_dir / name, target_is_directory=True)
    ident = run_json(["eval", "identify", "--lfw", str(people), "--no-cache"], env)
    assert (ident["enrolled"], ident["genuine_probes"], ident["impostor_probes"]) == (2, 6, 1)


# help ---------------------------------------------------------------------------------

def _commands(parser: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    import argparse

    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            seen: set[int] = set()
            for name, child in action.choices.items():
                if id(child) not in seen:  # an alias is the same parser
                    seen.add(id(child))
                    out.append(((*path, name), child))
                    out += _commands(child, (*path, name))
    return out


def test_every_command_says_what_it_does_in_a_line() -> None:
    from facewatch.cli.main import build_parser

    parser = build_parser()
    assert parser.description and "facewatch" not in parser.description.split(":")[0].lower()
    for path, child in _commands(parser):
        assert child.description, f"facewatch {' '.join(path)} has no description"
        assert "\n" not in child.description.strip(), path


@pytest.mark.parametrize("command, absent", [
    (("run",), ("--json", "--models", "--threads")),
    (("doctor",), ("--threads",)),
    (("models", "fetch"), ("--threads",)),
    (("models", "list"), ("--threads",)),
    (("config", "check"), ("--models", "--threads")),
    (("cameras", "add"), ("--models", "--threads")),
])
def test_no_option_that_does_nothing(command: tuple[str, ...], absent: tuple[str, ...]) -> None:
    from facewatch.cli.main import build_parser

    [parser] = [p for path, p in _commands(build_parser()) if path == command]
    options = {o for action in parser._actions for o in action.option_strings}
    assert not options & set(absent), options & set(absent)


def test_progress_only_on_a_terminal_and_never_under_json() -> None:
    import facewatch.progress as progress

    try:
        progress.set_quiet(False)
        assert progress.shown() == sys.stderr.isatty()
        progress.set_quiet(True)
        assert progress.shown() is False
        with progress.progress_bar(3, "x") as bar:
            assert bar.disable
    finally:
        progress.set_quiet(False)


def test_progress_bar_on_a_terminal(env: dict[str, str], examples: Path) -> None:
    """identify on many photos shows a bar when stderr is a terminal, and none with --json."""
    import pty

    photos = [str(examples / "obama2.jpg")] * 20

    def stderr_on_a_terminal(args: list[str]) -> str:
        import select

        import fcntl
        import struct
        import termios

        leader, follower = pty.openpty()
        # a terminal of 24 x 100 (a new pty has no size, and tqdm then draws nothing)
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
        proc = subprocess.Popen([*COMMAND, "detect", *args, *photos], env=env, stderr=follower,
                                stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        os.close(follower)
        chunks = []
        try:
            # read while it runs: Linux drops what is left in a pty once its last writer closes
            while True:
                ready, _, _ = select.select([leader], [], [], 0.2)
                if ready:
                    try:
                        chunk = os.read(leader, 65536)
                    except OSError:  # EIO: the child has gone
                        break
                    if not chunk:
                        break
                    chunks.append(chunk)
                elif proc.poll() is not None:
                    break
        finally:
            os.close(leader)
            assert proc.wait(300) == 0
        return b"".join(chunks).decode(errors="replace")

    assert "20/20" in stderr_on_a_terminal([])
    assert "20/20" not in stderr_on_a_terminal(["--json"])
