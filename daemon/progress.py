"""Progress bars for long work (a gallery build, `identify` on many photos, a download):
on stderr, only when stderr is a terminal, and never under `--json`, whose callers read
stdout and often log stderr."""

from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm

_quiet = False


def set_quiet(quiet: bool) -> None:
    """No progress bar from this process at all (`--json`)."""
    global _quiet
    _quiet = quiet


def shown() -> bool:
    return not _quiet and sys.stderr.isatty()


def progress_bar(total: int | None, desc: str, unit: str = "img", **kwargs: Any) -> Any:
    """A tqdm bar, or one that does nothing where no bar should show."""
    return tqdm(total=total, desc=desc, unit=unit, disable=not shown(), file=sys.stderr,
                leave=False, **kwargs)
