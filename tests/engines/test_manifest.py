"""Model manifests and the model store: every inconsistency is one line naming the file, and a
manifest is all it takes to use another embedder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from facewatch.engines.backends.base import BackendOptions
from facewatch.engines.files import sha256_file
from facewatch.engines.manifest import load_manifest
from facewatch.engines.store import ModelStore
from facewatch.errors import IntegrityError, ModelError
from facewatch.images import load_image
from facewatch.pipeline import FacePipeline, PipelineSettings

MTCNN = ("mtcnn-pnet", "mtcnn-rnet", "mtcnn-onet")


def _store_with(models_dir: Path, dest: Path, names: tuple[str, ...]) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in names:
        for suffix in (".onnx", ".json"):
            shutil.copyfile(models_dir / f"{name}{suffix}", dest / f"{name}{suffix}")
    return dest


def _edit(manifest: Path, change: Any) -> None:
    raw = json.loads(manifest.read_text())
    change(raw)
    manifest.write_text(json.dumps(raw))


def _one_line(exc: pytest.ExceptionInfo[ModelError], where: Path) -> str:
    message = str(exc.value)
    assert "\n" not in message
    assert str(where) in message
    return message


@pytest.fixture
def rnet_store(models_dir: Path, tmp_path: Path) -> Path:
    return _store_with(models_dir, tmp_path / "models", ("mtcnn-rnet",))


def test_installed_manifest_opens(rnet_store: Path) -> None:
    manifest, runner = ModelStore(rnet_store).open("mtcnn-rnet", BackendOptions())
    assert manifest.input.shape == ["batch", 3, 24, 24]
    out = runner.run({"input": np.zeros((2, 3, 24, 24), np.float32)})
    assert out["prob"].shape == (2, 2)


@pytest.mark.parametrize("shape, expected", [
    (["batch", 3, 48, 48], "input.shape[2] is 48, the model's input has 24"),
    (["batch", 3, 24], "has 3 axes, the model's input has 4"),
], ids=["wrong-size", "wrong-rank"])
def test_wrong_input_shape(rnet_store: Path, shape: list[Any], expected: str) -> None:
    manifest = rnet_store / "mtcnn-rnet.json"
    _edit(manifest, lambda m: m["input"].update(shape=shape))
    with pytest.raises(ModelError) as info:
        ModelStore(rnet_store).open("mtcnn-rnet", BackendOptions())
    assert expected in _one_line(info, manifest)


@pytest.mark.parametrize("change, expected", [
    (lambda m: m["input"].update(name="data"), "input 'data' is not in the model"),
    (lambda m: m.update(outputs=["reg", "score"]), "outputs ['score'] are not in the model"),
], ids=["input-name", "output-name"])
def test_names_not_in_the_model(rnet_store: Path, change: Any, expected: str) -> None:
    manifest = rnet_store / "mtcnn-rnet.json"
    _edit(manifest, change)
    with pytest.raises(ModelError) as info:
        ModelStore(rnet_store).open("mtcnn-rnet", BackendOptions())
    assert expected in _one_line(info, manifest)


@pytest.mark.parametrize("change, expected", [
    (lambda m: m.update(colour="RGB"), "colour: Extra inputs are not permitted"),
    (lambda m: m["input"].update(scale=0.0078125), "input.scale: Extra inputs are not permitted"),
    (lambda m: m["input"].update(std=[128.0, 0.0, 128.0]), "input.std"),
    (lambda m: m.update(role="detector"), "role"),
    (lambda m: m.pop("sha256"), "sha256: Field required"),
], ids=["unknown-key", "unknown-nested-key", "zero-std", "bad-role", "missing-key"])
def test_invalid_manifest(rnet_store: Path, change: Any, expected: str) -> None:
    manifest = rnet_store / "mtcnn-rnet.json"
    _edit(manifest, change)
    with pytest.raises(ModelError) as info:
        load_manifest(manifest)
    assert expected in _one_line(info, manifest)


def test_embedder_manifest_needs_its_embedding_output(models_dir: Path, tmp_path: Path) -> None:
    store = _store_with(models_dir, tmp_path / "models", ("mobilefacenet-foamliu",))
    manifest = store / "mobilefacenet-foamliu.json"
    _edit(manifest, lambda m: m.update(embedding_output="features", outputs=["embedding"]))
    with pytest.raises(ModelError) as info:
        load_manifest(manifest)
    assert "embedding_output 'features' is not one of outputs" in _one_line(info, manifest)
    _edit(manifest, lambda m: m.update(embedding_output=None))
    with pytest.raises(ModelError) as info:
        load_manifest(manifest)
    assert "needs embedding_output and embedding_size" in _one_line(info, manifest)


def test_unreadable_manifest(rnet_store: Path) -> None:
    manifest = rnet_store / "mtcnn-rnet.json"
    manifest.write_text('{"name": "mtcnn-rnet",')
    with pytest.raises(ModelError) as info:
        load_manifest(manifest)
    assert "not a readable JSON manifest" in _one_line(info, manifest)


def test_missing_model_file(rnet_store: Path) -> None:
    (rnet_store / "mtcnn-rnet.onnx").unlink()
    with pytest.raises(ModelError) as info:
        ModelStore(rnet_store).open("mtcnn-rnet", BackendOptions())
    assert "is missing" in _one_line(info, rnet_store / "mtcnn-rnet.onnx")


def test_model_file_changed_after_install(rnet_store: Path) -> None:
    model = rnet_store / "mtcnn-rnet.onnx"
    data = bytearray(model.read_bytes())
    data[-100] ^= 0x01
    model.write_bytes(bytes(data))
    with pytest.raises(IntegrityError) as info:
        ModelStore(rnet_store).open("mtcnn-rnet", BackendOptions())
    assert "does not match the manifest" in _one_line(info, model)


def test_unknown_model_lists_what_is_installed(rnet_store: Path) -> None:
    with pytest.raises(ModelError) as info:
        ModelStore(rnet_store).open("arcface", BackendOptions())
    assert "installed: mtcnn-rnet" in _one_line(info, rnet_store / "arcface.json")


# Another embedder, by writing a manifest -----------------------------------------------

MOBILEFACE_V2 = {
    "name": "mobileface-v2",
    "role": "embedder",
    "file": "mobileface_v2_256d.onnx",
    # RGB float 0..255; the model normalises inside
    "input": {"name": "data", "shape": ["batch", 3, 112, 112], "layout": "NCHW", "color": "RGB",
              "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]},
    "outputs": ["fc5_bn"],
    "embedding_output": "fc5_bn",
    "embedding_size": 256,
    "source": "github.com/becauseofAI/MobileFace",
    "licence": "MIT",
}


def test_alternative_embedder_from_a_manifest_alone(shared_dir: Path, models_dir: Path,
                                                    tmp_path: Path, examples: Path) -> None:
    store = _store_with(models_dir, tmp_path / "models", MTCNN)
    model = store / "mobileface_v2_256d.onnx"
    shutil.copyfile(shared_dir / "models" / "alternatives" / "mobileface_v2_256d.onnx", model)
    (store / "mobileface-v2.json").write_text(json.dumps({**MOBILEFACE_V2, "sha256": sha256_file(model)}))

    pipeline = FacePipeline.load(PipelineSettings(embedder="mobileface-v2"), ModelStore(store))
    assert pipeline.embedder is not None and pipeline.embedder.size == 256
    images = [load_image(examples / name) for name in ("obama.jpg", "obama2.jpg", "biden.jpg")]
    faces = pipeline.analyze(images)
    vectors = np.stack([f.embeddings[0] for f in faces])  # type: ignore[index]
    assert vectors.shape == (3, 256)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    sims = vectors @ vectors.T
    same, different = sims[0, 1], max(sims[0, 2], sims[1, 2])
    # measured: obama/obama2 0.76, obama/biden 0.02, obama2/biden 0.13
    assert same > 0.6
    assert different < 0.3
    assert same - different > 0.4
