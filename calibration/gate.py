"""The accuracy gate run after calibration: how far an INT8 model strays from its FP32 original.

- embedder: cosine agreement of INT8 and FP32 embeddings of held-out real crops, and (with LFW)
  the change in LFW verification accuracy, detection and alignment held at FP32;
- detector nets: recall against hand-drawn face boxes (dlib's annotated photos) or, for a
  folder without annotations, against what FP32 finds; faces found on held-out frames; and
  the speed of each net at both precisions on its recorded inputs.

Thresholds are module constants, recorded in every manifest's gate.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from facewatch.boxes import iou_matrix
from facewatch.detection.detector import MtcnnDetector, MtcnnSettings
from facewatch.engines.backends.base import Runner
from facewatch.errors import BadInputError

# An INT8 embedder that loses more than this on LFW is refused (unless --force).
LFW_MAX_LOSS_PP = 0.3
# Without LFW, the cosine agreement decides.  A good calibration of foamliu measured 0.997
# mean; one on two black images 0.4.
COSINE_MEAN_FLOOR = 0.98
# A detector net in INT8 must keep recall within this, find within this fraction as many faces
# on held-out frames, and be this much faster than FP32 here; otherwise FP32 is kept for it.
RECALL_MAX_LOSS_PP = 1.0
FACES_FOUND_MAX_CHANGE = 0.01
MIN_SPEEDUP = 1.1
# A detection matches a hand-drawn box at this IoU (dlib's boxes are tighter than MTCNN's).
ANNOTATION_IOU = 0.3
REFERENCE_IOU = 0.5


def thresholds() -> dict[str, float]:
    return {"lfw_max_loss_pp": LFW_MAX_LOSS_PP, "cosine_mean_floor": COSINE_MEAN_FLOOR,
            "recall_max_loss_pp": RECALL_MAX_LOSS_PP,
            "faces_found_max_change": FACES_FOUND_MAX_CHANGE, "min_speedup": MIN_SPEEDUP}


def _unit(x: np.ndarray) -> np.ndarray:
    x = x.reshape(x.shape[0], -1).astype(np.float64)
    unit: np.ndarray = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return unit


def embedding_agreement(fp32: Runner, int8: Runner, output: str,
                        batches: list[np.ndarray]) -> dict[str, Any]:
    """Cosine similarity between FP32 and INT8 embeddings of the same crops."""
    name = fp32.input_names[0]
    cos = [np.einsum("ij,ij->i", _unit(fp32.run({name: b})[output]),
                     _unit(int8.run({name: b})[output])) for b in batches]
    if not cos:
        return {"crops": 0}
    c = np.concatenate(cos)
    return {"crops": int(c.size), "cosine_mean": round(float(c.mean()), 5),
            "cosine_min": round(float(c.min()), 5),
            "cosine_p1": round(float(np.percentile(c, 1)), 5)}


def speed(fp32: Runner, int8: Runner, batches: list[np.ndarray], repeats: int = 5
          ) -> dict[str, Any]:
    """Median time over `repeats` passes of `batches`, each precision; passes alternate so a
    busy neighbour slows both alike."""
    if not batches:
        return {}
    name = fp32.input_names[0]
    times: dict[str, list[float]] = {"fp32": [], "int8": []}
    for r in (fp32, int8):
        r.run({name: batches[0]})  # warm-up
    for _ in range(repeats):
        for key, r in (("fp32", fp32), ("int8", int8)):
            t = time.perf_counter()
            for b in batches:
                r.run({name: b})
            times[key].append(time.perf_counter() - t)
    f, i = float(np.median(times["fp32"])), float(np.median(times["int8"]))
    return {"fp32_ms": round(1000 * f, 2), "int8_ms": round(1000 * i, 2),
            "speedup": round(f / i, 3) if i > 0 else None, "batches": len(batches)}


@dataclass(frozen=True)
class AnnotatedImage:
    path: Path
    boxes: np.ndarray  # (K, 4) x1, y1, x2, y2


def read_dlib_annotations(folder: Path) -> list[AnnotatedImage]:
    """Every `<image file=..><box top left width height/>` in the folder's dlib XML files
    (those with landmarks repeat the same images and are skipped)."""
    images: dict[Path, list[list[float]]] = {}
    for xml in sorted(folder.glob("*.xml")):
        if "landmark" in xml.stem:
            continue
        try:
            root = ET.parse(xml).getroot()
        except ET.ParseError as exc:
            raise BadInputError(f"{xml}: not a dlib image-metadata file ({exc})") from None
        for image in root.iter("image"):
            path = folder / image.get("file", "")
            boxes = images.setdefault(path, [])
            for box in image.iter("box"):
                if box.get("ignore") == "1":
                    continue
                t, le = float(box.get("top", 0)), float(box.get("left", 0))
                boxes.append([le, t, le + float(box.get("width", 0)), t + float(box.get("height", 0))])
    return [AnnotatedImage(p, np.array(b, np.float32).reshape(-1, 4))
            for p, b in images.items() if p.is_file()]


def matched(truth: np.ndarray, found: np.ndarray, iou: float) -> int:
    """How many truth boxes a detection covers (greedy one-to-one, best overlap first)."""
    m = iou_matrix(truth, found)
    hits = 0
    while m.size and m.max() >= iou:
        i, j = np.unravel_index(int(np.argmax(m)), m.shape)
        hits += 1
        m[i, :] = -1
        m[:, j] = -1
    return hits


def detector_checks(nets: dict[str, Runner], settings: MtcnnSettings,
                    photos: list[tuple[np.ndarray, np.ndarray | None]],
                    frames: list[np.ndarray], reference: dict[str, Any] | None = None
                    ) -> dict[str, Any]:
    """Recall on photos (their truth boxes, or where None the reference detector's boxes) and
    faces found on frames, for one combination of P-, R- and O-Net runners."""
    det = MtcnnDetector(nets["pnet"], nets["rnet"], nets["onet"], settings=settings)
    out: dict[str, Any] = {}
    boxes_found = [det.detect(img).boxes for img, _ in photos]
    out["photo_boxes"] = boxes_found
    truth_total = hits = 0
    for k, (_, truth) in enumerate(photos):
        if truth is None:  # no annotations: FP32's boxes are the truth
            truth = reference["photo_boxes"][k] if reference else boxes_found[k]
            iou = REFERENCE_IOU
        else:
            iou = ANNOTATION_IOU
        truth_total += truth.shape[0]
        hits += matched(truth, boxes_found[k], iou)
    if truth_total:
        out["recall"] = round(hits / truth_total, 5)
        out["faces_annotated"] = truth_total
    out["faces_found_frames"] = int(sum(len(det.detect(f)) for f in frames))
    return out
