"""The ONNX Runtime runner's memory rules: one shared CPU arena, large calls in chunks that
give exactly what one call gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facewatch.engines.backends import onnxruntime as ortb
from facewatch.engines.backends.base import BackendOptions
from facewatch.engines.backends.onnxruntime import OnnxRuntimeRunner


def test_a_large_batch_in_chunks_equals_one_call(models_dir: Path) -> None:
    rnet = OnnxRuntimeRunner(models_dir / "mtcnn-rnet.onnx", BackendOptions())
    x = np.random.default_rng(0).uniform(-1, 1, (400, 3, 24, 24)).astype(np.float32)
    assert x.nbytes > ortb.MAX_INPUT_BYTES  # so `run` splits it
    chunked = rnet.run({"input": x})
    whole = rnet._run({"input": x})
    assert set(chunked) == {"reg", "prob"}
    for name in chunked:
        assert chunked[name].shape == whole[name].shape
        np.testing.assert_allclose(chunked[name], whole[name], atol=1e-6)


def test_sessions_share_one_arena(models_dir: Path) -> None:
    OnnxRuntimeRunner(models_dir / "mtcnn-onet.onnx", BackendOptions())
    assert ortb._arena_registered
