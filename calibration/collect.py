"""Calibration tensors, recorded from facewatch's own pipeline running on real frames.

Each model's runner is wrapped in a `RecordingRunner`, so every net is calibrated on exactly
what it sees in service: P-Net on the packed pyramid canvases `MtcnnDetector` builds, R-Net and
O-Net on the crops it cuts from them, the embedder on the aligned crops of the faces our own
detector finds, after the manifest's normalisation.  Nothing re-implements that preprocessing.

Memory stays bounded whatever the source length: every net keeps a uniform random sample
(a reservoir) of its inputs, with a byte budget for P-Net's large canvases.  Every fifth sample
kept is held out from calibration, for the accuracy gate.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from facewatch.engines.backends.base import Runner
from facewatch.pipeline import FacePipeline

NETS = ("embedder", "pnet", "rnet", "onet")


@dataclass(frozen=True)
class Caps:
    """Most samples kept per net (rows of a batch; P-Net: canvases) and per frame."""

    embedder: int = 2000
    rnet: int = 6000
    onet: int = 3000
    pnet: int = 300
    # ORT's minmax calibration holds every intermediate P-Net output of every canvas at once
    # (about 15x the canvas): 128 MB of float16 canvases peaked near 2 GB.
    pnet_bytes: int = 128 << 20
    rnet_per_frame: int = 64
    onet_per_frame: int = 32
    frames_kept: int = 40  # frames held for the detector's faces-found check


class _Reservoir:
    """A uniform sample of at most `cap` items from a stream (Vitter's algorithm R)."""

    def __init__(self, cap: int, rng: np.random.Generator) -> None:
        self.cap = cap
        self.items: list[np.ndarray] = []
        self.seen = 0
        self._rng = rng

    def add(self, item: np.ndarray) -> None:
        self.seen += 1
        if len(self.items) < self.cap:
            self.items.append(item)
            return
        j = int(self._rng.integers(0, self.seen))
        if j < self.cap:
            self.items[j] = item


class RecordingRunner:
    """A Runner that hands a copy of every input to `record` before running it."""

    def __init__(self, inner: Runner, record: _Recorder) -> None:
        self.inner = inner
        self.model_path = inner.model_path
        self.input_names = inner.input_names
        self.output_names = inner.output_names
        self._record = record

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self._record.add(inputs[self.input_names[0]])
        outputs: dict[str, np.ndarray] = self.inner.run(inputs)
        return outputs


class _Recorder:
    def __init__(self, net: str, caps: Caps, rng: np.random.Generator) -> None:
        self.net = net
        self.caps = caps
        self.rng = rng
        self.reservoir: _Reservoir | None = None
        self.shapes: set[tuple[int, ...]] = set()

    def add(self, x: np.ndarray) -> None:
        if self.reservoir is None:
            cap = getattr(self.caps, self.net)
            if self.net == "pnet":
                cap = max(8, min(cap, self.caps.pnet_bytes // max(x[:1].nbytes // 2, 1)))
            self.reservoir = _Reservoir(cap, self.rng)
        if self.net == "pnet":
            for canvas in x:  # one canvas per frame; kept in float16 to halve memory
                self.shapes.add(canvas.shape)
                self.reservoir.add(canvas.astype(np.float16))
            return
        per_frame = {"rnet": self.caps.rnet_per_frame, "onet": self.caps.onet_per_frame}
        rows = x
        limit = per_frame.get(self.net)
        if limit is not None and rows.shape[0] > limit:
            rows = rows[np.sort(self.rng.choice(rows.shape[0], limit, replace=False))]
        for row in rows:
            self.reservoir.add(row.astype(np.float16))


@dataclass
class CalibrationSet:
    """Recorded inputs per net, split into calibration and held-out samples."""

    source: str
    frames: int
    faces: int
    samples: dict[str, list[np.ndarray]] = field(default_factory=dict)
    held_out: dict[str, list[np.ndarray]] = field(default_factory=dict)
    frames_kept: list[np.ndarray] = field(default_factory=list)

    def batches(self, net: str, batch: int = 32, held_out: bool = False) -> list[np.ndarray]:
        """Samples as float32 model inputs: P-Net one canvas per batch (their sizes differ),
        the others stacked `batch` rows at a time (the last, short batch dropped when there is
        more than one, so histogram calibration sees equal shapes)."""
        items = (self.held_out if held_out else self.samples).get(net, [])
        if net == "pnet":
            return [c[None].astype(np.float32) for c in items]
        out = [np.stack(items[i:i + batch]).astype(np.float32) for i in range(0, len(items), batch)]
        if len(out) > 1 and out[-1].shape[0] != batch:
            out.pop()
        return out

    def count(self, net: str) -> int:
        return len(self.samples.get(net, []))


def collect(pipeline: FacePipeline, frames: Iterable[np.ndarray], source: str, total: int | None,
            caps: Caps = Caps(), seed: int = 0, progress: bool | None = None) -> CalibrationSet:
    """Run the pipeline over `frames`, recording every net's inputs."""
    rng = np.random.default_rng(seed)
    recorders = {net: _Recorder(net, caps, rng) for net in NETS}
    det = pipeline.detector
    originals = (det.pnet, det.rnet, det.onet, pipeline.embedder.runner if pipeline.embedder else None)
    det.pnet = RecordingRunner(det.pnet, recorders["pnet"])
    det.rnet = RecordingRunner(det.rnet, recorders["rnet"])
    det.onet = RecordingRunner(det.onet, recorders["onet"])
    if pipeline.embedder is not None:
        pipeline.embedder.runner = RecordingRunner(pipeline.embedder.runner, recorders["embedder"])
    kept = _Reservoir(caps.frames_kept, rng)
    n_frames = n_faces = 0
    try:
        disable = None if progress is None else not progress  # None: only on a terminal
        with tqdm(total=total, desc="calibration frames", unit="frame", disable=disable,
                  file=sys.stderr) as bar:
            for frame in frames:
                result = pipeline.analyze([frame], embed=pipeline.embedder is not None)[0]
                n_frames += 1
                n_faces += len(result)
                kept.add(frame)
                bar.update(1)
    finally:
        det.pnet, det.rnet, det.onet = originals[:3]
        if pipeline.embedder is not None and originals[3] is not None:
            pipeline.embedder.runner = originals[3]
    out = CalibrationSet(source=source, frames=n_frames, faces=n_faces, frames_kept=kept.items)
    for net, rec in recorders.items():
        items = rec.reservoir.items if rec.reservoir else []
        out.samples[net] = [x for i, x in enumerate(items) if i % 5 != 4]
        out.held_out[net] = [x for i, x in enumerate(items) if i % 5 == 4]
    return out
