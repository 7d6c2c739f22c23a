"""The manifest-driven embedder on real aligned faces: normalisation, flip augmentation,
batching, and models with a fixed batch size."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

from facewatch.embedding.embedder import Embedder
from facewatch.engines.backends.base import BackendOptions, Runner
from facewatch.engines.files import sha256_file
from facewatch.engines.manifest import ModelManifest
from facewatch.engines.store import ModelStore
from facewatch.images import load_image
from facewatch.pipeline import FacePipeline


@pytest.fixture(scope="module")
def crops(pipeline: FacePipeline, examples: Path) -> np.ndarray:
    """Aligned crops of real faces: Obama, Biden, and the two people of two_people.jpg."""
    images = [load_image(examples / n) for n in ("obama.jpg", "biden.jpg", "two_people.jpg")]
    faces = pipeline.analyze(images, embed=False)
    out = np.concatenate([f.crops[f.detections.scores >= 0.95] for f in faces])
    assert out.shape == (4, 112, 112, 3)
    return out


@pytest.fixture(scope="module")
def foamliu(models_dir: Path) -> tuple[ModelManifest, Runner]:
    return ModelStore(models_dir).open("mobilefacenet-foamliu", BackendOptions())


def _raw(manifest: ModelManifest, runner: Runner, crops: np.ndarray) -> np.ndarray:
    """The model's own output for RGB crops, normalised as the manifest says, by hand."""
    x = (crops.astype(np.float32) - np.array(manifest.input.mean, np.float32)) / np.array(
        manifest.input.std, np.float32)
    out = runner.run({manifest.input.name: np.ascontiguousarray(x.transpose(0, 3, 1, 2))})
    return out[manifest.embedding_output]  # type: ignore[index]


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_unit_vectors_of_the_models_output(foamliu: tuple[ModelManifest, Runner],
                                           crops: np.ndarray) -> None:
    # a single model (the default fused embedder normalises inside its graph: test_fused_builder)
    embedder = Embedder(*foamliu)
    vectors = embedder.embed(crops)
    assert vectors.shape == (4, 128) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    raw = _raw(embedder.manifest, embedder.runner, crops)
    assert np.linalg.norm(raw, axis=1).min() > 2  # the model itself does not normalise
    np.testing.assert_allclose(vectors, _unit(raw), atol=1e-5)
    assert embedder.embed(crops[:0]).shape == (0, 128)


def test_flip_adds_the_mirror_image(foamliu: tuple[ModelManifest, Runner], crops: np.ndarray) -> None:
    manifest, runner = foamliu
    plain = Embedder(manifest, runner).embed(crops)
    flipped = Embedder(manifest, runner, flip=True).embed(crops)
    np.testing.assert_allclose(np.linalg.norm(flipped, axis=1), 1.0, atol=1e-5)
    assert np.abs(flipped - plain).max() > 1e-2  # it does change the embedding ...
    assert (np.sum(flipped * plain, axis=1) > 0.85).all()  # ... of the same face
    summed = _raw(manifest, runner, crops) + _raw(manifest, runner, crops[:, :, ::-1])
    np.testing.assert_allclose(flipped, _unit(summed), atol=1e-5)


def test_chunks_of_max_batch_give_the_same_vectors(foamliu: tuple[ModelManifest, Runner],
                                                   crops: np.ndarray) -> None:
    manifest, runner = foamliu
    many = np.concatenate([crops, crops[::-1], crops[:1]])  # 9 faces
    whole = Embedder(manifest, runner).embed(many)
    np.testing.assert_allclose(Embedder(manifest, runner, max_batch=2).embed(many), whole, atol=1e-5)


def test_bgr_manifest_reverses_channels(foamliu: tuple[ModelManifest, Runner], crops: np.ndarray) -> None:
    manifest, runner = foamliu
    bgr = manifest.model_copy(update={"input": manifest.input.model_copy(update={"color": "BGR"})})
    # mean and std are in the model's channel order, after the swap: so a BGR manifest on RGB
    # crops feeds the model what an RGB manifest feeds it from channel-swapped crops
    swapped = np.ascontiguousarray(crops[..., ::-1])
    np.testing.assert_allclose(Embedder(bgr, runner).embed(crops),
                               Embedder(manifest, runner).embed(swapped), atol=1e-5)
    assert np.abs(Embedder(bgr, runner).embed(crops) - Embedder(manifest, runner).embed(crops)).max() > 1e-3


def test_fixed_batch_model_is_padded(models_dir: Path, tmp_path: Path, crops: np.ndarray,
                                     foamliu: tuple[ModelManifest, Runner]) -> None:
    """A model converted with a fixed batch of 3 (as sirius's TFLite has 2) takes 1, 3, 4, 7 faces."""
    model = onnx.load(str(models_dir / "mobilefacenet-foamliu.onnx"))
    for value in (model.graph.input[0], model.graph.output[0]):
        value.type.tensor_type.shape.dim[0].dim_value = 3
    store = tmp_path / "models"
    store.mkdir()
    onnx.save(model, store / "fixed3.onnx")
    raw = json.loads((models_dir / "mobilefacenet-foamliu.json").read_text())
    raw.update(name="fixed3", file="fixed3.onnx", sha256=sha256_file(store / "fixed3.onnx"))
    raw["input"]["shape"] = [3, 3, 112, 112]
    (store / "fixed3.json").write_text(json.dumps(raw))
    shutil.copyfile(models_dir / "mtcnn-pnet.onnx", store / "unrelated.onnx")  # ignored: no manifest

    manifest, runner = ModelStore(store).open("fixed3", BackendOptions())
    with pytest.raises(Exception, match="(?i)dimension"):  # it really refuses other batch sizes
        runner.run({"input": np.zeros((1, 3, 112, 112), np.float32)})
    fixed = Embedder(manifest, runner)
    dynamic = Embedder(*foamliu)
    faces = np.concatenate([crops, crops[:3]])  # 7
    for n in (1, 3, 4, 7):
        np.testing.assert_allclose(fixed.embed(faces[:n]), dynamic.embed(faces[:n]), atol=1e-5)
