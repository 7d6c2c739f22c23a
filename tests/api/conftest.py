"""The API in process, on a real library and a real gallery: LFW faces run through the real
pipeline and stored by the library's own writer under the config's state_dir, a gallery YAML
of Serena Williams (with the user's comments), and the app built as the api process builds it
(only the models are shared between tests, loaded once with the daemon's settings)."""

from __future__ import annotations

import queue
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from facewatch.api.app import ApiContext, create_app
from facewatch.api.live import LiveEvents
from facewatch.api.services import Services
from facewatch.config import load_resolved
from facewatch.config.inference import InferenceConfig
from facewatch.engines.store import ModelStore
from facewatch.events import CameraStatus
from facewatch.library.sqlite_store import SqliteLibrary
from facewatch.library.writer import LibraryWriter, WriterSettings
from facewatch.pipeline import FacePipeline
from tests.library.conftest import PEOPLE, FaceSample, embedder_sha, lfw_faces, record  # noqa: F401
from tests.library.test_clusters import SETTINGS

TOKEN = "correct-horse-battery-staple-42"
GALLERY = """\
# who lives here
people:
  # the one with the racket
  - id: serena
    name: Serena Williams
    images:
      - {serena}   # from the album
"""


@pytest.fixture(scope="session")
def daemon_pipeline(models_dir: Path) -> FacePipeline:
    """The models as the api process loads them (the daemon's inference settings)."""
    return FacePipeline.load(InferenceConfig().pipeline_settings(), ModelStore(models_dir))


@dataclass
class Api:
    client: TestClient
    services: Services
    control: queue.Queue[Any]
    gallery: Path
    state: Path
    config: Path
    headers: dict[str, str]

    def get(self, url: str, **kw: Any) -> Any:
        return self.client.get(url, headers=self.headers, **kw)

    def post(self, url: str, **kw: Any) -> Any:
        return self.client.post(url, headers=self.headers, **kw)

    def patch(self, url: str, **kw: Any) -> Any:
        return self.client.patch(url, headers=self.headers, **kw)

    def delete(self, url: str, **kw: Any) -> Any:
        return self.client.delete(url, headers=self.headers, **kw)

    def doc(self) -> Any:
        return yaml.safe_load(self.gallery.read_text())

    def reloads(self) -> int:
        n = 0
        while True:
            try:
                self.control.get_nowait()
            except queue.Empty:
                return n
            n += 1


def make_api(tmp_path: Path, lfw_dir: Path, models_dir: Path, pipeline: FacePipeline | None,
             faces: dict[str, list[FaceSample]] | None, sha: str, **api: Any) -> Api:
    folder = tmp_path / "gallery"
    folder.mkdir()
    gallery = folder / "people.yaml"
    gallery.write_text(GALLERY.format(serena=sorted((lfw_dir / "Serena_Williams").glob("*.jpg"))[9]))
    state = tmp_path / "state"
    if faces is not None:
        writer = LibraryWriter(lambda: SqliteLibrary(state / "library", writer=True),
                               WriterSettings(clusters=SETTINGS))
        for p, person in enumerate(PEOPLE[:4]):
            for t, sample in enumerate(faces[person]):
                assert writer.handle(record([sample], p * 10 + t, sha)) is not None
        assert writer.store is not None
        writer.store.close()
    (tmp_path / "token").write_text(TOKEN + "\n")
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "cameras": [{"name": "door", "url": str(tmp_path / "door.mp4")}],
        "gallery": str(gallery), "state_dir": str(state),
        "inference": {"models_dir": str(models_dir)}, "api": api}))
    resolved = load_resolved(config)
    live = LiveEvents(queue.Queue())
    live.add(CameraStatus(camera="door", ts=1.0, state="online", reason="online"))
    control: queue.Queue[Any] = queue.Queue()
    services = Services(resolved, control, pipeline)
    client = TestClient(create_app(ApiContext(resolved, live, None, control), services))
    headers = {"Authorization": f"Bearer {TOKEN}"} if "token_file" in api else {}
    return Api(client, services, control, gallery, state, config, headers)


@pytest.fixture
def api(tmp_path: Path, lfw_dir: Path, models_dir: Path, daemon_pipeline: FacePipeline,
        lfw_faces: dict[str, list[FaceSample]], embedder_sha: str) -> Iterator[Api]:  # noqa: F811
    """A library of 24 unknown faces of PEOPLE[:4] (grouped), a gallery of Serena Williams,
    and the API over both (token required)."""
    made = make_api(tmp_path, lfw_dir, models_dir, daemon_pipeline, lfw_faces, embedder_sha,
                    token_file="token")
    with made.client:
        yield made
    made.services.close()


def files_under(folder: Path) -> dict[str, bytes]:
    """Every file below `folder` with its bytes: to show that a refused request changed none."""
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file() and ".facewatch" not in p.parts}
