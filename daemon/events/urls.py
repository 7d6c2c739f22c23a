"""Links to a track's face images on the daemon's HTTP API, carried by events.

    GET <base>/api/tracks/<track_id>/snapshot[?sig=...]   the snapshot (the face in context)
    GET <base>/api/tracks/<track_id>/crop[?sig=...]       the aligned 112x112 face

`<base>` is `api.public_url`, else `http://<api.bind>:<api.port>` when the API is bound to an
address others can reach (the machine's host name for 0.0.0.0 or ::); with the API on loopback
and no public_url there is no link: nobody else could open it.

A link must open without a header: a phone notification or Home Assistant fetches it as a plain
URL.  When the API has a token, each link carries `sig`, an HMAC of its path under a key derived
from the token: it opens that one image and nothing else, and never reveals the token (which
edits the gallery).  Rotating the token invalidates every link handed out.

The routes are `facewatch.api.routes.track_media`; track ids are known when an event is made,
face ids of the library only once the track has been stored, hence links by track.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import ipaddress
import socket
from dataclasses import dataclass, field
from typing import Literal

from facewatch.config.api import ApiConfig
from facewatch.config.daemon import DaemonConfig
from facewatch.config.outputs import is_loopback_host
from facewatch.events.schema import Event, FaceRecognized, FaceUnknown, TrackEnded

MediaKind = Literal["snapshot", "crop"]
MEDIA_KINDS: tuple[MediaKind, ...] = ("snapshot", "crop")
# 128 bits of HMAC-SHA256, as hex: unguessable, and short enough for a notification's payload.
SIGNATURE_CHARS = 32
_KEY_LABEL = b"facewatch media links v1"


def media_path(track_id: int, kind: MediaKind) -> str:
    return f"/api/tracks/{int(track_id)}/{kind}"


def _key(token: str) -> bytes:
    # A key of its own, so that a signature says nothing about the token itself.
    return hmac.new(token.encode(), _KEY_LABEL, hashlib.sha256).digest()


def sign(token: str, path: str) -> str:
    """The `sig` that opens `path` (e.g. /api/tracks/3/snapshot) for holders of no token."""
    return hmac.new(_key(token), path.encode(), hashlib.sha256).hexdigest()[:SIGNATURE_CHARS]


def signature_valid(token: str, path: str, sig: str) -> bool:
    return hmac.compare_digest(sign(token, path).encode(), sig.strip().lower().encode("ascii", "replace"))


def api_base_url(api: ApiConfig, hostname: str | None = None) -> str | None:
    """Where others reach the API, or None if they cannot (off, or on loopback without
    public_url).  `hostname` stands for the machine's name when bound to every address."""
    if not api.enabled:
        return None
    if api.public_url:
        return api.public_url
    if is_loopback_host(api.bind):
        return None
    address = ipaddress.ip_address(api.bind)  # validated: an IP address, or localhost
    if address.is_unspecified:
        host = hostname if hostname is not None else socket.gethostname()
    else:
        host = f"[{address}]" if address.version == 6 else str(address)
    return f"http://{host}:{api.port}"


@dataclass(frozen=True)
class MediaLinks:
    """Makes the links events carry; `token` is the API's (None: links need no signature)."""

    base: str
    token: str | None = field(default=None, repr=False)
    crops: bool = True  # the face library keeps crops (library.enabled)

    def url(self, track_id: int, kind: MediaKind) -> str:
        path = media_path(track_id, kind)
        if self.token is None:
            return f"{self.base}{path}"
        return f"{self.base}{path}?sig={sign(self.token, path)}"

    def add_to(self, event: Event) -> Event:
        """`event` with its snapshot_url and crop_url, if it names a snapshot; else as it is.

        A track without a snapshot (snapshots off, a disk that refused it, or a track that
        ended before it was ever embedded) gets no links: nothing would answer them."""
        if not isinstance(event, (FaceRecognized, FaceUnknown, TrackEnded)) or event.snapshot is None:
            return event
        return dataclasses.replace(
            event, snapshot_url=self.url(event.track_id, "snapshot"),
            crop_url=self.url(event.track_id, "crop") if self.crops else None)


def media_links(config: DaemonConfig, hostname: str | None = None) -> MediaLinks | None:
    """The links for a resolved config's events; None when the API cannot be reached."""
    base = api_base_url(config.api, hostname)
    if base is None:
        return None
    token = config.api.token.get_secret_value() if config.api.token is not None else None
    return MediaLinks(base, token or None, crops=config.library.enabled)
