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
