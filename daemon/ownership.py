"""Files the CLI writes for the service are the service's: owned like the folder they land in.

`sudo facewatch gallery add /var/lib/facewatch/gallery.yaml ...` runs as root, but the daemon
that must read (and, through its API, replace) the gallery runs as the `facewatch` user.  A
file root made there with root's owner and a 0600 mode would stop the service at its next
start (exit 3).  So what a command writes next to the service's files takes their owner:

- a file it replaces keeps the replaced file's owner, group and mode;
- a new file takes its folder's owner and group, and the folder's read and write bits
  (0700 → 0600, 0750 → 0640, 0755 → 0644): whoever may enter the folder may read it;
- a new folder takes its parent's owner, group and mode.

Owners change only when this process is root (no one else can give a file away); modes
always follow the rules above.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Ownership:
    uid: int
    gid: int
    mode: int  # permission bits only

    @classmethod
    def of(cls, path: Path) -> Ownership:
        st = path.stat()
        return cls(st.st_uid, st.st_gid, st.st_mode & 0o777)

    @classmethod
    def for_new_file_in(cls, folder: Path) -> Ownership:
        """What a new file in `folder` should be: the folder's owner, its read/write bits."""
        st = folder.stat()
        return cls(st.st_uid, st.st_gid, st.st_mode & 0o666)

    def apply(self, path: Path) -> None:
        """Give `path` this owner (when root) and mode; a failure is logged, never raised:
        the file is written either way, and `config check` / the daemon name what it cannot
        read."""
        try:
            if os.geteuid() == 0:
                st = path.lstat()
                if (st.st_uid, st.st_gid) != (self.uid, self.gid):
                    os.chown(path, self.uid, self.gid, follow_symlinks=False)
            os.chmod(path, self.mode)
        except OSError as exc:
            log.warning("%s: cannot give it the owner and mode of its folder (%s)", path,
                        exc.strerror or exc)


def nearest_existing(path: Path) -> Path:
    """`path` or the nearest folder above it that exists."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def make_folders(folder: Path, mode: int | None = None) -> None:
    """`mkdir -p folder`; each folder made takes its parent's owner and group, and `mode` (or
    the parent's mode).  Raises OSError as mkdir does."""
    missing: list[Path] = []
    at = folder
    while not at.exists() and at != at.parent:
        missing.append(at)
        at = at.parent
    for made in reversed(missing):
        parent = Ownership.of(made.parent)
        made.mkdir(mode=0o700, exist_ok=True)
        Ownership(parent.uid, parent.gid, parent.mode if mode is None else mode).apply(made)


def hand_over(path: Path) -> None:
    """A file this process just created: give it the owner and group of its folder (when
    root), keeping the mode it was made with.  For the caches a command shares with the
    daemon (their 0600 modes are chosen where they are made)."""
    try:
        folder = Ownership.of(path.parent)
        Ownership(folder.uid, folder.gid, path.stat().st_mode & 0o777).apply(path)
    except OSError as exc:
        log.warning("%s: cannot give it its folder's owner (%s)", path, exc.strerror or exc)
