"""Whatever text or structure is fed to the loader, it returns a config or raises ConfigError
with one line: never another exception."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from facewatch.config import DaemonConfig, parse_config, resolve
from facewatch.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "example.yaml"
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

KEYS = ["cameras", "gallery", "outputs", "state_dir", "inference", "tracking", "recognition",
        "snapshots", "metrics", "logging", "version", "name", "url", "fps", "loop", "realtime",
        "zmq", "mqtt", "jsonl", "bind", "allow_remote", "host", "port", "username", "password",
        "password_file", "tls", "ca", "cert", "key", "prefix", "qos", "max_batch", "max_size",
        "level", "enabled", "path", "home_assistant", "low_score", "high_score",
        "curve", "secret_key_file", "authorized_keys"]
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
    st.text(max_size=30), st.sampled_from(KEYS),
    st.sampled_from(["rtsp://h/x", "tcp://0.0.0.0:1", "tcp://127.0.0.1:*", "${X}", "${X:-1}",
                     "$${", "${", "/dev/video0", "file:///a.mp4", "1280x720", "fp16", "", "~"]))
STRUCTURES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)),
                                            inner, max_size=5)),
    max_leaves=25)
TOKENS = st.sampled_from(
    ["\n", "  ", "- ", ": ", "{", "}", "[", "]", ",", "'", '"', "#", "&a ", "*a", "!!str ",
     "!!python/object:os.system ", "? ", "|", ">", "%YAML 1.2\n", "---\n", "...\n", "\t", "\\",
     "${X}", "null", "~", "yes", "0x1F", "1e999", ".nan", "2024-01-01", "!!int ", "!!float ",
     "!!bool ", "!!timestamp ", "!!binary ", "!!set ", "!!omap ", "<<: "] + KEYS)
ENVIRON = st.dictionaries(st.sampled_from(["X", "Y", "MQTT_PASSWORD"]), st.text(max_size=10), max_size=3)


def check(text: str, environ: dict[str, str]) -> None:
    try:
        config = parse_config(text, "config.yaml", environ=environ)
    except ConfigError as exc:
        message = str(exc)
        assert message.startswith("config.yaml"), message
        assert "\n" not in message, message
        return
    assert isinstance(config, DaemonConfig)
    # Resolving a valid config may fail only with ConfigError too (e.g. an unreadable secret).
    try:
        resolve(config, base_dir=Path("/nonexistent"), environ={})
    except ConfigError as exc:
        assert "\n" not in str(exc)


def dump(data: Any) -> str:
    return str(yaml.safe_dump(data, allow_unicode=True))


@FUZZ
@given(st.text(max_size=300), ENVIRON)
def test_random_text(text: str, environ: dict[str, str]) -> None:
    check(text, environ)


@FUZZ
@given(st.lists(TOKENS, max_size=60).map("".join), ENVIRON)
def test_yaml_ish_text(text: str, environ: dict[str, str]) -> None:
    check(text, environ)


@FUZZ
@given(STRUCTURES, ENVIRON)
def test_random_structures(data: Any, environ: dict[str, str]) -> None:
    check(dump(data), environ)


EXAMPLE_DATA = yaml.safe_load(EXAMPLE.read_text())


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(data, dict):
        for key, value in data.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            out += _paths(value, (*prefix, i))
    return out


EXAMPLE_PATHS = _paths(EXAMPLE_DATA)[1:]


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(EXAMPLE_PATHS), STRUCTURES), min_size=1, max_size=3),
       ENVIRON)
def test_mutated_example(mutations: list[tuple[tuple[Any, ...], Any]], environ: dict[str, str]) -> None:
    data = copy.deepcopy(EXAMPLE_DATA)
    for path, value in mutations:
        node = data
        try:
            for part in path[:-1]:
                node = node[part]
            node[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation replaced a parent
    check(dump(data), environ)
