"""From a fresh machine to the first named face, as the README tells it (issue 13).

- `systemd/install.sh --camera door=<the Hamilton clip>` with the models imported from
  ../shared, then the foreground command it prints (no systemd here): the daemon becomes
  ready with no gallery file, the clip's faces are grouped in the face library, and naming a
  group with `facewatch clusters assign` (run as root, as `sudo` would) makes the next loop
  publish `face.recognized`.  install.sh is pointed at a folder of the test's own
  (FACEWATCH_PREFIX/ETC/STATE/USER/UNIT_DIR) so the machine's /opt, /etc and /var/lib stay
  untouched; it creates a system user of the test's own and the test removes it.
- The README's "Without the service" path as a user who is not root (a user made for the
  test): models, `cameras add`, `run`, and a person added while it runs.

Both run as root (they make users) and skip elsewhere; both wait on what is published, never
on how fast (the machine is shared).
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.daemon import ZmqEvents, recognized, wait_until
from tests.support.mosquitto import free_port

REPO = Path(__file__).resolve().parents[1]
INSTALL = REPO / "systemd" / "install.sh"
SERVICE_USER = "fw-install-test"
PLAIN_USER = "fw-user-test"


def _needs_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("makes a user and installs as root (install.sh's own requirement)")
    if shutil.which("runuser") is None or shutil.which("useradd") is None:
        pytest.skip("needs runuser and useradd (util-linux, passwd)")


@pytest.fixture
def world_readable_tmp() -> Iterator[Path]:
    """A folder the test's users can enter (pytest's tmp_path is root's alone)."""
    root = Path(tempfile.mkdtemp(prefix="facewatch-first-run-", dir="/tmp"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def _remove_user(name: str) -> None:
    """Remove the test's user once its processes (the daemon's last children) have gone;
    userdel refuses a user that still runs something."""
    def pids() -> list[int]:
        found = subprocess.run(["ps", "-u", name, "-o", "pid="], capture_output=True, text=True,
                               check=False)
        return [int(p) for p in found.stdout.split()] if found.returncode == 0 else []

    deadline = time.monotonic() + 15
    while pids() and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in pids():  # this test's own user: nothing else runs as it
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 5
    while pids() and time.monotonic() < deadline:
        time.sleep(0.1)
    subprocess.run(["userdel", name], capture_output=True, check=False)
    subprocess.run(["groupdel", name], capture_output=True, check=False)


class Foreground:
    """A command run in a session of its own, its output in a log file."""

    def __init__(self, argv: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        with log.open("ab") as out:
            self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                            stderr=out, start_new_session=True, env=env)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def tail(self) -> str:
        return "\n".join(self.text().splitlines()[-40:])

    def gone(self) -> str | None:
        code = self.process.poll()
        return None if code is None else f"the daemon exited with code {code}:\n{self.tail()}"

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.process.wait(10)


def _free_ports(config: Path) -> int:
    """Move the config's ZeroMQ, metrics and API ports to free ones (other tests on this
    machine use the defaults); the only edit the test makes to what install.sh wrote."""
    zmq_port, metrics_port, api_port = free_port(), free_port(), free_port()
    text = config.read_text()
    assert "bind: tcp://127.0.0.1:5556\n" in text and "  port: 9108\n" in text
    text = text.replace("bind: tcp://127.0.0.1:5556\n", f"bind: tcp://127.0.0.1:{zmq_port}\n") \
        .replace("  port: 9108\n", f"  port: {metrics_port}\n")
    if "\napi:" not in text:
        text += f"\napi:\n  port: {api_port}\n"
    else:
        assert "  port: 8765" in text
        text = text.replace("  port: 8765", f"  port: {api_port}")
    config.write_text(text)
    return zmq_port


def test_install_sh_then_name_the_first_face(shared_dir: Path, world_readable_tmp: Path) -> None:
    _needs_root()
    if Path("/run/systemd/system").is_dir():
        pytest.skip("systemd is running here: install.sh would install and start the real service")
    root = world_readable_tmp
    clip = shared_dir / "data" / "videos" / "short_hamilton_clip.mp4"
    paths = {"FACEWATCH_PREFIX": root / "opt", "FACEWATCH_ETC": root / "etc",
             "FACEWATCH_STATE": root / "state", "FACEWATCH_UNIT_DIR": root / "units",
             "FACEWATCH_BIN_DIR": root / "bin"}
    env = {**os.environ, **{k: str(v) for k, v in paths.items()}, "FACEWATCH_USER": SERVICE_USER,
           "FACEWATCH_MODELS_FROM": str(shared_dir / "models")}
    for name in ("FACEWATCH_CONFIG", "STATE_DIRECTORY", "NOTIFY_SOCKET"):
        env.pop(name, None)
    daemon: Foreground | None = None
    try:
        install = subprocess.run(["bash", str(INSTALL), "--camera", f"door={clip}"], env=env,
                                 capture_output=True, text=True, timeout=1500,
                                 stdin=subprocess.DEVNULL, check=False)
        out = install.stdout + install.stderr
        assert install.returncode == 0, out[-5000:]
        config = paths["FACEWATCH_ETC"] / "config.yaml"
        assert f"camera door ({clip}, 640x360)" in out  # probed by cameras add
        uid = pwd.getpwnam(SERVICE_USER).pw_uid
        assert config.stat().st_gid == pwd.getpwnam(SERVICE_USER).pw_gid
        assert config.stat().st_mode & 0o777 == 0o640  # the service reads it; others do not
        match = re.search(r"foreground with:\n\s+(runuser .+)\n", out)
        assert match is not None, out[-3000:]
        command = shlex.split(match.group(1))
        assert command[-2:] == ["--config", str(config)]
        zmq_port = _free_ports(config)

        events = ZmqEvents(f"tcp://127.0.0.1:{zmq_port}")
        daemon = Foreground(command, root / "daemon.log")
        wait_until(lambda: "ready:" in daemon.text(), 300, "the installed daemon ready",
                   daemon.tail, daemon.gone)
        state = paths["FACEWATCH_STATE"]
        assert not (state / "gallery.yaml").exists()  # ready with no gallery file at all

        facewatch = str(paths["FACEWATCH_BIN_DIR"] / "facewatch")  # linked to the venv's
        at = ["--config", str(config)]

        def clusters() -> list[dict[str, Any]]:
            proc = subprocess.run([facewatch, "clusters", "list", *at, "--json"], env=env,
                                  capture_output=True, text=True, timeout=120, check=False)
            if proc.returncode != 0:
                return []
            groups: list[dict[str, Any]] = json.loads(proc.stdout)["groups"]
            return groups

        wait_until(lambda: any(g["size"] >= 3 for g in clusters()), 300,
                   "the clip's faces grouped in the face library", daemon.tail, daemon.gone)
        group = max(clusters(), key=lambda g: g["size"])
        # as root, as `sudo facewatch clusters assign` runs
        assign = subprocess.run([facewatch, "clusters", "assign", str(group["id"]), "--person",
                                 "first", "--name", "First Person", *at], env=env,
                                capture_output=True, text=True, timeout=300, check=False)
        assert assign.returncode == 0, assign.stdout + assign.stderr
        gallery = state / "gallery.yaml"
        assert gallery.stat().st_uid == uid  # the service's file, though root wrote it
        for made in (state / "faces").rglob("*"):
            assert made.stat().st_uid == uid, made
        mark = events.mark()
        events.wait_for(recognized("first"), 300, "the named group recognised", since=mark)
        assert "gallery not reloaded" not in daemon.text()
        events.close()
    finally:
        if daemon is not None:
            daemon.stop()
        _remove_user(SERVICE_USER)


def test_without_the_service_as_a_user_who_is_not_root(shared_dir: Path,
                                                       world_readable_tmp: Path) -> None:
    """README, "Without the service", as a new user with a checkout in their home: a
    virtualenv of their own, then models, `cameras add`, `run`, and a person added while it
    runs.  Nothing under /var/lib, no hand-written YAML."""
    _needs_root()
    home = world_readable_tmp / "home"
    _remove_user(PLAIN_USER)
    made = subprocess.run(["useradd", "--create-home", "--home-dir", str(home), "--shell",
                           "/bin/sh", PLAIN_USER], capture_output=True, text=True, check=False)
    assert made.returncode == 0, made.stderr
    checkout = home / "facewatch"
    shutil.copytree(REPO, checkout, ignore=shutil.ignore_patterns(
        ".git", ".venv", "__pycache__", "build", "*.egg-info", ".*_cache"))
    subprocess.run(["chown", "-R", f"{PLAIN_USER}:{PLAIN_USER}", str(home)], check=True)
    facewatch = checkout / ".venv" / "bin" / "facewatch"
    clip = shared_dir / "data" / "videos" / "short_hamilton_clip.mp4"
    portrait = shared_dir / "data" / "photos" / "face_recognition_examples" / "examples" / \
        "lin-manuel-miranda.png"
    env = {"HOME": str(home), "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}

    def as_user(*args: str, timeout: float = 600, program: str | None = None
                ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["runuser", "-u", PLAIN_USER, "--", "env", "-i",
                               *[f"{k}={v}" for k, v in env.items()], program or str(facewatch),
                               *args], capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, check=False, cwd=checkout)

    daemon: Foreground | None = None
    try:
        # python3 -m venv .venv && .venv/bin/pip install '.[gstreamer]'
        venv = as_user("-m", "venv", ".venv", program="python3")
        assert venv.returncode == 0, venv.stderr
        pip = as_user("install", "-q", ".[gstreamer]", program=".venv/bin/pip", timeout=1500)
        assert pip.returncode == 0, pip.stderr[-3000:]
        fetched = as_user("models", "fetch", "--from", str(shared_dir / "models"))
        assert fetched.returncode == 0, fetched.stderr
        assert f"models are in {home}/.local/share/facewatch/models" in fetched.stdout
        doctor = as_user("doctor", "--json")
        assert json.loads(doctor.stdout)["models"]["ok"] is True, doctor.stderr
        added = as_user("cameras", "add", "door", str(clip))
        assert added.returncode == 0, added.stderr
        config = home / ".config" / "facewatch" / "config.yaml"
        assert f"created {config}: camera door" in added.stdout
        zmq_port = _free_ports(config)
        check = as_user("config", "check", str(config))
        assert check.returncode == 0, check.stderr
        state = home / ".local" / "state" / "facewatch"
        assert f"state:   {state}" in check.stdout

        events = ZmqEvents(f"tcp://127.0.0.1:{zmq_port}")
        daemon = Foreground(["runuser", "-u", PLAIN_USER, "--", "env", "-i",
                             *[f"{k}={v}" for k, v in env.items()], str(facewatch), "run"],
                            world_readable_tmp / "daemon.log")
        wait_until(lambda: "ready:" in daemon.text(), 300, "the user's daemon ready",
                   daemon.tail, daemon.gone)
        gallery = state / "gallery.yaml"
        assert not gallery.exists()
        # the README's way to name someone from a photo, while the daemon runs: the gallery
        # file appears, and the daemon's watcher picks it up
        add = as_user("gallery", "add", str(gallery), "--id", "lin", "--name",
                      "Lin-Manuel Miranda", str(portrait))
        assert add.returncode == 0, add.stderr
        events.wait_for(recognized("lin"), 300, "Lin-Manuel Miranda recognised")
        owner = pwd.getpwnam(PLAIN_USER).pw_uid
        for path in [gallery, *state.rglob("*")]:
            assert path.stat().st_uid == owner, path
        assert "Traceback" not in daemon.text()
        events.close()
    finally:
        if daemon is not None:
            daemon.stop()
        _remove_user(PLAIN_USER)
