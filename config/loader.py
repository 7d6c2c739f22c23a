"""Parse → substitute `${ENV}` → validate, with every failure as one `file:line: field: message` line.

    >>> config = load_config(Path("/etc/facewatch/config.yaml"))   # ConfigError if invalid
    >>> config = resolve(config)                                     # paths, secrets, defaults

Loading is pure apart from reading the one file: nothing here touches the network, devices, the
gallery or the secret files.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import re
import types
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from facewatch.config.base import LOCATED_ERROR
from facewatch.config.daemon import DaemonConfig
from facewatch.config.env import SubstitutionError, substitute
from facewatch.errors import ConfigError
from facewatch.yamlfile import Location, YamlDocument, dotted, load_yaml, parse_yaml

_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def load_config(path: Path | str, environ: Mapping[str, str] | None = None) -> DaemonConfig:
    """The validated (not yet resolved) config in `path`; raises `ConfigError` with one line."""
    path = Path(path)
    with _one_line(path):
        doc = load_yaml(path, ConfigError)
    return _validate(doc, os.environ if environ is None else environ)


def parse_config(text: str, path: Path | str = "config.yaml",
                 environ: Mapping[str, str] | None = None) -> DaemonConfig:
    """As `load_config`, from text; `path` is only used in messages and to resolve relative paths."""
    with _one_line(Path(path)):
        doc = parse_yaml(text, Path(path), ConfigError)
    return _validate(doc, os.environ if environ is None else environ)


@contextlib.contextmanager
def _one_line(path: Path) -> Iterator[None]:
    # PyYAML's reader errors span lines ("... not allowed\n  in <unicode string>, ...").
    try:
        yield
    except ConfigError as exc:
        raise ConfigError(" ".join(str(exc).split())) from None
    except (LookupError, ValueError, TypeError, AttributeError, ArithmeticError) as exc:
        # PyYAML's scalar constructors fail on some explicit tags with plain Python errors
        # (`!!float ` with no value: IndexError).  Whatever the text, bad YAML must end as a
        # config error (exit code 3), never as a crash that systemd would restart forever.
        raise ConfigError(" ".join(f"{path}: malformed YAML ({type(exc).__name__}: {exc})".split())) from None


def _validate(doc: YamlDocument, environ: Mapping[str, str]) -> DaemonConfig:
    data = doc.data
    if data is None:
        raise ConfigError(f"{doc.path}: the file is empty; expected at least cameras: and gallery:")
    if not isinstance(data, dict):
        raise ConfigError(f"{doc.where(())}: top level: expected a mapping with cameras:, gallery: "
                          f"and outputs:, got a {_kind(data)}")
    try:
        data = substitute(data, environ)
    except SubstitutionError as exc:
        raise ConfigError(f"{doc.where(exc.loc)}: {field_path(exc.loc)}: {exc.message}") from None
    except RecursionError:
        raise ConfigError(f"{doc.path}: nested too deeply") from None
    try:
        config = DaemonConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_error(doc, exc)) from None
    config._source = doc.path
    config._lines = dict(doc.lines)
    return config


def describe_error(doc: YamlDocument, exc: ValidationError) -> str:
    """The first problem of `exc` as `file:line: dotted.path: message`."""
    errors = exc.errors(include_url=False)
    err = errors[0]
    if err["type"] == "missing":
        # A misspelt key shows up as a missing one plus an unknown one beside it; the unknown
        # one ("did you mean ...") is the useful report.
        parent = tuple(err["loc"])[:-1]
        err = next((e for e in errors if e["type"] == "extra_forbidden"
                    and tuple(e["loc"])[:-1] == parent), err)
    loc: Location = tuple(err["loc"])
    ctx = err.get("ctx") or {}
    if err["type"] == LOCATED_ERROR:
        loc = (*loc, *ctx.get("at", ()))
    # Union and function-validator branch names ("function-after[...]", "list[str]") are not keys.
    loc = tuple(p for p in loc if isinstance(p, int) or not any(ch in p for ch in "[("))
    message = str(err["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    if err["type"] == "extra_forbidden" and loc:
        message = _unknown_key(loc[:-1], loc[-1])
    elif err["type"] == "missing":
        message = "required, but missing"
    return f"{doc.where(loc)}: {field_path(loc)}: {' '.join(message.split())}"


def field_path(loc: Location) -> str:
    """`cameras[2].url`; a key that is not a plain word is quoted (`outputs.'a b'`)."""
    safe = tuple(p if isinstance(p, int) or _PLAIN_KEY.fullmatch(p) else repr(p) for p in loc)
    return dotted(safe) or "top level"


def _unknown_key(parent: Location, key: str | int) -> str:
    model = _model_at(parent)
    if model is None:
        return f"unknown key {key!r}"
    allowed = sorted(model.model_fields)
    close = difflib.get_close_matches(str(key), allowed, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"unknown key {key!r} ({hint}allowed: {', '.join(allowed)})"


def _model_at(loc: Location) -> type[BaseModel] | None:
    model: type[BaseModel] | None = DaemonConfig
    for part in loc:
        if isinstance(part, int):
            continue  # an item of a list: same model as the list's
        if model is None:
            return None
        field = model.model_fields.get(part)
        if field is None:
            return None
        model = _inner_model(field.annotation)
    return model


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, tuple, list, typing.Annotated):
        for arg in typing.get_args(annotation):
            found = _inner_model(arg)
            if found is not None:
                return found
    return None


def _kind(value: Any) -> str:
    return {list: "list", str: "string", int: "number", float: "number", bool: "boolean"}.get(
        type(value), type(value).__name__)
