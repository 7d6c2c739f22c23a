"""Edit the daemon's config file for the user (`facewatch cameras add|remove`), keeping every
comment and line of theirs, and save it only if the result is a config `facewatch config
check` accepts.

The edits work on lines, located with ruamel's round-trip parser: ruamel files the comment
lines written below a list's last item (or above the next key) under that item, so adding or
removing items through it moves or deletes the user's comments.  Working on lines keeps the
rest of the file byte for byte.  The file is replaced in one rename, keeping its owner, group
and mode (`facewatch.ownership`): `sudo facewatch cameras add` leaves the service a config it
can still read.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from facewatch.config.daemon import DaemonConfig
from facewatch.errors import ConfigError
from facewatch.ownership import Ownership, make_folders
from facewatch.yamlfile import MAX_YAML_BYTES, parse_yaml, read_small_text
from facewatch.yamllines import cut_items, dash_line, end_of_block, is_comment_or_blank


def example_text() -> str:
    """The example config shipped in the package (every section, cameras as comments)."""
    return resources.files("facewatch.config").joinpath("example.yaml").read_text(encoding="utf-8")


def read_config_text(path: Path) -> str:
    try:
        return read_small_text(path, MAX_YAML_BYTES, "a YAML file")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror or exc})") from None


def _round_trip(text: str, path: Path) -> Any:
    parse_yaml(text, path, ConfigError)  # the loader's one-line errors first
    try:
        return YAML().load(text)
    except (YAMLError, RecursionError) as exc:
        raise ConfigError(" ".join(f"{path}: cannot edit ({exc})".split())) from None


def list_items(text: str, path: Path, key: str) -> list[Any]:
    """The items of the top-level list `key` (empty if absent or empty)."""
    data = _round_trip(text, path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError(f"{path}: `{key}:` must be a list")
    return list(value)


def append_list_item(text: str, path: Path, key: str, item: dict[str, Any]) -> str:
    """`text` with `item` added at the end of the top-level list `key` (created if absent)."""
    data = _round_trip(text, path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    value: Any = data.get(key)
    if key not in data:
        block = yaml.safe_dump({key: [item]}, sort_keys=False, default_flow_style=False)
        return "".join(lines) + ("\n" if lines and lines[-1].strip() else "") + block
    if value is not None and not isinstance(value, list):
        raise ConfigError(f"{path}: `{key}:` must be a list")
    rt: Any = data  # ruamel's round-trip map: it knows the lines of its keys
    key_line = int(rt.lc.key(key)[0])
    if not value or _rt(value).fa.flow_style():
        # `cameras:` with nothing under it yet, or `cameras: []`: the items as a block
        items = list(value or []) + [item]
        block = yaml.safe_dump({key: [_plain(i) for i in items]}, sort_keys=False,
                               default_flow_style=False)
        head = lines[key_line]
        comment = head[head.index("#"):] if "#" in head.split(":", 1)[1] else ""
        first, rest = block.split("\n", 1)
        new_head = f"{first}  {comment}" if comment else f"{first}\n"
        return "".join(lines[:key_line] + [new_head, _indent(rest, "  ")] + lines[key_line + 1:])
    end = end_of_block(lines, data, key)
    while end > key_line + 1 and is_comment_or_blank(lines[end - 1]):
        end -= 1
    dash = dash_line(lines, int(_rt(value).lc.item(0)[0]))
    indent = lines[dash][:len(lines[dash]) - len(lines[dash].lstrip())]
    entry = yaml.safe_dump([item], sort_keys=False, default_flow_style=False)
    return "".join(lines[:end] + [_indent(entry, indent)] + lines[end:])


def remove_list_items(text: str, path: Path, key: str, match: Callable[[Any], bool]) -> str:
    """`text` without the items of the top-level list `key` that `match`; the comment lines
    directly above an item go with it, those above whatever follows stay."""
    data = _round_trip(text, path)
    value: Any = data.get(key) if isinstance(data, dict) else None
    if not isinstance(value, list):
        return text
    found = [i for i, item in enumerate(value) if match(item)]
    if not found:
        return text
    lines = text.splitlines(keepends=True)
    if _rt(value).fa.flow_style():
        kept = [_plain(item) for i, item in enumerate(value) if i not in found]
        key_line = int(_rt(data).lc.key(key)[0])
        block = yaml.safe_dump({key: kept}, sort_keys=False, default_flow_style=False) if kept \
            else f"{key}: []\n"
        return "".join(lines[:key_line] + [block] + lines[key_line + 1:])
    starts = [int(_rt(value).lc.item(i)[0]) for i in range(len(value))]
    return "".join(cut_items(lines, starts, found, end_of_block(lines, data, key)))


def save_config(path: Path, text: str, check: Callable[[Path], DaemonConfig]) -> DaemonConfig:
    """Write `text` to `path` if `check` accepts it (as written there: relative paths are
    relative to the config's folder), in one rename; the file keeps its owner, group and mode,
    a new one takes its folder's.  Returns what `check` returned."""
    folder = path.parent
    try:
        make_folders(folder)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write in {folder} ({exc.strerror or exc}); run as "
                          f"the config's owner, or with sudo") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        try:
            config = check(Path(tmp))
        except ConfigError as exc:
            raise ConfigError(str(exc).replace(tmp, str(path))) from None
        owner = Ownership.of(path) if path.exists() else Ownership.for_new_file_in(folder)
        owner.apply(Path(tmp))
        os.replace(tmp, path)
        return config
    finally:
        Path(tmp).unlink(missing_ok=True)


def _rt(value: object) -> Any:
    """A ruamel round-trip container, which knows its lines (`lc`) and style (`fa`)."""
    return value


def _plain(value: Any) -> Any:
    """ruamel's round-trip containers as plain dicts and lists, for yaml.safe_dump."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return type(value)(value) if value is not None else None
    return str(value)


def _indent(block: str, indent: str) -> str:
    return "".join(indent + line if line.strip() else line
                   for line in io.StringIO(block).readlines())
