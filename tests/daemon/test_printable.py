"""Terminal-safe text: file names with undecodable bytes and control characters."""

from __future__ import annotations

import logging
import os

import pytest

from facewatch.printable import printable
from facewatch.redact import RedactingFilter


@pytest.mark.parametrize(("raw", "shown"), [
    (os.fsdecode(b"caf\xe9.jpg"), "caf\\xe9.jpg"),  # Latin-1, not UTF-8
    ("caf\u00e9.jpg", "caf\u00e9.jpg"),  # UTF-8 names are shown as they are
    ("x\x1b[2J.jpg", "x\\x1b[2J.jpg"),  # clear screen
    ("a\nb\rc\td", "a\\nb\\rc\\td"),
    ("\x9b31m", "\\x9b31m"),  # the one-byte CSI
    ("evil\u202egpj.exe", "evil\\u202egpj.exe"),  # right-to-left override
    ("\ud800", "\\ud800"),  # a lone surrogate that is not an escaped byte
])
def test_printable(raw: str, shown: str) -> None:
    assert printable(raw) == shown
    shown.encode("utf-8")  # always encodable


def test_log_messages_are_escaped() -> None:
    """A name with a newline must not forge a second log line."""
    record = logging.LogRecord("facewatch", logging.WARNING, __file__, 1, "skipped %s", (
        "a.jpg\n2024-01-01 00:00:00 INFO facewatch: all good",), None)
    assert RedactingFilter().filter(record)
    assert record.getMessage() == "skipped a.jpg\\n2024-01-01 00:00:00 INFO facewatch: all good"
