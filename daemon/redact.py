"""Keep credentials out of everything the daemon writes for people: logs, stderr, event text.

Camera URLs carry passwords (`rtsp://user:pass@cam/stream`), and so do the messages of every
library that echoes a URL.  Redaction happens at the source where we build a message
(`facewatch.streams.urls.redact_url`, `StreamSettings.shown_url`), and, because no source can
vouch for a C library's text, once more at the two places everything passes on its way out:

- `RedactingFilter`, on the supervisor's log handlers.  Children log through a QueueHandler to
  the supervisor, whose listener hands their records to these same handlers, so one filter
  covers every process.
- `route_stderr()`, for `facewatch run`: file descriptor 2 of the supervisor, inherited by
  every child, becomes a pipe read by a thread that redacts each line before it reaches the
  real stderr (the journal).  FFmpeg, OpenCV and GStreamer print warnings there from C, past
  Python's logging.

`redact()` replaces, anywhere in a text:
- the password of `scheme://user:password@`, up to the last `@` before the path, because
  camera passwords often hold an unescaped `@` or `:` (too much rather than too little);
- the whole user part of `scheme://user@` when it has no password: cameras and relays take
  access tokens there (`rtsp://TOKEN@host/...`);
- secret-looking parameters (`?user=admin&pwd=...`, `;password=...`, `/password=...`), as
  `redact_url` does;
- every secret `remember()`ed, as written and percent-encoded: `resolve()` remembers each
  password it reads (MQTT, camera URLs), so even a library that prints the bare password is
  caught.  Secrets shorter than `MIN_SECRET_LENGTH` are not remembered (replacing every "ab"
  in the logs would garble them); the URL patterns above still hide them in URLs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import select
import sys
import threading
from collections.abc import Callable, Iterable
from urllib.parse import quote

from facewatch.printable import printable
from facewatch.streams.urls import SECRET_PARAMETER

MASK = "***"
MIN_SECRET_LENGTH = 4

# scheme://user:password@ — the password runs to the last `@` before whitespace or `/`.
_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s/:@]*):(?P<password>[^\s/]*)@")
# scheme://token@ — a user part without a password, to the last `@` before whitespace or `/`.
_USER_ONLY = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://)[^\s/:?#]+@")

_secrets: set[str] = set()
_secrets_lock = threading.Lock()
_secret_pattern: re.Pattern[str] | None = None


def remember(secret: str | None) -> None:
    """Hide `secret` (and its percent-encoded form) wherever it appears from now on, in this process."""
    global _secret_pattern
    if not secret or len(secret) < MIN_SECRET_LENGTH:
        return
    with _secrets_lock:
        before = len(_secrets)
        _secrets.update({secret, quote(secret, safe=""), quote(secret, safe="!$&'()*+,;=")})
        if len(_secrets) != before:
            # Longest first, so that a secret containing another is replaced whole.
            ordered = sorted(_secrets, key=len, reverse=True)
            _secret_pattern = re.compile("|".join(re.escape(s) for s in ordered))


def forget_all() -> None:
    """Drop every remembered secret (for tests)."""
    global _secret_pattern
    with _secrets_lock:
        _secrets.clear()
        _secret_pattern = None


def redact(text: str) -> str:
    """`text` with credentials replaced by `***` (see the module docstring); idempotent."""
    if "://" in text:
        text = _USERINFO.sub(_mask_password, text)
        text = _USER_ONLY.sub(lambda m: f"{m.group('head')}{MASK}@", text)
    if "=" in text:
        text = SECRET_PARAMETER.sub(lambda m: f"{m.group('head')}{MASK}", text)
    pattern = _secret_pattern
    if pattern is not None:
        text = pattern.sub(MASK, text)
    return text


def _mask_password(match: re.Match[str]) -> str:
    return f"{match.group('head')}:{MASK}@"


class RedactingFilter(logging.Filter):
    """Redacts a record's message, traceback and stack before any handler formats it, and
    escapes control characters in the message (a file or camera name with an escape sequence
    or a newline in it must neither drive the terminal nor forge a second log line).

    On a handler, it sees the records of the supervisor and, through the queue listener, of
    every child; the record is changed in place, so every handler gets the redacted text.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string: the handler reports it as usual
            return True
        clean = printable(redact(message))
        if clean != message or record.args:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def install_filter(handlers: Iterable[logging.Handler]) -> None:
    """Add one `RedactingFilter` to each handler that has none yet."""
    for handler in handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())


# -- stderr ----------------------------------------------------------------------------------

# A partial line is held this long for its end before it is written as it is.
_PARTIAL_WAIT_S = 0.5
_MAX_LINE = 64 * 1024


def route_stderr() -> Callable[[], None]:
    """Send this process's fd 2 (and that of every process it starts) through a redacting thread.

    Returns the function that undoes it: it puts the real stderr back and writes out what the
    thread still holds.  Children still running then keep writing to the pipe until they exit;
    the thread ends when the last of them has closed it, or gives up after a moment.
    """
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    real = os.dup(2)
    read_fd, write_fd = os.pipe()
    os.set_inheritable(real, False)
    os.set_inheritable(read_fd, False)
    os.dup2(write_fd, 2)  # inheritable: children (spawned) share it as their stderr
    os.close(write_fd)
    thread = threading.Thread(target=_relay, args=(read_fd, real), name="stderr-redact",
                              daemon=True)
    thread.start()

    def restore() -> None:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os.dup2(real, 2)  # closes our end of the pipe
        thread.join(2.0)
        if not thread.is_alive():
            os.close(real)

    return restore


def _relay(read_fd: int, out_fd: int) -> None:
    pending = b""
    try:
        while True:
            ready, _, _ = select.select([read_fd], [], [], _PARTIAL_WAIT_S if pending else None)
            if not ready:  # a partial line that did not end: write it as it is
                _write(out_fd, pending)
                pending = b""
                continue
            chunk = os.read(read_fd, 65536)
            if not chunk:
                break
            pending += chunk
            lines, sep, pending = pending.rpartition(b"\n")
            if sep:
                _write(out_fd, lines + sep)
            if len(pending) > _MAX_LINE:
                _write(out_fd, pending)
                pending = b""
    except OSError:
        pass
    finally:
        if pending:
            _write(out_fd, pending)
        os.close(read_fd)


def _write(fd: int, data: bytes) -> None:
    text = redact(data.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")
    with contextlib.suppress(OSError):
        while text:
            text = text[os.write(fd, text):]
