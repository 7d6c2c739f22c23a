"""Camera URLs: what kind of source a URL names, whether it is usable, and how to print it safely.

Validation here only checks the text (no network, no file system): a missing file or an
unreachable camera is a runtime condition that the reader reports and retries.
"""

from __future__ import annotations

import re
from enum import Enum
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from facewatch.errors import ConfigError


class SourceKind(Enum):
    RTSP = "rtsp"
    HTTP = "http"
    FILE = "file"
    DEVICE = "device"

    @property
    def is_live(self) -> bool:
        """Whether frames arrive at the source's own pace (a camera), rather than on demand (a file)."""
        return self in (SourceKind.RTSP, SourceKind.DEVICE)


_RTSP_SCHEMES = ("rtsp", "rtsps", "rtspt")
_HTTP_SCHEMES = ("http", "https")
# V4L2 device nodes, including udev's stable names under /dev/v4l/by-id and by-path.
_DEVICE = re.compile(r"^/dev/(video\d+|v4l/.+)$")
# Parameters that cameras commonly use for credentials: in the query (`?user=admin&pwd=x`),
# separated by `;` (`realmonitor?channel=1;password=x`), or in the path itself
# (`/user=admin;password=x;channel=1`).  The value runs to the next separator.
SECRET_PARAMETER = re.compile(
    r"(?P<head>[?&;/][^=&;\s#/?]*(?:pass|pwd|token|secret|key|auth|sig|credential)[^=&;\s#/?]*=)"
    r"(?P<value>[^&;\s#'\"]*)", re.IGNORECASE)


def classify_url(url: str) -> SourceKind:
    """The kind of source `url` names; raises `ConfigError` (one line, password redacted) if unusable."""
    return _check(url)


def validate_url(url: str) -> str:
    """`url` unchanged when usable; otherwise `ConfigError` with a one-line reason."""
    _check(url)
    return url


def file_path(url: str) -> Path:
    """The local path of a file or device URL (`file:///a/b.mp4`, `/a/b.mp4`, `b.mp4`, `/dev/video0`)."""
    if url.startswith("file:"):
        return Path(unquote(urlsplit(url).path))
    return Path(url)


def without_credentials(url: str) -> tuple[str, str | None, str | None]:
    """`url` with its user info removed, plus the decoded user and password.

    GStreamer's rtspsrc takes credentials as properties; keeping them out of `location`
    keeps them out of GStreamer's own debug logs and error messages.
    """
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None, None
    host = parts.netloc.rpartition("@")[2]
    bare = parts._replace(netloc=host).geturl()
    user = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    return bare, user, password


def redact_url(url: str) -> str:
    """`url` with any password replaced by `***`: `rtsp://user:***@host/path`; a user part
    without a password may be an access token and is hidden whole (`rtsp://***@host/path`),
    as are secret-looking parameters (`pwd=***`, `;password=***`).

    Never raises, also on malformed input: it is used in error messages about bad URLs.
    The user info is taken up to the *last* `@` because camera passwords often contain an
    unescaped `@`; when in doubt this redacts too much rather than too little.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    at = rest.rfind("@")
    if at >= 0:
        userinfo = rest[:at]
        if ":" in userinfo:
            rest = userinfo.split(":", 1)[0] + ":***@" + rest[at + 1 :]
        elif userinfo and not any(ch in userinfo for ch in "/?#"):  # else: an @ after the host
            rest = "***@" + rest[at + 1 :]
    return f"{scheme}://{SECRET_PARAMETER.sub(_mask_value, rest)}"


def url_secrets(url: str) -> list[str]:
    """Every secret written in `url`, decoded: the password, or the whole user part when there
    is no password (an access token), and the values of secret-looking parameters."""
    _, user, password = without_credentials(url)
    found = [password] if password else [user] if user else []
    for match in SECRET_PARAMETER.finditer(url.partition("://")[2]):
        value = match.group("value").split("#", 1)[0]
        found.append(unquote(value))
        found.append(value)
    return [s for s in dict.fromkeys(found) if s]


def scrub(text: str, url: str) -> str:
    """`text` (a decoder's message, a status reason) with `url` shown redacted and its password,
    decoded or percent-encoded, replaced by `***` wherever else it appears."""
    text = text.replace(url, redact_url(url))
    forms = {form for secret in url_secrets(url) for form in (secret, quote(secret, safe=""))}
    forms.add(url_password(url) or "")
    for form in sorted(forms, key=len, reverse=True):
        if form:
            text = text.replace(form, "***")
    return text


def url_password(url: str) -> str | None:
    """The password of `url` as written in it (still percent-encoded), if any."""
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def _mask_value(match: re.Match[str]) -> str:
    return f"{match.group('head')}***"


def _check(url: str) -> SourceKind:
    shown = redact_url(url)
    if not url.strip():
        raise ConfigError("stream url is empty: give an rtsp:// or http(s):// URL, a file path or /dev/videoN")
    if any(ch.isspace() or ord(ch) < 0x20 for ch in url):
        raise ConfigError(f"stream url {shown!r} contains whitespace or control characters: percent-encode them")
    if _DEVICE.fullmatch(url):
        return SourceKind.DEVICE
    if "://" not in url:
        if url.startswith("/dev/"):
            raise ConfigError(f"stream url {shown!r}: only V4L2 devices (/dev/videoN, /dev/v4l/...) are supported")
        return SourceKind.FILE
    try:
        parts = urlsplit(url)
        port = parts.port  # parses lazily: a bad port raises here
    except ValueError as exc:
        raise ConfigError(f"stream url {shown!r} is malformed ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ConfigError(f"stream url {shown!r}: file URLs must be local (file:///path)")
        if not parts.path or parts.path == "/":
            raise ConfigError(f"stream url {shown!r} names no file")
        return SourceKind.FILE
    if scheme in _RTSP_SCHEMES or scheme in _HTTP_SCHEMES:
        if not parts.hostname:
            raise ConfigError(f"stream url {shown!r} has no host")
        if port == 0:
            raise ConfigError(f"stream url {shown!r}: port 0 is not a valid port")
        return SourceKind.RTSP if scheme in _RTSP_SCHEMES else SourceKind.HTTP
    raise ConfigError(
        f"stream url {shown!r}: unsupported scheme {parts.scheme!r}; "
        "use rtsp://, http(s)://, file://, a path or /dev/videoN")
