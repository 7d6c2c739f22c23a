"""MTCNN face detection: P-Net over a packed image pyramid (or parts of it), then R-Net and
O-Net in batches.

One `run` call serves a whole batch of frames, each with its own `DetectionRequest` (the whole
frame, some regions, some boxes to refresh, or nothing), with one call per network: P-Net once
per group of same-size full frames (their pyramids packed into one canvas each and stacked as a
batch) and once over every region of every frame (patches of their pyramid levels packed into
one canvas); R-Net and O-Net once each over every candidate of every frame.  `detect_batch` is
`run` with the whole frame asked of every frame.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

import cv2
import numpy as np

from facewatch.detection.detections import Detections
from facewatch.detection.requests import DetectionRequest
from facewatch.engines.backends.base import Runner
from facewatch.engines.converters import mtcnn_outputs as conv


@dataclass(frozen=True)
class MtcnnSettings:
    min_face: float = 20.0  # smallest face side to find, in pixels
    scale_factor: float = 0.709  # ratio between pyramid levels
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)  # P-, R-, O-Net face probability
    # Cap on P-Net candidates per frame entering R-Net, best first, so a cluttered frame cannot
    # blow up the R-Net batch.
    max_candidates: int = 2000
    # Run O-Net a second time on each final (regressed, squared) box for its landmarks.  The
    # first pass sees the R-Net box, often off-centre; landmarks from a centred crop align
    # better: LFW 99.23 % → 99.42 % with sirius, and Barack Obama's ~80-px face in the
    # Hamilton clip 0.30 → 0.33 median similarity to his portrait.  Costs one O-Net call.
    refine_landmarks: bool = True
    # NMS IoU thresholds: (P-Net within a level, P-Net across levels, R-Net, O-Net with
    # intersection over the smaller box).  The first is fixed by the P-Net grid (see
    # `pnet_candidates`), kept here for the record.
    nms: tuple[float, float, float, float] = field(default=(0.5, 0.7, 0.7, 0.7))


def pyramid_layout(height: int, width: int, settings: MtcnnSettings,
                   min_face: float | None = None) -> conv.PyramidLayout:
    """Where P-Net's pyramid levels of a `height` x `width` frame sit in its packed canvas.

    A pure function of the frame size and the settings (`min_face` overrides theirs): the
    detector computes it once per size, and TensorRT's optimisation profiles are sized from it."""
    face = settings.min_face if min_face is None else min_face
    scales = conv.pyramid_scales(height, width, face, settings.scale_factor)
    return conv.pack_pyramid(height, width, scales)


_EMPTY = (np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32))
# Candidates around one refreshed box that O-Net sees if it rejects the best one.
REFRESH_RETRY = 5
# The squares tried around a refreshed face first (conv.REFRESH_VARIANTS[:3]); the others
# only for the faces these miss: 143 of 150 faces of the Hamilton clip are re-found by the
# first three, so R-Net sees about 3.5 crops per tracked face instead of 13.
REFRESH_FIRST = 3
# A region's pyramid levels: those whose 12-px window sees faces from the region's min_face
# (down to one pyramid step below it, where such a face is found too) up to its max_face.
_LEVEL_SLACK = 0.7


class MtcnnDetector:
    # Patches of a frame's pyramid levels beyond this share of its full canvas: the whole
    # frame instead (it costs about as much, and looks everywhere).
    max_patch_share = 0.6

    def __init__(self, pnet: Runner, rnet: Runner, onet: Runner,
                 settings: MtcnnSettings = MtcnnSettings()) -> None:
        self.pnet, self.rnet, self.onet = pnet, rnet, onet
        self.settings = settings
        # Cameras keep their frame size, so the pyramid plan is computed once per size.
        self._scales = lru_cache(maxsize=32)(self._make_scales)
        self._layout = lru_cache(maxsize=32)(
            lambda h, w, face: pyramid_layout(h, w, settings, face))
        self._cell_levels = lru_cache(maxsize=32)(conv.cell_levels)
        # What each frame of the last `run` cost: "full", "regions", "refresh" or "none".
        self.last_kinds: list[str] = []

    def _make_scales(self, height: int, width: int, min_face: float) -> list[float]:
        return conv.pyramid_scales(height, width, min_face, self.settings.scale_factor)

    def detect(self, frame: np.ndarray) -> Detections:
        return self.detect_batch([frame])[0]

    def detect_batch(self, frames: list[np.ndarray]) -> list[Detections]:
        """Find faces in RGB uint8 frames (H, W, 3); returns one `Detections` per frame."""
        return self.run(frames, [DetectionRequest(full_frame=True)] * len(frames))

    def run(self, frames: list[np.ndarray], requests: list[DetectionRequest]) -> list[Detections]:
        """Serve one request per frame (RGB uint8, H x W x 3); one `Detections` per frame.

        A frame whose request is empty costs nothing and has no detections."""
        if len(frames) != len(requests):
            raise ValueError(f"{len(frames)} frames but {len(requests)} requests")
        if not frames:
            return []
        faces = [self._min_face(r) for r in requests]
        pyramids = [conv.Pyramid.build(f, self._scales(f.shape[0], f.shape[1], face))
                    for f, face in zip(frames, faces)]
        patches: dict[int, list[_Patch]] = {}
        full = [r.full_frame for r in requests]
        for fi, (pyr, request) in enumerate(zip(pyramids, requests)):
            if full[fi] or not (request.regions or request.has_motion):
                continue
            found_patches = self._patches(pyr, request, faces[fi])
            layout = self._layout(*pyr.sizes[0], faces[fi])
            # Patches overlap and pack less tightly than whole levels: past a share of the
            # full canvas, the whole frame costs about the same and finds everything.
            area = sum(p.size[0] * p.size[1] for p in found_patches)
            if area > self.max_patch_share * layout.canvas_height * layout.canvas_width:
                full[fi] = True
            elif found_patches:
                patches[fi] = found_patches
        self.last_kinds = ["full" if full[i] else "regions" if i in patches
                           else "refresh" if r.refresh else "none"
                           for i, r in enumerate(requests)]
        found = [self._propose_full(pyramids, full, faces),
                 self._propose_patches(pyramids, patches)]
        boxes = np.concatenate([b for b, _, _ in found])
        idx = np.concatenate([i for _, _, i in found])
        # Refreshed faces: a few squares each first, the others only for the faces those
        # missed.  P-Net's candidates are in no group (-1); a refreshed face's in one each.
        # (a frame searched whole is the plain detector's: its refresh boxes add nothing the
        # full pass would not find, and cost R-Net and O-Net crops)
        refreshed = [(fi, box) for fi, r in enumerate(requests) if not full[fi] for box in r.refresh]
        first, rest = conv.REFRESH_VARIANTS[:REFRESH_FIRST], conv.REFRESH_VARIANTS[REFRESH_FIRST:]
        r_boxes, r_idx, r_groups = _refresh_candidates(refreshed, range(len(refreshed)), first)
        out = self._rnet_onet(pyramids, np.concatenate([boxes, r_boxes]),
                              np.concatenate([idx, r_idx]),
                              np.concatenate([np.full(idx.size, -1), r_groups]))
        missed = sorted(set(range(len(refreshed))) - set(out[4].tolist()))
        if missed:
            more = self._rnet_onet(pyramids, *_refresh_candidates(refreshed, missed, rest))
            out = tuple(np.concatenate([a, b]) for a, b in zip(out, more))  # type: ignore[assignment]
        boxes, scores, landmarks, idx = self._final(pyramids, *out[:4])
        results = []
        for i in range(len(frames)):
            sel = np.nonzero(idx == i)[0]
            sel = sel[np.argsort(-scores[sel], kind="stable")]
            results.append(Detections(boxes[sel], scores[sel], landmarks[sel]))
        return results

    def landmarks_for_boxes(self, frame: np.ndarray, boxes: np.ndarray) -> Detections:
        """Run only O-Net on given boxes, keeping every box whatever its score.

        For images known to hold a face where detection found none (LFW's hardest images),
        this still gives landmarks to align with.
        """
        pyramid = conv.Pyramid.build(frame, self._scales(*frame.shape[:2], self.settings.min_face))
        squared = conv.square(boxes.astype(np.float32))
        idx = np.zeros(squared.shape[0], np.int32)
        out = self.onet.run({"input": conv.crop_boxes([pyramid], idx, squared, 48)})
        landmarks = conv.landmarks_from_onet(squared, out["landmarks"])
        return Detections(conv.apply_offsets(squared, out["reg"]), out["prob"][:, 1].copy(),
                          landmarks)

    def _min_face(self, request: DetectionRequest) -> float:
        return self.settings.min_face if request.min_face is None else float(request.min_face)

    # Stage 1 ---------------------------------------------------------------------------

    def _propose_full(self, pyramids: list[conv.Pyramid], full: list[bool],
                      faces: list[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """P-Net over the whole pyramid of every frame marked `full`."""
        s = self.settings
        groups: dict[tuple[int, int, float], list[int]] = {}
        for i, p in enumerate(pyramids):
            if full[i]:
                groups.setdefault((*p.sizes[0], faces[i]), []).append(i)
        parts = []
        for (h, w, face), members in groups.items():
            layout = self._layout(h, w, face)
            if not layout.levels:
                continue  # frame smaller than one P-Net window at min_face
            canvas = np.zeros((len(members), 3, layout.canvas_height, layout.canvas_width),
                              np.float32)
            for b, fi in enumerate(members):
                for li, lv in enumerate(layout.levels):
                    canvas[b, :, lv.top:lv.top + lv.height, lv.left:lv.left + lv.width] = \
                        pyramids[fi].image(li + 1).transpose(2, 0, 1)
            out = self.pnet.run({"input": conv.normalise(canvas)})
            for b, fi in enumerate(members):
                prob = out["prob"][b, 1]
                levels = self._cell_levels(layout, *prob.shape)
                boxes, scores, offsets = conv.pnet_candidates(
                    prob, out["reg"][b], layout, levels, s.thresholds[0])
                parts.append(self._merge_levels(boxes, scores, offsets, np.full(scores.size, fi)))
        return _concat(parts)

    def _patches(self, pyr: conv.Pyramid, request: DetectionRequest, min_face: float
                 ) -> list[_Patch]:
        """The patches of pyramid levels P-Net must see for a frame's regions and motion."""
        h, w = pyr.sizes[0]
        level_scales = self._scales(h, w, min_face)
        out: list[_Patch] = []
        for region in request.regions:
            out += _region_patches(region.box, region.min_face, region.max_face, h, w,
                                   level_scales, pyr.sizes[1:])
        if request.motion is not None and request.has_motion:
            out += _motion_patches(request.motion, h, w, level_scales, pyr.sizes[1:])
        return out

    def _propose_patches(self, pyramids: list[conv.Pyramid], patches: dict[int, list[_Patch]]
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """P-Net over the patches of every frame, packed into one canvas."""
        todo = [(fi, p) for fi, found in patches.items() for p in found]
        if not todo:
            return _EMPTY
        layout = conv.pack_patches([p.size for _, p in todo], [p.scale for _, p in todo],
                                   [p.origin for _, p in todo], [fi for fi, _ in todo])
        canvas = np.zeros((1, 3, layout.canvas_height, layout.canvas_width), np.float32)
        for packed, (fi, p) in zip(layout.levels, todo):
            image = pyramids[fi].image(p.level + 1)
            canvas[0, :, packed.top:packed.top + packed.height,
                   packed.left:packed.left + packed.width] = \
                image[packed.origin_y:packed.origin_y + packed.height,
                      packed.origin_x:packed.origin_x + packed.width].transpose(2, 0, 1)
        out = self.pnet.run({"input": conv.normalise(canvas)})
        prob = out["prob"][0, 1]
        cells = conv.cell_levels(layout, *prob.shape)
        boxes, scores, offsets, patch_idx = conv.pnet_patch_candidates(
            prob, out["reg"][0], layout, cells, self.settings.thresholds[0])
        frame_of = np.array([p.frame for p in layout.levels], np.int32)[patch_idx]
        parts = [self._merge_levels(boxes[frame_of == fi], scores[frame_of == fi],
                                    offsets[frame_of == fi], frame_of[frame_of == fi])
                 for fi in np.unique(frame_of)]
        return _concat(parts)

    def _merge_levels(self, boxes: np.ndarray, scores: np.ndarray, offsets: np.ndarray,
                      idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One frame's P-Net candidates: the best `max_candidates`, NMS across levels,
        regressed and squared for R-Net."""
        s = self.settings
        top = np.argsort(-scores, kind="stable")[: s.max_candidates]
        boxes, scores, offsets, idx = boxes[top], scores[top], offsets[top], idx[top]
        keep = conv.nms(boxes, scores, s.nms[1])
        return (conv.square(conv.apply_offsets(boxes[keep], offsets[keep])), scores[keep],
                idx[keep].astype(np.int32))

    # Stage 2 ---------------------------------------------------------------------------

    def _refine(self, pyramids: list[conv.Pyramid], boxes: np.ndarray, idx: np.ndarray,
                groups: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """R-Net on every candidate; returns the regressed, squared survivors with their R-Net
        scores, frame indices and groups (-1: from P-Net; >= 0: around that refreshed box)."""
        if boxes.shape[0] == 0:
            return boxes, np.zeros(0, np.float32), idx, groups
        out = self.rnet.run({"input": conv.crop_boxes(pyramids, idx, boxes, 24)})
        scores = out["prob"][:, 1]
        ok = scores > self.settings.thresholds[1]
        boxes, scores, offsets, idx, groups = boxes[ok], scores[ok], out["reg"][ok], idx[ok], groups[ok]
        keep = conv.nms(boxes, scores, self.settings.nms[2], groups=idx)
        boxes = conv.square(conv.apply_offsets(boxes[keep], offsets[keep]))
        return boxes, scores[keep], idx[keep], groups[keep]

    # Stage 3 ---------------------------------------------------------------------------

    def _rnet_onet(self, pyramids: list[conv.Pyramid], boxes: np.ndarray, idx: np.ndarray,
                   groups: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """R-Net, then O-Net on its survivors; returns the faces O-Net accepts, before the
        last NMS: regressed boxes, scores, landmarks, frame indices and groups.

        Candidates around one refreshed face (a group) are views of one face, and an O-Net
        crop costs six times an R-Net one: O-Net sees the best of each group first, and the
        group's next `REFRESH_RETRY` only if it rejects that one (on the Hamilton clip it
        accepts the first for 129 of 150 faces)."""
        boxes, rnet_scores, idx, groups = self._refine(pyramids, boxes, idx, groups)
        if boxes.shape[0] == 0:
            return (boxes, np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32), idx,
                    groups)
        threshold = self.settings.thresholds[2]
        rank = _rank_in_groups(rnet_scores, groups)
        first = rank == 0  # every P-Net candidate, and the best of each group
        probs = np.zeros(boxes.shape[0], np.float32)
        regs = np.zeros((boxes.shape[0], 4), np.float32)
        points = np.zeros((boxes.shape[0], 10), np.float32)
        self._onet_into(pyramids, boxes, idx, first, probs, regs, points)
        found = np.unique(groups[first & (probs > threshold) & (groups >= 0)])
        retry = (rank > 0) & (rank <= REFRESH_RETRY) & ~np.isin(groups, found)
        if retry.any():
            self._onet_into(pyramids, boxes, idx, retry, probs, regs, points)
        ok = (first | retry) & (probs > threshold)
        boxes = boxes[ok]
        landmarks = conv.landmarks_from_onet(boxes, points[ok])
        return conv.apply_offsets(boxes, regs[ok]), probs[ok], landmarks, idx[ok], groups[ok]

    def _final(self, pyramids: list[conv.Pyramid], boxes: np.ndarray, scores: np.ndarray,
               landmarks: np.ndarray, idx: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """O-Net's NMS (intersection over the smaller box), then landmarks from a second
        O-Net pass on each final, centred box."""
        keep = conv.nms(boxes, scores, self.settings.nms[3], groups=idx, mode="min")
        boxes, scores, landmarks, idx = boxes[keep], scores[keep], landmarks[keep], idx[keep]
        if self.settings.refine_landmarks and boxes.shape[0]:
            centred = conv.square(boxes)
            again = self.onet.run({"input": conv.crop_boxes(pyramids, idx, centred, 48)})
            landmarks = conv.landmarks_from_onet(centred, again["landmarks"])
        return boxes, scores.astype(np.float32), landmarks, idx

    def _onet_into(self, pyramids: list[conv.Pyramid], boxes: np.ndarray, idx: np.ndarray,
                   which: np.ndarray, probs: np.ndarray, regs: np.ndarray, points: np.ndarray) -> None:
        out = self.onet.run({"input": conv.crop_boxes(pyramids, idx[which], boxes[which], 48)})
        probs[which] = out["prob"][:, 1]
        regs[which] = out["reg"]
        points[which] = out["landmarks"]


def _refresh_candidates(refreshed: list[tuple[int, tuple[float, float, float, float]]],
                        which: Iterable[int], variants: tuple[tuple[float, float, float], ...]
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """R-Net candidates around some of the refreshed faces ((frame, box) each): boxes, frame
    indices, and groups (the face's index in `refreshed`)."""
    chosen = list(which)
    if not chosen or not variants:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.int32), np.zeros(0, np.int64)
    boxes = conv.refresh_candidates(np.array([refreshed[i][1] for i in chosen], np.float32), variants)
    n = len(variants)
    idx = np.repeat(np.array([refreshed[i][0] for i in chosen], np.int32), n)
    return boxes, idx, np.repeat(np.array(chosen, np.int64), n)


def _concat(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]]
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not parts:
        return _EMPTY
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
            np.concatenate([p[2] for p in parts]).astype(np.int32))


@dataclass(frozen=True)
class _Patch:
    """A rectangle of one pyramid level for P-Net: `size` (height, width) from `origin`
    (y, x; even) of level `level` (scale `scale`)."""

    level: int
    size: tuple[int, int]
    scale: float
    origin: tuple[int, int]


def _region_patches(box: tuple[float, float, float, float], min_face: float,
                    max_face: float | None, height: int, width: int, level_scales: list[float],
                    level_sizes: tuple[tuple[int, int], ...]) -> list[_Patch]:
    """The patches of pyramid levels that cover `box` for faces of min_face..max_face pixels."""
    x1, y1 = max(0.0, box[0]), max(0.0, box[1])
    x2, y2 = min(float(width), box[2]), min(float(height), box[3])
    side = min(x2 - x1, y2 - y1)
    largest = side if max_face is None else min(max_face, side)
    out = []
    for li, scale in enumerate(level_scales):
        window = conv.PNET_CELL / scale  # the face side a 12-px window sees at this level
        if min_face * _LEVEL_SLACK <= window <= largest:
            patch = _level_patch(li, (x1, y1, x2, y2), scale, level_sizes[li])
            if patch is not None:
                out.append(patch)
    return out


def _motion_patches(mask: np.ndarray, height: int, width: int, level_scales: list[float],
                    level_sizes: tuple[tuple[int, int], ...]) -> list[_Patch]:
    """Patches where a face would overlap a changed cell of `mask`: at each level, the mask
    grown by that level's face size, one patch per connected part.

    The grouping works on a coarser grid at coarser levels (a quarter of the level's face
    per cell), so a patch may come out a little larger than the change needs."""
    mh, mw = mask.shape
    cell_x, cell_y = width / mw, height / mh
    changed = (mask > 0).astype(np.uint8)
    out = []
    for li, scale in enumerate(level_scales):
        window = conv.PNET_CELL / scale
        if window > min(height, width):
            break
        # a window of side `window` overlapping a changed cell lies within `window` of it
        kx, ky = int(math.ceil(window / cell_x)), int(math.ceil(window / cell_y))
        grown = cv2.dilate(changed, np.ones((2 * ky + 1, 2 * kx + 1), np.uint8))
        # grouped on every pool-th cell (grown by far more than a pool, so nothing is cut
        # off but up to a pool's width at an edge, added back below)
        pool = max(1, min(kx, ky) // 4)
        grid = np.ascontiguousarray(grown[::pool, ::pool])
        gx, gy = cell_x * pool, cell_y * pool
        count, _, stats, _ = cv2.connectedComponentsWithStats(grid, connectivity=8)
        for x, y, w, h, _area in stats[1:count]:
            box = ((x - 1) * gx, (y - 1) * gy, (x + w + 1) * gx, (y + h + 1) * gy)
            patch = _level_patch(li, box, scale, level_sizes[li])
            if patch is not None:
                out.append(patch)
    return out


def _level_patch(level: int, box: tuple[float, float, float, float], scale: float,
                 level_size: tuple[int, int]) -> _Patch | None:
    """`box` (frame pixels) on one level, starting at even coordinates so P-Net's cells on
    it are the level's own cells and a face inside is seen exactly as a full pass sees it;
    None when smaller than one P-Net window."""
    lh, lw = level_size
    ox = int(math.floor(max(0.0, box[0]) * scale)) & ~1
    oy = int(math.floor(max(0.0, box[1]) * scale)) & ~1
    ex, ey = min(lw, int(math.ceil(box[2] * scale))), min(lh, int(math.ceil(box[3] * scale)))
    if ex - ox < conv.PNET_CELL or ey - oy < conv.PNET_CELL:
        return None
    return _Patch(level, (ey - oy, ex - ox), scale, (oy, ox))


def _rank_in_groups(scores: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Each item's rank by score within its group (0: the best); 0 for items in no group."""
    rank = np.zeros(groups.size, np.int64)
    order = np.lexsort((-scores, groups))  # by group, best first within each
    g = groups[order]
    rank[order] = np.arange(g.size) - np.searchsorted(g, g, side="left")
    rank[groups < 0] = 0
    return rank
