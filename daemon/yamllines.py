"""Line-based edits of a YAML block list, shared by the config editor (`cameras remove`) and
the gallery editor (`gallery remove`).

ruamel files the comment lines written above a list item under the end of the item before
it, so deleting items through it deletes the next item's comments.  Cutting lines instead
keeps everything else byte for byte: the comments directly above an item go with it, those
above whatever follows stay.
"""

from __future__ import annotations

from typing import Any


def is_comment_or_blank(line: str) -> bool:
    return not line.strip() or line.lstrip().startswith("#")


def dash_line(lines: list[str], line: int) -> int:
    """The line holding the `- ` that opens the item whose first key is on `line`."""
    while line > 0 and not lines[line].lstrip().startswith("-"):
        line -= 1
    return line


def end_of_block(lines: list[str], data: Any, key: str) -> int:
    """The line of the first top-level key after `key`, or the end of the file."""
    keys = list(data.keys())
    after = keys[keys.index(key) + 1:] if key in keys else []
    if after and hasattr(data, "lc"):
        return int(data.lc.key(after[0])[0])
    return len(lines)


def cut_items(lines: list[str], starts: list[int], found: list[int], end: int) -> list[str]:
    """`lines` without the list items numbered `found`; `starts`: the line of each item's
    first key, `end`: the line after the list."""
    cut: set[int] = set()
    for i in found:
        start = dash_line(lines, starts[i])
        stop = dash_line(lines, starts[i + 1]) if i + 1 < len(starts) else end
        # keep the comments and blank lines directly above whatever follows
        while stop > start and is_comment_or_blank(lines[stop - 1]):
            stop -= 1
        # the comment lines directly above this item (no blank line between) are its own
        while start > 0 and lines[start - 1].strip().startswith("#"):
            start -= 1
        cut.update(range(start, stop))
    return [line for n, line in enumerate(lines) if n not in cut]
