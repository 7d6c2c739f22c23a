"""Every published event, handed to the daemon's own `api` process (the review page's live
view and the cameras' state).  A viewer: when it does not keep up, events are dropped for it
(and counted), never held back from the other transports.

The cameras' latest camera.status is also kept in a small file (`cameras.json` in the runtime
folder, written on each change): an api process that starts (or restarts) after its cameras
came online learns their state from it, since camera.status is only sent on a change.
"""

from __future__ import annotations

import json
import queue
from pathlib import Path
from typing import Any

from facewatch.events import CameraStatus, Event, to_dict

CAMERAS_FILE = "cameras.json"


class ApiFeed:
    name = "api"
    acknowledges = False

    def __init__(self, channel: Any, state_path: Path | None = None) -> None:
        self.channel = channel
        self.state_path = state_path
        self.dropped = 0
        self._cameras: dict[str, dict[str, Any]] = {}

    def start(self) -> None:
        pass

    def publish(self, event: Event) -> None:
        if isinstance(event, CameraStatus):
            self._cameras[event.camera] = to_dict(event)
            self._write_state()
        try:
            self.channel.put_nowait(event)
        except queue.Full:
            self.dropped += 1

    def stop(self) -> None:
        pass

    def _write_state(self) -> None:
        if self.state_path is None:
            return
        tmp = self.state_path.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps(self._cameras))
            tmp.replace(self.state_path)
        except OSError:
            pass  # the live feed still carries every change


def read_camera_states(path: Path) -> list[CameraStatus]:
    """What `ApiFeed` last wrote; [] if nothing (yet) or unreadable."""
    from facewatch.events import EventFormatError, from_dict

    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    out = []
    for item in data.values() if isinstance(data, dict) else []:
        try:
            event = from_dict(item)
        except EventFormatError:
            continue
        if isinstance(event, CameraStatus):
            out.append(event)
    return out
