"""A JSON-lines file: one event per line, appended and written through at once.

The file is created 0600 and missing folders 0700: events name people.  Each line goes out in
one `write()` on an O_APPEND descriptor, so lines are whole even if another writer appends.
Before each event the path is checked against the open file, so when logrotate moves the file
away (`create` mode) the next event starts a new file; `copytruncate` works as is.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from facewatch.events import Event, to_json
from facewatch.publishers.base import PublisherError

log = logging.getLogger(__name__)


class JsonlPublisher:
    name = "jsonl"
    acknowledges = False

    def __init__(self, path: Path, *, fsync: bool = False) -> None:
        """`fsync` also forces each line to disk (slower; survives power loss, not just a crash)."""
        self.path = path
        self.fsync = fsync
        self._started = False
        self._fd: int | None = None
        self._identity: tuple[int, int] | None = None  # (st_dev, st_ino) of the open file

    def start(self) -> None:
        if not self._started:
            self._open()
            self._started = True
            log.info("appending events to %s", self.path)

    def publish(self, event: Event) -> None:
        if not self._started:
            raise PublisherError("the JSON-lines publisher is not started")
        line = to_json(event) + b"\n"
        if self._rotated():
            self._close()
        if self._fd is None:
            self._open()
        assert self._fd is not None
        try:
            written = os.write(self._fd, line)
            while written < len(line):  # only on a full disk or a signal, in practice
                written += os.write(self._fd, line[written:])
            if self.fsync:
                os.fsync(self._fd)
        except OSError as exc:
            self._close()  # reopened on the next event, which may find space again
            raise PublisherError(f"{self.path}: cannot write ({exc.strerror})") from None

    def stop(self) -> None:
        self._close()
        self._started = False

    def _rotated(self) -> bool:
        if self._fd is None:
            return False
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return True
        except OSError:
            return False
        return (st.st_dev, st.st_ino) != self._identity

    def _open(self) -> None:
        try:
            self._make_parents(self.path.parent)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise PublisherError(f"{self.path}: cannot open for appending ({exc.strerror})") from None
        st = os.fstat(fd)
        if st.st_mode & 0o077 and st.st_uid == os.geteuid():
            os.fchmod(fd, 0o600)  # an older file, or one created by logrotate with wider rights
        self._fd, self._identity = fd, (st.st_dev, st.st_ino)

    @staticmethod
    def _make_parents(folder: Path) -> None:
        missing = []
        while not folder.exists():
            missing.append(folder)
            folder = folder.parent
        for created in reversed(missing):
            created.mkdir(mode=0o700, exist_ok=True)
            os.chmod(created, 0o700)  # mkdir's mode is reduced by the umask

    def _close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass
