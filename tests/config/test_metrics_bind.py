"""`metrics.bind` off loopback needs the same explicit opt-in as ZeroMQ (issue 8): the metrics
name every camera and count its frames, reconnects and recognitions, and the endpoint has no
authentication."""

from __future__ import annotations

from pathlib import Path

import pytest

from facewatch.config import parse_config
from facewatch.errors import ConfigError

BASE = "cameras: [{name: door, url: a.mp4}]\ngallery: people.yaml\n"


@pytest.mark.parametrize("bind", ["0.0.0.0", "::", "192.168.1.5", "fe80::1"])
def test_a_remote_bind_needs_allow_remote(tmp_path: Path, bind: str) -> None:
    path = tmp_path / "config.yaml"
    with pytest.raises(ConfigError) as info:
        parse_config(BASE + f"metrics:\n  bind: '{bind}'\n", path)
    message = str(info.value)
    assert message.startswith(f"{path}:4: metrics.bind: {bind} would serve metrics to the network")
    assert "allow_remote: true" in message
    config = parse_config(BASE + f"metrics: {{bind: '{bind}', allow_remote: true}}\n", path)
    assert config.metrics.bind == bind and config.metrics.allow_remote


@pytest.mark.parametrize("bind", ["127.0.0.1", "127.0.0.53", "::1", "localhost"])
def test_loopback_needs_nothing(tmp_path: Path, bind: str) -> None:
    config = parse_config(BASE + f"metrics: {{bind: '{bind}'}}\n", tmp_path / "config.yaml")
    assert config.metrics.bind == bind and not config.metrics.allow_remote
