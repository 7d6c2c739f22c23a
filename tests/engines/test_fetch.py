"""Getting the pinned weights and building models from them: from a folder (`--from`), from a
GitHub mirror over real HTTP on 127.0.0.1, and the MTCNN wheel through the real `pip download`."""

from __future__ import annotations

import functools
import hashlib
import http.server
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import onnx
import pytest

from facewatch.engines import catalog
from facewatch.engines.fetch import acquire
from facewatch.engines.files import atomic_write_bytes, sha256_file
from facewatch.engines.install import RECIPES, install_models
from facewatch.engines.manifest import load_manifest, verify_model_file
from facewatch.errors import IntegrityError, ModelError

# Where each pinned file sits in shared/models.
SHARED_FILES = {
    "pnet.pt": "mtcnn/pnet.pt",
    "rnet.pt": "mtcnn/rnet.pt",
    "onet.pt": "mtcnn/onet.pt",
    "MobileFaceNet.tflite": "mobilefacenet_sirius/MobileFaceNet.tflite",
    "mobilefacenet.pt": "mobilefacenet/mobilefacenet.pt",
}
MODEL_NAMES = {"mtcnn-pnet", "mtcnn-rnet", "mtcnn-onet", "mobilefacenet-sirius", "mobilefacenet-foamliu",
               "mobilefacenet-fused"}


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def _copy_sources(shared_dir: Path, dest: Path, names: list[str] | None = None) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in names or list(SHARED_FILES):
        shutil.copyfile(shared_dir / "models" / SHARED_FILES[name], dest / name)
    return dest


def _corrupt(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


# From a folder ------------------------------------------------------------------------

def test_install_from_shared_models_builds_six_verified_models(models_dir: Path) -> None:
    manifests = sorted(models_dir.glob("*.json"))
    assert {p.stem for p in manifests} == MODEL_NAMES
    for path in manifests:
        manifest = load_manifest(path)
        model = verify_model_file(manifest, path)
        assert model == (models_dir / f"{manifest.name}.onnx").resolve()
        assert sha256_file(model) == manifest.sha256
        onnx.checker.check_model(str(model))
        assert manifest.source and manifest.licence
    foamliu = load_manifest(models_dir / "mobilefacenet-foamliu.json")
    assert (foamliu.role, foamliu.embedding_size, foamliu.embedding_output) == ("embedder", 128, "embedding")
    # the pinned sources are kept beside the models, each with its pinned sha256
    for pinned in catalog.ALL_SOURCES:
        assert sha256_file(models_dir / "sources" / pinned.filename) == pinned.sha256


def test_reinstall_reuses_verified_sources_and_builds_the_same_bytes(
        shared_dir: Path, models_dir: Path, tmp_path: Path) -> None:
    dest = tmp_path / "models"
    first = install_models(dest, from_dir=_copy_sources(shared_dir, tmp_path / "src"))
    assert all(m.obtained.startswith("imported from") for m in first)
    shutil.rmtree(tmp_path / "src")
    second = install_models(dest)  # no --from, no network: every source is already verified
    assert [m.obtained for m in second] == ["cached"] * len(RECIPES)
    # the build is deterministic: the same ONNX bytes as the session's models
    for m in second:
        assert m.sha256 == load_manifest(models_dir / f"{m.name}.json").sha256


@pytest.mark.parametrize("bad", ["pnet.pt", "mobilefacenet.pt"])
def test_corrupted_copy_is_refused_and_not_written(shared_dir: Path, tmp_path: Path, bad: str) -> None:
    src = _copy_sources(shared_dir, tmp_path / "src")
    _corrupt(src / bad)
    dest = tmp_path / "models"
    with pytest.raises(IntegrityError) as info:
        install_models(dest, from_dir=src)
    message = str(info.value)
    assert str(src / bad) in message and "\n" not in message
    written = _files(dest)
    assert not [p for p in written if p.name == bad or p.name.endswith(".tmp")]
    failed_recipe = next(r for r in RECIPES if r.sources[0].filename == bad)
    assert not [p for p in written if p.stem == failed_recipe.name]
    if bad == "pnet.pt":  # the first source: nothing at all was written
        assert written == []


def test_from_dir_without_the_file_names_what_is_missing(shared_dir: Path, tmp_path: Path) -> None:
    src = _copy_sources(shared_dir, tmp_path / "src", ["pnet.pt", "rnet.pt", "onet.pt"])
    with pytest.raises(ModelError) as info:
        install_models(tmp_path / "models", from_dir=src)
    # the default embedder's weights are the first thing missing
    assert "mobilefacenet.pt" in str(info.value) and str(src) in str(info.value)


def test_atomic_write_failure_leaves_the_old_file_and_no_partial(tmp_path: Path) -> None:
    target = tmp_path / "model.onnx"
    target.write_bytes(b"old model")
    with pytest.raises(TypeError):
        atomic_write_bytes(target, "not bytes")  # type: ignore[arg-type]  # fails mid-write
    assert target.read_bytes() == b"old model"
    (tmp_path / "folder").mkdir()
    with pytest.raises(OSError):
        atomic_write_bytes(tmp_path / "folder", b"new")  # the rename fails: a directory is there
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder", "model.onnx"]
    atomic_write_bytes(target, b"new model", mode=0o600)
    assert target.read_bytes() == b"new model" and target.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder", "model.onnx"]


# From a GitHub mirror over HTTP -------------------------------------------------------

class _Mirror:
    """http.server on 127.0.0.1 serving a folder laid out as <owner>/<repo>/<commit>/<path>."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.requests: list[str] = []
        mirror = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self) -> None:
                mirror.requests.append(self.path)
                super().do_GET()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def put(self, pinned: catalog.PinnedFile, data: bytes) -> str:
        assert isinstance(pinned.origin, catalog.GitHubFile)
        rel = f"{pinned.origin.repo}/{pinned.origin.commit}/{pinned.origin.path}"
        (self.root / rel).parent.mkdir(parents=True, exist_ok=True)
        (self.root / rel).write_bytes(data)
        return "/" + rel

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[_Mirror]:
    served = _Mirror(tmp_path / "mirror")
    yield served
    served.close()


def test_github_files_via_mirror(shared_dir: Path, models_dir: Path, tmp_path: Path,
                                 mirror: _Mirror) -> None:
    paths = {mirror.put(p, (shared_dir / "models" / SHARED_FILES[p.filename]).read_bytes())
             for p in (catalog.SIRIUS_TFLITE, catalog.FOAMLIU_PT)}
    dest = tmp_path / "models"
    # MTCNN's weights come from a wheel, not GitHub: have them verified already
    _copy_sources(shared_dir, dest / "sources", ["pnet.pt", "rnet.pt", "onet.pt"])
    installed = {m.name: m for m in install_models(dest, mirror=mirror.url)}
    assert set(mirror.requests) == paths
    assert installed[catalog.FOAMLIU].obtained == f"downloaded from {catalog.FOAMLIU_PT.origin.describe()}"
    assert installed[catalog.SIRIUS].obtained.startswith("downloaded from github.com/")
    for name, m in installed.items():
        assert m.sha256 == load_manifest(models_dir / f"{name}.json").sha256


def test_wrong_file_from_mirror_is_refused(shared_dir: Path, tmp_path: Path, mirror: _Mirror) -> None:
    path = mirror.put(catalog.FOAMLIU_PT, (shared_dir / "models" / "mtcnn" / "onet.pt").read_bytes())
    sources = tmp_path / "sources"
    with pytest.raises(IntegrityError) as info:
        acquire(catalog.FOAMLIU_PT, sources, mirror=mirror.url)
    assert f"{mirror.url}{path}" in str(info.value)
    assert _files(sources) == []


def test_truncated_download_is_refused(shared_dir: Path, tmp_path: Path) -> None:
    """The server promises the whole file and hangs up half way."""
    data = (shared_dir / "models" / "mobilefacenet" / "mobilefacenet.pt").read_bytes()

    class HalfHandler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.close_connection = True

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), HalfHandler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        with pytest.raises(ModelError):
            acquire(catalog.FOAMLIU_PT, tmp_path / "sources",
                    mirror=f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert _files(tmp_path / "sources") == []


def test_file_missing_on_mirror(tmp_path: Path, mirror: _Mirror) -> None:
    with pytest.raises(ModelError) as info:
        acquire(catalog.SIRIUS_TFLITE, tmp_path / "sources", mirror=mirror.url)
    message = str(info.value)
    assert "\n" not in message and mirror.url in message and "not found" in message.lower()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_mirror_is_one_line(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(ModelError) as info:
        acquire(catalog.FOAMLIU_PT, tmp_path / "sources", mirror=url)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{url}/foamliu/MobileFaceNet/")
    assert "download failed" in message and "--from" in message
    assert _files(tmp_path / "sources") == []


# The MTCNN wheel through pip ----------------------------------------------------------

def test_mtcnn_weights_from_the_wheel_via_pip(shared_dir: Path, tmp_path: Path) -> None:
    sources = tmp_path / "sources"
    for pinned in (catalog.PNET, catalog.RNET, catalog.ONET):
        path, obtained = acquire(pinned, sources)
        assert obtained == "extracted from facenet-pytorch==2.6.0"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == pinned.sha256
        assert path.read_bytes() == (shared_dir / "models" / SHARED_FILES[pinned.filename]).read_bytes()
    # the wheel is kept, so its three files cost one download
    assert sorted(p.name for p in _files(sources)) == [
        "facenet_pytorch-2.6.0-py3-none-any.whl", "onet.pt", "pnet.pt", "rnet.pt"]


def test_wheel_in_a_from_dir_is_used_and_a_tampered_one_refused(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                    "--disable-pip-version-check", "-q", "-d", str(wheels),
                    catalog.PNET.origin.requirement],  # type: ignore[union-attr]
                   check=True, capture_output=True)
    path, obtained = acquire(catalog.ONET, tmp_path / "sources", from_dir=wheels)
    assert obtained == f"imported from {wheels}"
    assert sha256_file(path) == catalog.ONET.sha256
    wheel = wheels / catalog.ONET.origin.wheel_filename  # type: ignore[union-attr]
    _corrupt(wheel)
    with pytest.raises(IntegrityError) as info:
        acquire(catalog.RNET, tmp_path / "sources", from_dir=wheels)
    assert str(wheel) in str(info.value)
    assert not (tmp_path / "sources" / "rnet.pt").exists()
