"""Whatever text or structure is fed to the loader, it returns a config or raises ConfigError
with one line: never another exception."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from facewatch.config import DaemonConfig, parse_config, resolve
from facewatch.errors import ConfigError
from tests.support.yaml_fuzz import mutated, paths_in, structures, yaml_ish_text

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "example.yaml"
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

KEYS = ["cameras", "gallery", "outputs", "state_dir", "inference", "tracking", "recognition",
        "snapshots", "metrics", "logging", "version", "name", "url", "fps", "loop", "realtime",
        "zmq", "mqtt", "jsonl", "bind", "allow_remote", "host", "port", "username", "password",
        "password_file", "tls", "ca", "cert", "key", "prefix", "qos", "max_batch", "max_size",
        "level", "enabled", "path", "home_assistant", "low_score", "high_score",
        "curve", "secret_key_file", "authorized_keys"]
STRUCTURES = structures(KEYS, ["rtsp://h/x", "tcp://0.0.0.0:1", "tcp://127.0.0.1:*", "${X}",
                                "${X:-1}", "$${", "${", "/dev/video0", "file:///a.mp4",
                                "1280x720", "fp16", "", "~"])
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
@given(yaml_ish_text(KEYS), ENVIRON)
def test_yaml_ish_text(text: str, environ: dict[str, str]) -> None:
    check(text, environ)


@FUZZ
@given(STRUCTURES, ENVIRON)
def test_random_structures(data: Any, environ: dict[str, str]) -> None:
    check(dump(data), environ)


EXAMPLE_DATA = yaml.safe_load(EXAMPLE.read_text())


EXAMPLE_PATHS = paths_in(EXAMPLE_DATA)


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(EXAMPLE_PATHS), STRUCTURES), min_size=1, max_size=3),
       ENVIRON)
def test_mutated_example(mutations: list[tuple[tuple[Any, ...], Any]], environ: dict[str, str]) -> None:
    check(dump(mutated(EXAMPLE_DATA, mutations)), environ)
