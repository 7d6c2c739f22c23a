"""Fixtures shared across test packages; helpers themselves live in tests/support/.

The recognition fixtures use the real models and data in ../shared: `models_dir` holds the six
models built once per run by the same `install_models` that `facewatch models fetch --from`
runs, and `pipeline` is loaded from them exactly as the CLI and the daemon load it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from facewatch.engines.install import install_models
from facewatch.engines.store import ModelStore
from facewatch.pipeline import FacePipeline, PipelineSettings
from tests.support.mosquitto import Mosquitto, mosquitto_available

SHARED_ENV = "FACEWATCH_SHARED"


@pytest.fixture(scope="session", autouse=True)
def own_user_folders(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Per-user state and config folders of the test run's own, for this process and every
    command it starts: what a command keeps by default (the gallery cache in the default
    state folder, a config `cameras add` makes) lands in tmp, and no test reads the
    machine's own daemon config (/etc/facewatch, ~/.config/facewatch)."""
    home = tmp_path_factory.mktemp("user")
    saved = {k: os.environ.get(k) for k in ("XDG_STATE_HOME", "XDG_CONFIG_HOME", "FACEWATCH_CONFIG",
                                            "STATE_DIRECTORY")}
    os.environ.update(XDG_STATE_HOME=str(home / "state"), XDG_CONFIG_HOME=str(home / "config"),
                      FACEWATCH_CONFIG=str(home / "no-daemon-config.yaml"))
    os.environ.pop("STATE_DIRECTORY", None)
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A running broker on a free 127.0.0.1 port, stopped after the test."""
    if not mosquitto_available():
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    with Mosquitto(tmp_path / "mosquitto") as broker:
        broker.start()
        yield broker


def shared_path() -> Path:
    """Where ../shared is: beside the repository, or wherever FACEWATCH_SHARED says."""
    env = os.environ.get(SHARED_ENV)
    return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    path = shared_path()
    if not (path / "models").is_dir() or not (path / "data").is_dir():
        pytest.skip(f"real models and data not found at {path} (they live in ../shared beside the "
                    f"repository; set {SHARED_ENV} to use another copy)")
    return path


@pytest.fixture(scope="session")
def photos(shared_dir: Path) -> Path:
    return shared_dir / "data" / "photos"


@pytest.fixture(scope="session")
def examples(photos: Path) -> Path:
    """face_recognition's example portraits: obama*.jpg, biden.jpg, two_people.jpg, ..."""
    return photos / "face_recognition_examples" / "examples"


@pytest.fixture(scope="session")
def lfw_dir(shared_dir: Path) -> Path:
    return shared_dir / "data" / "faces" / "lfw"


@pytest.fixture(scope="session")
def models_dir(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """All six models built from the pinned files in shared/models, with their manifests."""
    dest = tmp_path_factory.mktemp("models")
    install_models(dest, from_dir=shared_dir / "models")
    return dest


@pytest.fixture(scope="session")
def pipeline(models_dir: Path) -> FacePipeline:
    """MTCNN + the default embedder, as the CLI and the daemon load them."""
    return FacePipeline.load(PipelineSettings(), ModelStore(models_dir))
