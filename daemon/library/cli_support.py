"""What `facewatch faces` and `facewatch clusters` share: finding the library and the gallery
(from the daemon's config, or given directly), times on the command line, faces as JSON."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

from facewatch.errors import BadInputError
from facewatch.library.clusters import ClusterSettings, settings_for
from facewatch.library.sqlite_store import DB_FILE, SqliteLibrary
from facewatch.library.store import Cluster, Face
from facewatch.library.writer import library_dir

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def add_location_options(p: argparse.ArgumentParser, gallery: bool = False) -> None:
    g = p.add_argument_group("where")
    g.add_argument("--config", type=Path, metavar="FILE",
                   help="the daemon's config: its state_dir, gallery and models are used")
    g.add_argument("--state-dir", type=Path, metavar="DIR",
                   help="the daemon's state folder (default: the config's, else $STATE_DIRECTORY, "
                        "else the per-user state folder); the library is DIR/library")
    if gallery:
        g.add_argument("--gallery", type=Path, metavar="G",
                       help="the gallery YAML to edit (default: the config's)")


@dataclass
class Location:
    library: Path
    gallery: Path | None
    gallery_state: Path | None  # where the gallery's cache lives (the daemon's, if known)
    config: Any  # the resolved DaemonConfig, or None
    clusters: ClusterSettings
    max_age_s: float
    max_faces: int


def locate(args: argparse.Namespace) -> Location:
    from facewatch.config.resolve import default_config_path, gallery_cache_dir

    config = None
    config_file = getattr(args, "config", None)
    if config_file is None and args.state_dir is None:
        # the config `facewatch run` would use: `sudo facewatch clusters list` finds the
        # service's (/etc/facewatch/config.yaml), a user their own
        found = default_config_path()
        config_file = found if found is not None and found.is_file() else None
    if config_file is not None:
        from facewatch.config import load_resolved

        config = load_resolved(config_file)
    if args.state_dir is not None:
        state = args.state_dir
    elif config is not None and config.state_dir is not None:
        state = Path(config.state_dir)
    elif os.environ.get("STATE_DIRECTORY"):
        state = Path(os.environ["STATE_DIRECTORY"].split(":")[0])
    else:
        state = platformdirs.user_state_path("facewatch")
    gallery = getattr(args, "gallery", None)
    gallery_state = None
    if gallery is None and config is not None and config.state_dir is not None:
        gallery = config.gallery_path
        gallery_state = gallery_cache_dir(Path(config.state_dir))  # the daemon's cache
    if gallery is not None and gallery_state is None:
        gallery_state = gallery_cache_dir(state)  # as the daemon with this state folder keeps it
    threshold = config.recognition.threshold if config is not None else None
    lib = config.library if config is not None else None
    clusters = settings_for(lib.cluster_threshold if lib else None, threshold)
    if lib is None:
        from facewatch.config.library import LibraryConfig

        lib = LibraryConfig()
    return Location(library_dir(state), gallery, gallery_state, config, clusters,
                    lib.max_age_days * 86400.0, lib.max_faces)


def open_library(where: Location) -> SqliteLibrary:
    if not (where.library / DB_FILE).is_file():
        raise BadInputError(f"{where.library}: no face library here (the daemon creates it with "
                            f"library.enabled; point --config or --state-dir at its state folder)")
    return SqliteLibrary(where.library, max_age_s=where.max_age_s, max_faces=where.max_faces)


def parse_time(text: str, now: float | None = None) -> float:
    """A Unix time, an ISO 8601 date/time (local time unless it says), or an age such as 90m,
    2h, 3d, 1w (that long ago)."""
    now = time.time() if now is None else now
    value = text.strip()
    m = _RELATIVE.match(value)
    if m:
        return now - float(m.group(1)) * _UNIT_S[m.group(2)]
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise BadInputError(f"{text!r}: not a time (use e.g. 2h, 3d, 2025-06-01 or "
                            f"2025-06-01T18:30)") from None
    if when.tzinfo is None:
        when = when.astimezone()  # the machine's local time
    return when.timestamp()


def iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts).astimezone().isoformat(timespec="seconds")


def face_dict(face: Face) -> dict[str, Any]:
    return {"id": face.id, "camera": face.camera, "track_id": face.track_id,
            "first_ts": face.first_ts, "last_ts": face.last_ts, "first_seen": iso(face.first_ts),
            "last_seen": iso(face.last_ts), "status": face.status, "person_id": face.person_id,
            "name": face.name, "score": round(face.score, 4), "nearest_id": face.nearest_id,
            "group": face.cluster_id, "assigned_to": face.assigned_to,
            "quality": round(face.quality, 3), "views": face.views, "crop": str(face.crop),
            "snapshot": str(face.snapshot) if face.snapshot else None,
            "embedder": face.embedder}


def face_line(face: Face) -> str:
    who = face.name or face.person_id if face.person_id else "unknown"
    extra = f" -> {face.assigned_to}" if face.assigned_to else ""
    group = f" group {face.cluster_id}" if face.cluster_id is not None else ""
    return (f"{face.id:>7} {iso(face.last_ts)} {face.camera:12s} {who}{extra} "
            f"({face.score:.2f}){group}")


def cluster_dict(c: Cluster) -> dict[str, Any]:
    return {"id": c.id, "size": c.size, "first_ts": c.first_ts, "last_ts": c.last_ts,
            "first_seen": iso(c.first_ts), "last_seen": iso(c.last_ts), "cameras": list(c.cameras),
            "dismissed": c.dismissed, "assigned_to": c.assigned_to, "embedder": c.embedder}


def cluster_line(c: Cluster) -> str:
    state = " dismissed" if c.dismissed else ""
    state += f" -> {c.assigned_to}" if c.assigned_to else ""
    return (f"{c.id:>6} {c.size:>5} faces  {iso(c.first_ts)} .. {iso(c.last_ts)}  "
            f"{','.join(c.cameras)}{state}")
