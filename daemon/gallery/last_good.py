"""The last gallery that loaded, remembered in the daemon's state, for when the file breaks.

A bad edit of the gallery YAML keeps the running gallery (the watcher only swaps in a gallery
that loaded).  The inference process can also start again while the file is broken -- after
a crash, a SIGHUP that changed its settings, or a restart of the daemon by systemd -- and
must not then forget everyone, nor crash in a loop: it starts from the spec remembered here
(people, names, photo paths) and the photos' cached analyses, and says so.

The file is JSON (0600) in the gallery's state folder; it holds names and paths, no images.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import typing
from pathlib import Path
from typing import Any

from facewatch.gallery.spec import GallerySpec, PersonSpec

log = logging.getLogger(__name__)

FILE_NAME = "last-good-gallery.json"
_VERSION = 1


def remember(spec: GallerySpec, state: Path) -> None:
    """Write `spec` as the last good gallery; a failure is logged, never raised."""
    data = {"version": _VERSION, "source": str(spec.source), "threshold": spec.threshold,
            "people": [_plain(dataclasses.asdict(p)) for p in spec.people]}
    path = state / FILE_NAME
    tmp = path.with_suffix(".tmp")
    try:
        state.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, default=str)
        tmp.replace(path)
    except OSError as exc:
        log.warning("%s: cannot remember the gallery (%s)", path, exc.strerror or exc)


def recall(state: Path) -> GallerySpec | None:
    """The last good gallery's spec, or None if none was remembered (or it is unreadable)."""
    path = state / FILE_NAME
    try:
        data = json.loads(path.read_text())
        if data.get("version") != _VERSION:
            return None
        people = tuple(_person(p) for p in data["people"])
        return GallerySpec(Path(data["source"]), people, data.get("threshold"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("%s: unreadable (%s); no last good gallery", path, exc)
        return None


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _person(data: dict[str, Any]) -> PersonSpec:
    """Fields typed as paths (or tuples of paths) become paths again."""
    hints = typing.get_type_hints(PersonSpec)
    fields = {}
    for f in dataclasses.fields(PersonSpec):
        if f.name not in data:
            continue  # a field added since: its default applies
        value = data[f.name]
        hint = hints[f.name]
        if hint == tuple[Path, ...]:
            value = tuple(Path(v) for v in value)
        elif hint is Path:
            value = Path(value)
        fields[f.name] = value
    return PersonSpec(**fields)
