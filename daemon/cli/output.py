"""How every subcommand reports: one JSON document on stdout with --json, text otherwise.

Logs and progress bars always go to stderr, so `--json` output can be piped straight into jq.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import numpy as np

from facewatch.printable import printable


def _default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if hasattr(obj, "__fspath__"):
        return str(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__}")


def emit(as_json: bool, document: dict[str, Any], text: str | list[str]) -> None:
    """`document` as one JSON line (ASCII: file names that are not UTF-8 keep their bytes as
    \\udcXX escapes), or the text lines, each shown by `say`."""
    if as_json:
        sys.stdout.write(json.dumps(document, default=_default) + "\n")
    else:
        for line in [text] if isinstance(text, str) else text:
            say(line)
    sys.stdout.flush()


def json_text(document: Any) -> str:
    """`document` as JSON text with non-ASCII characters as they are where stdout can encode
    them, else (a lone surrogate from a `\\udce9` escape, a non-UTF-8 terminal) as escapes."""
    text = json.dumps(document, ensure_ascii=False, default=_default)
    return text if _can_encode(text, sys.stdout) else json.dumps(document, default=_default)


def say(line: str) -> None:
    """One line on stdout, safe for a terminal: control characters and bytes that are not
    UTF-8 (in file names, camera names, event text) are escaped rather than written raw or
    crashing a strict stdout after every result was computed, and characters the terminal's
    encoding lacks become escapes too."""
    sys.stdout.write(_encodable(printable(line), sys.stdout) + "\n")


def warn(message: str) -> None:
    sys.stderr.write(f"facewatch: warning: {_encodable(printable(message), sys.stderr)}\n")
    sys.stderr.flush()


def _can_encode(text: str, stream: Any) -> bool:
    try:
        text.encode(getattr(stream, "encoding", None) or "utf-8")
    except UnicodeEncodeError:
        return False
    except LookupError:  # an encoding Python does not know: let the stream decide
        pass
    return True


def _encodable(text: str, stream: Any) -> str:
    if _can_encode(text, stream):
        return text
    encoding = getattr(stream, "encoding", None) or "utf-8"
    return text.encode(encoding, "backslashreplace").decode(encoding)


def rounded(values: Any, digits: int = 2) -> Any:
    """Round floats in nested lists for readable JSON (coordinates do not need 7 digits)."""
    arr = np.asarray(values, dtype=np.float64)
    return np.round(arr, digits).tolist()
