"""FP16 ONNX models: what TensorRT >= 11 builds fp16 engines from.

TensorRT 11 removed BuilderFlag.FP16 (deprecated since 10.12): networks are strongly typed, so
precision is the ONNX file's own.  `<name>.fp16.onnx` is the FP32 model converted by ONNX
Runtime's float16 tool (`onnxruntime.transformers.float16`, the maintained successor of
onnxconverter-common's): weights and arithmetic in FP16, with the inputs and outputs kept FP32
(a Cast at each end, so callers feed and read float32 as before) and Softmax kept FP32 (its
exponent is where FP16's range runs out first).  Every tensor of facewatch's models stays well
inside FP16's range: MTCNN's inputs are scaled to [-1, 1], MobileFaceNet's are normalised and
its BatchNorms are folded into the convolutions.

ONNX Runtime runs the same file on a CPU, which is how it is checked without a GPU
(tests/engines/test_tensorrt_fp16.py and README: cosine to FP32, MTCNN boxes, LFW).  It is made
by `facewatch tensorrt fp16` (and by `tensorrt build --precision fp16` when missing) beside the
FP32 model, with a manifest recording the FP32 file's sha256, so a re-fetched model is
converted again.

Nothing here imports TensorRT.
"""

from __future__ import annotations

from pathlib import Path

import onnx

from facewatch.engines.files import atomic_write_bytes, sha256_file
from facewatch.engines.manifest import ConversionRecord, ModelManifest, write_manifest
from facewatch.engines.store import FP16_SUFFIX, ModelStore

# Recorded in the variant's manifest and in engine cache keys.
FP16_VERSION = "ort-float16:keep-io,softmax-fp32:v1"
KEEP_FP32_OPS = ("Softmax",)


def to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with FP16 weights and arithmetic; inputs, outputs and Softmax stay FP32."""
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16
    from onnxruntime.transformers.onnx_model import OnnxModel

    converted: onnx.ModelProto = convert_float_to_float16(
        model, keep_io_types=True, op_block_list=[*DEFAULT_OP_BLOCK_LIST, *KEEP_FP32_OPS])
    # The converter appends its input Casts at the end; ONNX (and TensorRT's parser) want the
    # nodes in topological order.
    OnnxModel(converted).topological_sort(is_deterministic=True)
    onnx.checker.check_model(converted)
    return converted


def fp16_variant(store: ModelStore, name: str) -> tuple[Path, bool]:
    """Make `<name>.fp16.onnx` + `.json` beside the FP32 model unless an up-to-date one is
    there; returns (manifest path, made now)."""
    fp32 = store.manifest(name)
    if fp32.precision != "fp32":
        raise ValueError(f"{name}: an FP16 model is made from an FP32 one, not {fp32.precision}")
    fp32_path = fp32.path(store.manifest_path(name))
    fp32_sha = sha256_file(fp32_path)
    record = ConversionRecord(fp32_file=fp32_path.name, fp32_sha256=fp32_sha,
                              converter=FP16_VERSION)
    variant = name + FP16_SUFFIX
    manifest_path = store.manifest_path(variant)
    if manifest_path.is_file():
        try:
            current = store.manifest(variant)
            model_ok = sha256_file(current.path(manifest_path)) == current.sha256
        except (OSError, ValueError):
            current, model_ok = None, False
        if current is not None and current.conversion == record and model_ok:
            return manifest_path, False
    model_path = store.root / f"{variant}.onnx"
    atomic_write_bytes(model_path, to_fp16(onnx.load(str(fp32_path))).SerializeToString())
    manifest = ModelManifest.model_validate({
        **fp32.model_dump(), "name": variant, "file": model_path.name,
        "sha256": sha256_file(model_path), "precision": "fp16", "calibration": None,
        "conversion": record.model_dump(),
        "notes": (fp32.notes + " " if fp32.notes else "") + "FP16 weights and arithmetic; "
                 "FP32 inputs, outputs and Softmax."})
    write_manifest(manifest_path, manifest)
    return manifest_path, True
