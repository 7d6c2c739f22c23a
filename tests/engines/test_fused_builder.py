"""mobilefacenet-fused: foamliu and sirius in one ONNX graph, each part normalised as its own
manifest says, the unit embeddings concatenated / sqrt(2)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facewatch.embedding.embedder import Embedder
from facewatch.engines import catalog
from facewatch.engines.backends.base import BackendOptions
from facewatch.engines.store import ModelStore
from facewatch.images import load_image
from facewatch.pipeline import FacePipeline, PipelineSettings


def test_fused_is_the_parts_unit_embeddings_side_by_side(models_dir: Path, examples: Path) -> None:
    store = ModelStore(models_dir)
    detector = FacePipeline.load(PipelineSettings(), store, with_embedder=False)
    images = [load_image(examples / name) for name in ("obama.jpg", "two_people.jpg",
                                                       "lin-manuel-miranda.png")]
    crops = np.concatenate([a.crops for a in detector.analyze(images, embed=False)])
    assert crops.shape[0] >= 4
    out = {}
    for name in (catalog.FOAMLIU, catalog.SIRIUS, catalog.FUSED):
        manifest, runner = store.open(name, BackendOptions(intra_op_threads=1))
        out[name] = Embedder(manifest, runner).embed(crops)
    fused = out[catalog.FUSED]
    assert fused.shape == (crops.shape[0], 320)
    expected = np.concatenate([out[catalog.FOAMLIU], out[catalog.SIRIUS]], axis=1) / np.sqrt(2)
    np.testing.assert_allclose(fused, expected, atol=2e-5)
    # so a fused cosine is the mean of the two models' cosines
    a, b = out[catalog.FOAMLIU], out[catalog.SIRIUS]
    np.testing.assert_allclose(fused @ fused.T, ((a @ a.T) + (b @ b.T)) / 2, atol=5e-5)


def test_embedder_manifests_carry_their_open_set_calibration(models_dir: Path) -> None:
    store = ModelStore(models_dir)
    flips = {catalog.FUSED: {False, True}, catalog.FOAMLIU: {False}, catalog.SIRIUS: {False}}
    for name, measured_with in flips.items():
        manifest = store.manifest(name)
        assert {c.flip for c in manifest.open_set} == measured_with, name
        assert manifest.open_set_for(True) is not None  # the nearest one stands in
        for calibration in manifest.open_set:
            assert len(calibration.measured) == 6  # 10, 100, 1,000 people at 1 % and 0.1 %
    assert store.manifest(catalog.FUSED).input.mean == [0.0, 0.0, 0.0]
