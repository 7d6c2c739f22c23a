"""Text that is safe to show on a terminal, whatever names it holds.

File names are bytes: on Linux they may be any bytes but `/` and NUL, so a name may be
invalid UTF-8 (Python holds such bytes as lone surrogates, "\\udce9") or hold control
characters (an escape sequence that recolours or clears the terminal, a newline that forges
a second line).  `printable()` shows each such character as a backslash escape, as
`ls --quoting-style=escape` and Python's repr() do, and leaves every other character as it is.
"""

from __future__ import annotations

import re

# C0 and C1 controls, DEL, bidirectional overrides and isolates (which reorder what follows
# them on screen), and lone surrogates (undecodable bytes of a file name).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(text: str) -> str:
    """`text` with control characters and undecodable bytes escaped: "caf\\xe9.jpg"."""
    return _UNSAFE.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    ch = match.group()
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8, as os.fsdecode keeps it
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
