"""The recognition path shared by one-shot commands, gallery enrolment and the daemon:
frames → detections → aligned crops → embeddings (+ a quality score per face).

Enrolment and live video go through this same object, so a gallery photo and a camera frame
of the same face are processed identically.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from facewatch.alignment.five_point import align_faces
from facewatch.detection.detections import Detections
from facewatch.detection.detector import MtcnnDetector, MtcnnSettings
from facewatch.detection.quality import face_quality
from facewatch.detection.requests import DetectionRequest
from facewatch.embedding.embedder import Embedder
from facewatch.engines import catalog
from facewatch.engines.backends.base import BackendOptions
from facewatch.engines.store import ModelStore


@dataclass(frozen=True)
class PipelineSettings:
    embedder: str = catalog.DEFAULT_EMBEDDER
    flip: bool = catalog.DEFAULT_FLIP  # also embed the mirrored face: 2x embedding cost
    detector: MtcnnSettings = field(default_factory=MtcnnSettings)
    backend: BackendOptions = field(default_factory=BackendOptions)
    # (width, height) of the camera frames this pipeline will analyse, where known (the
    # daemon's cameras): TensorRT picks the engine whose P-Net profiles fit their canvases.
    frame_sizes: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class AnalyzedFaces:
    """Everything known about the faces of one image, one row per face, best score first."""

    detections: Detections
    crops: np.ndarray  # (K, 112, 112, 3) uint8 RGB, aligned
    quality: np.ndarray  # (K,) 0..1
    embeddings: np.ndarray | None  # (K, D) unit vectors, or None if not embedded

    def __len__(self) -> int:
        return len(self.detections)


def _pnet_inputs(settings: PipelineSettings) -> list[tuple[int, ...]]:
    """P-Net's input shapes for the known frame sizes (only TensorRT uses them)."""
    if settings.backend.backend != "tensorrt" or not settings.frame_sizes:
        return []
    from facewatch.engines.backends.tensorrt.profiles import pnet_canvases

    return [(1, 3, h, w) for h, w in pnet_canvases(settings.frame_sizes, settings.detector)]


class FacePipeline:
    def __init__(self, detector: MtcnnDetector, embedder: Embedder | None,
                 signature: str = "") -> None:
        self.detector = detector
        self.embedder = embedder
        # Identifies everything that shapes an embedding (model files, flip, detector
        # settings); caches of embeddings are keyed by it.
        self.signature = signature

    @classmethod
    def load(cls, settings: PipelineSettings = PipelineSettings(), store: ModelStore | None = None,
             with_embedder: bool = True) -> FacePipeline:
        store = store or ModelStore()
        opened = [store.open(catalog.MTCNN_NAMES[n], settings.backend,
                             expected=_pnet_inputs(settings) if n == "pnet" else ())
                  for n in ("pnet", "rnet", "onet")]
        pnet, rnet, onet = (runner for _, runner in opened)
        detector = MtcnnDetector(pnet, rnet, onet, settings=settings.detector)
        # The backend and precision too: a cached CPU analysis must not hide that the GPU
        # cannot run a photo, and FP16/INT8 embeddings differ from FP32 ones.
        b = settings.backend
        parts = [f"{b.backend}/{b.precision}", *(m.sha256[:16] for m, _ in opened)]
        d = settings.detector
        parts.append(f"min_face={d.min_face},factor={d.scale_factor},thr={d.thresholds}")
        embedder = None
        if with_embedder:
            manifest, runner = store.open(settings.embedder, settings.backend)
            if manifest.role != "embedder":
                from facewatch.errors import ModelError

                raise ModelError(f"{store.manifest_path(settings.embedder)}: role is "
                                 f"{manifest.role!r}, not an embedder")
            embedder = Embedder(manifest, runner, flip=settings.flip)
            parts.append(f"{manifest.sha256[:16]},flip={settings.flip}")
        return cls(detector, embedder, ";".join(parts))

    def detect(self, images: list[np.ndarray]) -> list[Detections]:
        return self.detector.detect_batch(images)

    def analyze(self, images: list[np.ndarray], embed: bool = True,
                requests: list[DetectionRequest] | None = None) -> list[AnalyzedFaces]:
        """Detect, align, score and (optionally) embed every face of every image.

        `requests` (one per image) say what the detector runs on each (see
        `MtcnnDetector.run`); without them, every image is searched whole.  All crops of all
        images are embedded in one batched call.
        """
        detections = self.detect(images) if requests is None else self.detector.run(images, requests)
        crops = [align_faces(img, d.landmarks) for img, d in zip(images, detections)]
        embeddings: list[np.ndarray | None] = [None] * len(images)
        if embed and self.embedder is not None:
            sizes = [c.shape[0] for c in crops]
            if sum(sizes):
                flat = self.embedder.embed(np.concatenate(crops))
                embeddings = list(np.split(flat, np.cumsum(sizes)[:-1]))
            else:
                embeddings = [np.zeros((0, self.embedder.size), np.float32) for _ in images]
        return [AnalyzedFaces(d, c, face_quality(d, c), e)
                for d, c, e in zip(detections, crops, embeddings)]
