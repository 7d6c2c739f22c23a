"""How a command finds the running daemon of a config, to reload it after an edit.

The supervisor writes `<state_dir>/facewatch.pid` when it starts (its pid and the config file
it runs) and removes it when it stops.  `facewatch cameras add|remove` resolve the same
config to the same state folder, check that the pid is still a facewatch process running that
config, and send it SIGHUP, as `systemctl reload facewatch` does.
"""

from __future__ import annotations

import json
import logging
import os
import signal
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

FILE_NAME = "facewatch.pid"


@dataclass(frozen=True)
class RunningDaemon:
    pid: int
    config: Path


def write_pid_file(state_dir: Path, config: Path | None) -> Path | None:
    """Record this process as the daemon of `config`; a failure is logged (reloading by hand
    still works)."""
    path = state_dir / FILE_NAME
    tmp = path.with_name(f".{FILE_NAME}.tmp")
    data = {"pid": os.getpid(), "config": os.path.abspath(config) if config else None}
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
        tmp.replace(path)
    except OSError as exc:
        log.warning("%s: cannot write the pid file (%s); `facewatch cameras` will not find "
                    "this daemon to reload it", path, exc.strerror or exc)
        return None
    return path


def remove_pid_file(path: Path | None) -> None:
    if path is None:
        return
    try:
        data = json.loads(path.read_text())
        if data.get("pid") == os.getpid():  # not a newer daemon's
            path.unlink()
    except (OSError, ValueError, AttributeError):
        pass


def find_daemon(state_dir: Path, config: Path) -> RunningDaemon | None:
    """The daemon running `config` with this state folder, if one is."""
    try:
        data = json.loads((state_dir / FILE_NAME).read_text())
        pid, recorded = int(data["pid"]), data["config"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if recorded is None or not _same_file(Path(recorded), config) or not _is_facewatch(pid):
        return None
    return RunningDaemon(pid, Path(recorded))


def reload_daemon(daemon: RunningDaemon) -> None:
    """SIGHUP: the daemon re-reads its config and gallery.  PermissionError if the daemon is
    another user's."""
    os.kill(daemon.pid, signal.SIGHUP)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def _is_facewatch(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"facewatch" in cmdline and b"run" in cmdline.split(b"\0")
