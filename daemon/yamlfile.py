"""Load YAML with the line of every value, so validation errors can say `file:line: field: ...`.

PyYAML's composer keeps a start mark on each node; constructing plain data from the node tree
ourselves lets us record, for every path like ("people", 2, "images"), the line it came from.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from facewatch.errors import BadInputError

Location = tuple[str | int, ...]
# Gallery and config files are small; a file this big is a mistake (or an attack on the parser).
MAX_YAML_BYTES = 16 * 1024 * 1024
# Nesting levels accepted: a config is 4 deep, a gallery's free-form metadata a few more.
# PyYAML's composer recurses per level and fails at a few hundred (1.3 KB of "[[[...").
MAX_DEPTH = 64


@dataclass
class YamlDocument:
    path: Path
    data: Any
    lines: dict[Location, int] = field(default_factory=dict)

    def where(self, loc: Location) -> str:
        """`file:line` for the deepest known part of `loc`."""
        for n in range(len(loc), -1, -1):
            line = self.lines.get(tuple(loc[:n]))
            if line is not None:
                return f"{self.path}:{line}"
        return str(self.path)


def dotted(loc: Location) -> str:
    """("cameras", 2, "url") → "cameras[2].url"."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def read_small_text(path: Path, max_bytes: int, kind: str, *, regular_only: bool = False) -> str:
    """The UTF-8 text of a small file the user named (a YAML file, a secret), or ValueError
    with one line that starts with the path and says what is wrong.  `regular_only` refuses
    FIFOs and devices (a secret read from /dev/zero would never end); YAML may come from a
    pipe (`facewatch config check <(...)`)."""
    try:
        st = path.stat()
        if stat.S_ISDIR(st.st_mode):
            raise ValueError(f"{path}: is a directory, expected {kind}")
        if regular_only and not stat.S_ISREG(st.st_mode):
            raise ValueError(f"{path}: not a regular file, expected {kind}")
        if st.st_size > max_bytes:
            raise ValueError(f"{path}: {st.st_size:,} bytes is too large for {kind}")
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except PermissionError:
        raise ValueError(f"{path}: permission denied") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise ValueError(f"{path}: {exc.strerror or exc}") from None


def load_yaml(path: Path, error: type[BadInputError] = BadInputError) -> YamlDocument:
    try:
        text = read_small_text(path, MAX_YAML_BYTES, "a YAML file")
    except ValueError as exc:
        raise error(str(exc)) from None
    return parse_yaml(text, path, error)


def parse_yaml(text: str, path: Path, error: type[BadInputError] = BadInputError) -> YamlDocument:
    too_deep = f"{path}: nested more than {MAX_DEPTH} levels deep"
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except RecursionError:
        raise error(too_deep) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise error(f"{path}{line}: malformed YAML ({exc.problem})") from None
    except yaml.YAMLError as exc:
        # PyYAML's reader errors span lines ("... not allowed\n  in <unicode string>, ...")
        raise error(f"{path}: malformed YAML ({' '.join(str(exc).split())})") from None
    doc = YamlDocument(path, None)
    if node is None:
        return doc
    try:
        doc.data = _construct(node, (), doc.lines, yaml.SafeLoader(""), [1_000_000], set())
    except _TooDeep:
        raise error(too_deep) from None
    except _SelfAlias:
        raise error(f"{path}: an alias that contains itself") from None
    except _AliasBomb:
        raise error(f"{path}: too many YAML aliases (refusing a possible alias bomb)") from None
    except _DuplicateKey as dup:
        raise error(f"{path}:{dup.line}: {dotted(dup.loc)}: duplicate key (first given on line "
                    f"{dup.first_line}; YAML would silently keep only the last)") from None
    except RecursionError:  # not expected within MAX_DEPTH; a message all the same
        raise error(too_deep) from None
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise error(f"{path}{line}: {exc.problem}") from None
    return doc


class _AliasBomb(Exception):
    pass


class _TooDeep(Exception):
    pass


class _SelfAlias(Exception):
    pass


class _DuplicateKey(Exception):
    def __init__(self, loc: Location, line: int, first_line: int) -> None:
        super().__init__(loc)
        self.loc, self.line, self.first_line = loc, line, first_line


def _construct(node: yaml.Node, loc: Location, lines: dict[Location, int],
               scalars: yaml.SafeLoader, budget: list[int], above: set[int]) -> Any:
    """Plain data from a node tree; `budget` caps nodes visited (aliases can multiply them),
    `above` holds the collections this node is inside (an alias may point back at one)."""
    budget[0] -= 1
    if budget[0] < 0:
        raise _AliasBomb
    if len(loc) > MAX_DEPTH:
        raise _TooDeep
    lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
        if id(node) in above:
            raise _SelfAlias
        above.add(id(node))
        try:
            return _collection(node, loc, lines, scalars, budget, above)
        finally:
            above.discard(id(node))
    return _scalar(node, scalars)


def _collection(node: yaml.MappingNode | yaml.SequenceNode, loc: Location,
                lines: dict[Location, int], scalars: yaml.SafeLoader, budget: list[int],
                above: set[int]) -> Any:
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        key_lines: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node, scalars) \
                if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            if isinstance(key, (list, dict)):
                key = str(key)
            if key in key_lines:
                raise _DuplicateKey((*loc, str(key)), key_node.start_mark.line + 1, key_lines[key])
            key_lines[key] = key_node.start_mark.line + 1
            out[key] = _construct(value_node, (*loc, str(key)), lines, scalars, budget, above)
        return out
    return [_construct(v, (*loc, i), lines, scalars, budget, above) for i, v in enumerate(node.value)]


def _scalar(node: yaml.Node, scalars: yaml.SafeLoader) -> Any:
    try:
        return scalars.construct_object(node, deep=True)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError):
        # PyYAML's constructors for explicit tags (`!!int abc`, `!!bool maybe`,
        # `!!timestamp x`, an empty `!!int`) fail with plain Python errors, not a marked one
        raise yaml.constructor.ConstructorError(
            None, None, f"{node.value!r} is not a valid {node.tag.rsplit(':', 1)[-1]}",
            node.start_mark) from None
