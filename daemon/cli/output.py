"""How every subcommand reports: one JSON document on stdout with --json, text otherwise.

Logs and progress bars always go to stderr, so `--json` output can be piped straight into jq.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import numpy as np


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
    if as_json:
        sys.stdout.write(json.dumps(document, default=_default) + "\n")
    else:
        lines = [text] if isinstance(text, str) else text
        for line in lines:
            sys.stdout.write(line + "\n")
    sys.stdout.flush()


def warn(message: str) -> None:
    sys.stderr.write(f"facewatch: warning: {message}\n")
    sys.stderr.flush()


def rounded(values: Any, digits: int = 2) -> Any:
    """Round floats in nested lists for readable JSON (coordinates do not need 7 digits)."""
    arr = np.asarray(values, dtype=np.float64)
    return np.round(arr, digits).tolist()
