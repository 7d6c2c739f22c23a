"""`inference:` — which backend runs the detector and embedder, and how frames are batched."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator

from facewatch.config.base import ConfigPath, Section, located_error, stage_checked
from facewatch.detection.settings import GateSettings
from facewatch.engines.backends.base import BackendName, BackendOptions, Precision
from facewatch.engines.catalog import DEFAULT_EMBEDDER, DEFAULT_FLIP
from facewatch.inference.batcher import BatchSettings

_G = GateSettings

if TYPE_CHECKING:
    from facewatch.detection.detector import MtcnnSettings
    from facewatch.pipeline import PipelineSettings


class InferenceConfig(Section):
    backend: BackendName = Field(
        default="onnxruntime",
        description="onnxruntime (CPU, or CUDA when available) or tensorrt (NVIDIA GPUs).")
    precision: Precision = Field(
        default="fp32", description="fp32, fp16 (tensorrt only) or int8 (a quantised model, or a "
                            "calibrated TensorRT engine).")
    device: Literal["auto", "cpu", "cuda"] = Field(
        default="auto",
        description="ONNX Runtime device: auto uses CUDA when the installed ONNX Runtime offers it.")
    threads: int = Field(default=2, ge=1, le=256, description="Intra-op threads per model.")
    max_batch: int = Field(
        default=BatchSettings.max_batch,
        description="Most frames analysed in one batch, across all cameras.")
    max_wait_ms: float = Field(
        default=BatchSettings.max_wait_ms,
        description="Longest a frame waits for a batch to fill before the batch runs anyway.")
    models_dir: ConfigPath | None = Field(
        default=None, description="Folder of <name>.onnx + <name>.json models; default: $FACEWATCH_MODELS "
                          "or the per-user data folder, as for the CLI.")
    embedder: str = Field(
        default=DEFAULT_EMBEDDER, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$",
        description="Embedder model name in models_dir; the gallery must be built with the same one.")
    flip: bool = Field(
        default=DEFAULT_FLIP,
        description="Also embed the mirrored face and average (twice the embedding cost).")
    min_face: float = Field(
        default=_G.min_face,
        description="Smallest face side to detect, in pixels of the analysed frame; smaller is "
                    "slower.  Default of every camera's detection.min_face.")
    motion: bool = Field(
        default=_G.motion,
        description="Run the detector only where it can find something: tracked faces are "
                    "re-found on their predicted boxes, new faces are looked for where the "
                    "picture changed, and a still camera with no face costs next to nothing.  "
                    "false: the whole frame every frame.  Default of every camera's "
                    "detection.motion.")
    full_frame_every_s: float = Field(
        default=_G.full_frame_every_s,
        description="With motion on, search the whole frame at least this often (seconds), "
                    "for faces that appeared without moving; 0: every frame.  Default of every "
                    "camera's detection.full_frame_every_s.")
    motion_threshold: float = Field(
        default=_G.motion_threshold,
        description="Grey levels (0-255) a pixel must change by to count as motion; raise it "
                    "for a noisy picture.  Default of every camera's detection.motion_threshold.")
    scale_factor: float = Field(
        default=0.709, ge=0.5, le=0.95, description="Ratio between image pyramid levels of the detector.")

    @model_validator(mode="after")
    def _check_combination(self) -> InferenceConfig:
        from facewatch.config import stages

        stage_checked(lambda: stages.batch_settings(self))
        stage_checked(lambda: stages.detection_settings(self))
        if self.precision == "fp16" and self.backend != "tensorrt":
            raise located_error(("precision",), "fp16 needs backend: tensorrt; on ONNX Runtime "
                                                "use fp32 or int8")
        return self

    def backend_options(self) -> BackendOptions:
        return BackendOptions(backend=self.backend, precision=self.precision,
                              intra_op_threads=self.threads, device=self.device)

    def detector_settings(self) -> MtcnnSettings:
        from facewatch.detection.detector import MtcnnSettings

        return MtcnnSettings(min_face=self.min_face, scale_factor=self.scale_factor)

    def pipeline_settings(self) -> PipelineSettings:
        from facewatch.pipeline import PipelineSettings

        return PipelineSettings(embedder=self.embedder, flip=self.flip,
                                detector=self.detector_settings(), backend=self.backend_options())
