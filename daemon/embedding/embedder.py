"""Run any manifest-described ONNX embedder on aligned 112x112 crops."""

from __future__ import annotations

import numpy as np

from facewatch.engines.backends.base import Runner
from facewatch.engines.manifest import ModelManifest


class Embedder:
    """Batched embedding of aligned RGB crops, L2-normalised, optionally with flip augmentation.

    Flip augmentation embeds each crop and its mirror image and adds the two vectors: it costs
    twice the compute and buys a few tenths of a percent on LFW (see README).
    """

    def __init__(self, manifest: ModelManifest, runner: Runner, flip: bool = False,
                 max_batch: int = 32) -> None:
        assert manifest.embedding_output is not None and manifest.embedding_size is not None
        self.manifest = manifest
        self._output: str = manifest.embedding_output
        self.runner = runner
        self.flip = flip
        self.size = manifest.embedding_size
        spec = manifest.input
        self._mean = np.array(spec.mean, np.float32)
        self._inv_std = 1.0 / np.array(spec.std, np.float32)
        self._bgr = spec.color == "BGR"
        self._nchw = spec.layout == "NCHW"
        batch_dim = spec.shape[0]
        # Some converted models have a fixed batch (sirius's TFLite has 2): pad up to it.
        self._fixed_batch = batch_dim if isinstance(batch_dim, int) and batch_dim > 0 else None
        self._max_batch = self._fixed_batch or max_batch

    def embed(self, crops: np.ndarray) -> np.ndarray:
        """(K, 112, 112, 3) uint8 RGB crops → (K, D) float32 unit vectors."""
        if crops.shape[0] == 0:
            return np.zeros((0, self.size), np.float32)
        vectors = self._raw(crops)
        if self.flip:
            vectors = vectors + self._raw(crops[:, :, ::-1])
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        unit: np.ndarray = (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
        return unit

    def _raw(self, crops: np.ndarray) -> np.ndarray:
        out = []
        for start in range(0, crops.shape[0], self._max_batch):
            chunk = crops[start:start + self._max_batch]
            n = chunk.shape[0]
            x = self._preprocess(chunk)
            if self._fixed_batch and n < self._fixed_batch:
                x = np.concatenate([x, np.zeros((self._fixed_batch - n, *x.shape[1:]), x.dtype)])
            result = self.runner.run({self.manifest.input.name: x})
            out.append(result[self._output].reshape(x.shape[0], -1)[:n])
        return np.concatenate(out).astype(np.float32)

    def _preprocess(self, crops: np.ndarray) -> np.ndarray:
        x = crops[..., ::-1] if self._bgr else crops
        x = (x.astype(np.float32) - self._mean) * self._inv_std
        if self._nchw:
            x = x.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(x)
