"""Model manifests: the JSON file beside each ONNX model that says how to feed it.

A manifest is the whole contract between a model file and the stages: which input, what
layout, colour order and normalisation, which output, how large the embedding.  Any ONNX face
embedder can be used by writing one (see README, "Using another embedder").
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from facewatch.engines.files import sha256_file
from facewatch.errors import IntegrityError, ModelError
from facewatch.identity.threshold import THRESHOLD_MAX, THRESHOLD_MIN

MANIFEST_SUFFIX = ".json"

Role = Literal["mtcnn.pnet", "mtcnn.rnet", "mtcnn.onet", "embedder"]


class InputSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="name of the model's image input")
    shape: list[int | str] = Field(description="input shape; strings are free dimensions")
    layout: Literal["NCHW", "NHWC"] = Field("NCHW", description="axis order of the input")
    color: Literal["RGB", "BGR"] = Field("RGB", description="channel order the model expects")
    mean: list[float] = Field([0.0, 0.0, 0.0], min_length=3, max_length=3,
                              description="per-channel value subtracted from 0..255 pixels")
    std: list[float] = Field([1.0, 1.0, 1.0], min_length=3, max_length=3,
                             description="per-channel divisor applied after the mean")

    @field_validator("std")
    @classmethod
    def _nonzero_std(cls, v: list[float]) -> list[float]:
        if any(s == 0 for s in v):
            raise ValueError("std values must be non-zero")
        return v


class CalibrationRecord(BaseModel):
    """How an INT8 variant was made and what the accuracy gate measured (see facewatch.calibration)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fp32_file: str = Field(description="the FP32 model the variant was quantised from")
    fp32_sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of that FP32 file")
    source: str = Field(description="what the calibration set was drawn from")
    samples: int = Field(ge=0, description="calibration inputs (crops, or P-Net canvases)")
    method: str = Field(description="ONNX Runtime calibration method and quantisation scheme")
    decision: str = Field(description="int8, or why the FP32 model is used for this precision")
    gate: dict[str, Any] = Field(default_factory=dict,
                                 description="accuracy gate figures measured after calibration")
    created: str = Field(description="UTC time of calibration, ISO 8601")


class ConversionRecord(BaseModel):
    """How an FP16 variant was made (see facewatch.engines.backends.tensorrt.fp16)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fp32_file: str = Field(description="the FP32 model the variant was converted from")
    fp32_sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of that FP32 file")
    converter: str = Field(description="the converter and its settings, versioned")


class OpenSetPoint(BaseModel):
    """A threshold measured directly on LFW's open set for one gallery size and target."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    people: int = Field(gt=0, description="people enrolled (one photo each)")
    false_rate: float = Field(gt=0, lt=1, description="stranger false-name rate (FPIR) targeted")
    threshold: float = Field(description="mean over the draws of the threshold reaching it")
    tpir: float = Field(ge=0, le=1, description="enrolled probes named correctly at it")


class OpenSetCalibration(BaseModel):
    """How often a stranger resembles an enrolled person, for choosing a threshold per gallery
    size (facewatch.identity.threshold); measured by `facewatch eval openset`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    flip: bool = Field(description="measured with flip augmentation (the pipeline's `flip`)")
    source: str = Field(description="what was measured, and how")
    pair_rates: list[float] = Field(
        min_length=2, description="fractions of (stranger, enrolled person) pairs, descending")
    pair_thresholds: list[float] = Field(
        min_length=2, description="the similarity each fraction of those pairs reaches, ascending")
    measured: list[OpenSetPoint] = Field(
        default_factory=list, description="thresholds measured directly per gallery size")

    @model_validator(mode="after")
    def _check_table(self) -> OpenSetCalibration:
        rates, thresholds = self.pair_rates, self.pair_thresholds
        if len(rates) != len(thresholds):
            raise ValueError(f"pair_rates has {len(rates)} values, pair_thresholds "
                             f"{len(thresholds)}: one threshold per rate")
        if any(not 0 < r < 1 for r in rates) or any(a <= b for a, b in zip(rates, rates[1:])):
            raise ValueError("pair_rates must be between 0 and 1, strictly descending")
        if any(a >= b for a, b in zip(thresholds, thresholds[1:])):
            raise ValueError("pair_thresholds must be strictly ascending")
        return self


class ModelManifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="short name used on the command line and in config")
    role: Role = Field(description="which pipeline stage the model serves")
    file: str = Field(description="ONNX file, relative to the manifest")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of the ONNX file")
    input: InputSpec
    outputs: list[str] = Field(min_length=1, description="output names, in the model's order")
    embedding_output: str | None = Field(None, description="output holding the embedding")
    embedding_size: int | None = Field(None, gt=0, description="length of one embedding")
    threshold: float | None = Field(
        None, gt=THRESHOLD_MIN, lt=THRESHOLD_MAX,
        description="cosine similarity at which two faces are called the same person "
                    "(facewatch's own models: from the LFW evaluation, see README); used when "
                    "the model has no open-set calibration")
    open_set: list[OpenSetCalibration] = Field(
        default_factory=list,
        description="embedders: how the threshold should grow with the gallery, with and "
                    "without flip (facewatch eval openset)")
    source: str = Field(description="where the weights come from (URL, commit, package)")
    licence: str = Field(description="licence of the weights and of their training data")
    notes: str = ""
    precision: Literal["fp32", "fp16", "int8"] = Field(
        "fp32", description="int8: a QDQ model from `facewatch calibrate`; fp16: an FP16 model "
                            "from `facewatch tensorrt fp16`")
    calibration: CalibrationRecord | None = Field(
        None, description="for `<name>.int8` variants: how they were calibrated and gated")
    conversion: ConversionRecord | None = Field(
        None, description="for `<name>.fp16` variants: what they were converted from")

    def path(self, manifest_path: Path) -> Path:
        return (manifest_path.parent / self.file).resolve()

    def open_set_for(self, flip: bool) -> OpenSetCalibration | None:
        """The open-set calibration measured with this flip setting, else the other one (flip
        moves thresholds by about 0.003 on facewatch's models), else None."""
        same = [c for c in self.open_set if c.flip == flip]
        ordered = same or list(self.open_set)
        return ordered[0] if ordered else None


def load_manifest(path: Path) -> ModelManifest:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{path}: manifest not found (run `facewatch models fetch`)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: not a readable JSON manifest ({exc})") from None
    try:
        manifest = ModelManifest.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise ModelError(f"{path}: {where}: {first['msg']}") from None
    if manifest.role == "embedder" and (manifest.embedding_output is None
                                         or manifest.embedding_size is None):
        raise ModelError(f"{path}: an embedder manifest needs embedding_output and embedding_size")
    if manifest.embedding_output is not None and manifest.embedding_output not in manifest.outputs:
        raise ModelError(f"{path}: embedding_output {manifest.embedding_output!r} "
                         f"is not one of outputs {manifest.outputs}")
    return manifest


def write_manifest(path: Path, manifest: ModelManifest) -> None:
    from facewatch.engines.files import atomic_write_bytes

    atomic_write_bytes(path, (manifest.model_dump_json(indent=2) + "\n").encode())


def verify_model_file(manifest: ModelManifest, manifest_path: Path) -> Path:
    """The model file's path, after checking it exists and has the manifest's sha256."""
    path = manifest.path(manifest_path)
    if not path.is_file():
        raise ModelError(f"{manifest_path}: model file {path} is missing "
                         f"(run `facewatch models fetch`)")
    actual = sha256_file(path)
    if actual != manifest.sha256:
        raise IntegrityError(f"{path}: sha256 {actual[:12]}… does not match the manifest's "
                             f"{manifest.sha256[:12]}… (file corrupt or replaced; "
                             f"run `facewatch models fetch` again)")
    return path
