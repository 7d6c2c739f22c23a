"""Hypothesis strategies for fuzzing the YAML loaders (config and gallery): random structures
built from a loader's own key names and tricky scalars, YAML-ish token soup, and mutations of a
valid document at any of its paths."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import strategies as st

# Tokens that make YAML parsers take unusual paths: flow and block syntax, anchors, tags
# (unsafe ones included: the loaders must use safe_load), directives, a BOM.
YAML_TOKENS = ["\n", "  ", "- ", ": ", "{", "}", "[", "]", ",", "'", '"', "#", "&a ", "*a",
               "!!str ", "!!python/object/apply:os.system ", "? ", "|", ">", "%YAML 1.2\n",
               "---\n", "...\n", "\t", "\\", "${X}", "null", "~", "yes", "0x1F", "1e999", ".nan",
               "2024-01-01", "!!int ", "!!float ", "!!bool ", "!!timestamp ", "!!binary ",
               "!!set ", "!!omap ", "<<: ", "\ufeff"]


def scalars(keys: list[str], extra: list[str]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                     st.floats(allow_nan=True), st.text(max_size=30), st.sampled_from(keys),
                     st.sampled_from(extra))


def structures(keys: list[str], extra: list[str]) -> st.SearchStrategy[Any]:
    """Nested lists and mappings (keyed mostly by the loader's own names) of tricky scalars."""
    return st.recursive(
        scalars(keys, extra),
        lambda inner: st.one_of(st.lists(inner, max_size=4),
                                st.dictionaries(st.one_of(st.sampled_from(keys),
                                                          st.text(max_size=8)),
                                                inner, max_size=5)),
        max_leaves=25)


def yaml_ish_text(tokens: list[str]) -> st.SearchStrategy[str]:
    """Up to 60 of YAML_TOKENS and `tokens` (a loader's key names, paths...) run together."""
    return st.lists(st.sampled_from(YAML_TOKENS + tokens), max_size=60).map("".join)


def paths_in(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key/index path in a document (the root excluded)."""
    out = [prefix] if prefix else []
    if isinstance(data, dict):
        for key, value in data.items():
            out += paths_in(value, (*prefix, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            out += paths_in(value, (*prefix, i))
    return out


def mutated(document: Any, mutations: list[tuple[tuple[Any, ...], Any]]) -> Any:
    """A copy of `document` with the value at each path replaced (a path whose parent an
    earlier mutation replaced is skipped)."""
    data = copy.deepcopy(document)
    for path, value in mutations:
        node = data
        try:
            for part in path[:-1]:
                node = node[part]
            node[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue
    return data
