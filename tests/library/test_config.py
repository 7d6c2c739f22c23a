"""The `library:` config section: defaults, bounds reported with the YAML line, empty section."""

from __future__ import annotations

import pytest

from facewatch.config import parse_config
from facewatch.errors import ConfigError

BASE = "cameras: [{name: door, url: clip.mp4}]\ngallery: people.yaml\n"


def test_defaults_and_an_empty_section() -> None:
    for text in (BASE, BASE + "library:\n"):
        lib = parse_config(text).library
        assert (lib.enabled, lib.embeddings_per_track, lib.max_age_days, lib.max_faces) == \
            (True, 5, 30.0, 100_000)
        assert lib.cluster_threshold is None


@pytest.mark.parametrize("body, message", [
    ("library:\n  max_faces: 0\n",
     "config.yaml:4: library.max_faces: Input should be greater than or equal to 1"),
    ("library:\n  embeddings_per_track: 33\n",
     "config.yaml:4: library.embeddings_per_track: Input should be less than or equal to 32"),
    ("library:\n  max_age_days: -1\n",
     "config.yaml:4: library.max_age_days: Input should be greater than 0"),
    ("library:\n  cluster_threshold: 1.5\n",
     "config.yaml:4: library.cluster_threshold: Input should be less than 1"),
    ("library:\n  max_fases: 10\n",
     "config.yaml:4: library.max_fases: unknown key 'max_fases' (did you mean 'max_faces'?"),
])
def test_bad_values_name_the_line_and_field(body: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(BASE + body)
    assert str(err.value).startswith(message)
