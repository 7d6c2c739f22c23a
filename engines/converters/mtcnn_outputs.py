"""MTCNN's numeric steps as pure, vectorised numpy functions.

Array layouts used throughout:
- boxes: float32 (K, 4) as x1, y1, x2, y2 in pixel-edge coordinates (a box covering pixels
  0..9 is [0, 10)); scores: (K,); image indices: int (K,) saying which frame a box belongs to.
- P-Net maps: prob (H', W') face probability, reg (4, H', W') box offsets, per packed canvas.
- landmarks: (K, 5, 2) x, y in pixel coordinates as cv2.warpAffine reads them (pixel i
  centred on i), so they feed alignment directly.

Coordinates are kept continuous (no integer truncation, no "+1" widths), which is where this
differs from facenet-pytorch's port; the networks' outputs are the same.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

PNET_STRIDE = 2
PNET_CELL = 12
# cv2.remap refuses maps and sources of 32,767 (SHRT_MAX) rows or columns or more.
REMAP_LIMIT = 32767
# Pixel normalisation every MTCNN stage expects: (x - 127.5) / 128.
MEAN = 127.5
SCALE = 0.0078125


def pyramid_scales(height: int, width: int, min_face: float, factor: float) -> list[float]:
    """Scales at which P-Net's 12-px window sees faces from `min_face` px upward."""
    scale = PNET_CELL / min_face
    side = min(height, width) * scale
    scales = []
    while side >= PNET_CELL:
        scales.append(scale)
        scale *= factor
        side *= factor
    return scales


def level_size(height: int, width: int, scale: float) -> tuple[int, int]:
    return int(math.ceil(height * scale)), int(math.ceil(width * scale))


@dataclass(frozen=True)
class PackedLevel:
    """Where one pyramid level, or a patch of one, sits inside a packed P-Net canvas.

    A patch starts `origin_y` rows and `origin_x` columns into its level (both even, so
    P-Net's stride-2 grid on the patch is the level's own grid); a whole level starts at 0.
    `frame` says which frame of a batch the patch belongs to (region canvases hold patches
    of several frames)."""

    scale: float
    top: int
    left: int
    height: int
    width: int
    origin_y: int = 0
    origin_x: int = 0
    frame: int = 0


@dataclass(frozen=True)
class PyramidLayout:
    """All pyramid levels of one frame size packed into one canvas, so P-Net runs once.

    P-Net has no padding and a 12-px receptive field at stride 2, so an output cell whose
    window lies wholly inside one level equals what P-Net gives on that level alone; cells whose
    window crosses a level's edge are discarded.  Levels sit at even offsets to keep P-Net's
    stride-2 grid aligned with each level's own grid.
    """

    canvas_height: int
    canvas_width: int
    levels: tuple[PackedLevel, ...]


def pack_pyramid(height: int, width: int, scales: list[float]) -> PyramidLayout:
    """Pack the levels into the smallest canvas found among a range of canvas widths.

    Each candidate width is filled by a MaxRects packer (it keeps every free rectangle, so
    small levels fill the holes beside big ones); the layout is computed once per frame size.
    On 640x360 at min_face 20 the canvas is 91 % levels, where stacking shelves reached 81 %.
    """
    sizes = [level_size(height, width, s) for s in scales]
    if not sizes:
        return PyramidLayout(0, 0, ())
    widest = _even_up(max(w for _, w in sizes))
    best: PyramidLayout | None = None
    for step in range(41):  # canvas widths from the widest level to twice it
        canvas_w = _even_up(int(widest * (1 + step / 40)))
        layout = _maxrects_pack(sizes, scales, canvas_w)
        if best is None or _area(layout) < _area(best):
            best = layout
    assert best is not None
    return best


def _area(layout: PyramidLayout) -> int:
    return layout.canvas_height * layout.canvas_width


def _even_up(v: int) -> int:
    return v + (v & 1)


def _maxrects_pack(sizes: list[tuple[int, int]], scales: list[float], canvas_w: int
                   ) -> PyramidLayout:
    """Place levels, largest first, each at the free spot whose top is highest (then leftmost).

    Free space is a list of maximal rectangles (x, y, w, h) in an unbounded-height strip; a
    placed level splits every free rectangle it overlaps.  Sizes are rounded up to even so
    every level sits at even offsets, keeping P-Net's stride-2 grid aligned with its own.
    """
    free = [(0, 0, canvas_w, 1 << 30)]
    placed: dict[int, PackedLevel] = {}
    for i in sorted(range(len(sizes)), key=lambda k: -sizes[k][0] * sizes[k][1]):
        h, w = sizes[i]
        he, we = _even_up(h), _even_up(w)
        fits = [(y, x) for x, y, fw, fh in free if fw >= we and fh >= he]
        if not fits:  # wider than the canvas: cannot happen, canvas_w >= widest level
            raise ValueError("pyramid level wider than the canvas")
        y, x = min(fits)
        placed[i] = PackedLevel(scales[i], y, x, h, w)
        free = _split_free(free, (x, y, we, he))
    levels = tuple(placed[i] for i in range(len(sizes)))
    bottom = max(lv.top + lv.height for lv in levels)
    return PyramidLayout(_even_up(bottom), canvas_w, levels)


def _split_free(free: list[tuple[int, int, int, int]], used: tuple[int, int, int, int]
                ) -> list[tuple[int, int, int, int]]:
    ux, uy, uw, uh = used
    out = []
    for fx, fy, fw, fh in free:
        if ux >= fx + fw or ux + uw <= fx or uy >= fy + fh or uy + uh <= fy:
            out.append((fx, fy, fw, fh))
            continue
        if ux > fx:
            out.append((fx, fy, ux - fx, fh))
        if ux + uw < fx + fw:
            out.append((ux + uw, fy, fx + fw - ux - uw, fh))
        if uy > fy:
            out.append((fx, fy, fw, uy - fy))
        if uy + uh < fy + fh:
            out.append((fx, uy + uh, fw, fy + fh - uy - uh))
    # drop rectangles contained in another
    return [r for r in out if not any(o != r and o[0] <= r[0] and o[1] <= r[1]
                                      and o[0] + o[2] >= r[0] + r[2] and o[1] + o[3] >= r[1] + r[3]
                                      for o in out)]


def cell_levels(layout: PyramidLayout, out_height: int, out_width: int) -> np.ndarray:
    """For each P-Net output cell of the canvas, the level (or patch) holding its whole window,
    or -1.  Cell (i, j) sees canvas rows 2i..2i+11 and columns 2j..2j+11."""
    levels = np.full((out_height, out_width), -1, np.int32)
    for i, lv in enumerate(layout.levels):
        # first and last cell whose 12-px window lies inside the level, in each direction
        y0, x0 = -(-lv.top // PNET_STRIDE), -(-lv.left // PNET_STRIDE)
        y1 = (lv.top + lv.height - PNET_CELL) // PNET_STRIDE
        x1 = (lv.left + lv.width - PNET_CELL) // PNET_STRIDE
        if y1 >= y0 and x1 >= x0:
            levels[y0:min(y1 + 1, out_height), x0:min(x1 + 1, out_width)] = i
    return levels


def normalise(canvas: np.ndarray) -> np.ndarray:
    """Normalise a canvas of 0..255 float32 pixels in place as MTCNN's networks take them,
    (x - 127.5) / 128, and return it."""
    canvas -= MEAN
    canvas *= SCALE
    return canvas


def pnet_candidates(prob: np.ndarray, reg: np.ndarray, layout: PyramidLayout, levels: np.ndarray,
                    threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Turn one canvas's P-Net maps into candidate boxes in frame coordinates.

    Returns boxes (K, 4), scores (K,) and offsets (K, 4); see `pnet_patch_candidates`."""
    boxes, scores, offsets, _ = pnet_patch_candidates(prob, reg, layout, levels, threshold)
    return boxes, scores, offsets


def pnet_patch_candidates(prob: np.ndarray, reg: np.ndarray, layout: PyramidLayout,
                          levels: np.ndarray, threshold: float
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Candidate boxes of one canvas, with the index of the level or patch each came from.

    Within a level, P-Net's windows are equal squares 2 cells apart, and two of them overlap by
    more than MTCNN's per-level NMS threshold (IoU 0.5) exactly when they are 8-neighbours.  So
    the per-level NMS is done as "keep cells that are the maximum of their 3x3 neighbourhood":
    one dilation over the whole canvas instead of a greedy loop over hundreds of cells.  (In a
    patch, a cell on the patch's edge is compared only with the cells inside it.)

    Returns boxes (K, 4), scores (K,), offsets (K, 4) and patch indices (K,) into
    `layout.levels`.
    """
    valid = np.where(levels >= 0, prob, 0.0).astype(np.float32)
    peaks = (valid >= threshold) & (valid >= cv2.dilate(valid, np.ones((3, 3), np.uint8)))
    ys, xs = np.nonzero(peaks)
    level_idx = levels[ys, xs]
    table = np.array([(lv.top - lv.origin_y, lv.left - lv.origin_x, lv.scale)
                      for lv in layout.levels], np.float32).reshape(-1, 3)[level_idx]
    tops, lefts, scales = table[:, 0], table[:, 1], table[:, 2]
    # The cell's box as MTCNN's authors map it back to the frame (their MATLAB code, kept by
    # every port): [(2j + 1) / s, (2j + 12) / s], slightly smaller than the 12-px window.  P-Net's
    # box offsets were trained against this box; using the exact window instead measurably lost
    # faces on the Hamilton clip (464 vs 493 in 275 frames).
    gx = xs * PNET_STRIDE - lefts
    gy = ys * PNET_STRIDE - tops
    boxes = np.stack([(gx + 1) / scales, (gy + 1) / scales,
                      (gx + PNET_CELL) / scales, (gy + PNET_CELL) / scales], axis=1).astype(np.float32)
    return (boxes, prob[ys, xs].astype(np.float32), reg[:, ys, xs].T.astype(np.float32),
            level_idx.astype(np.int32))


def pack_patches(sizes: list[tuple[int, int]], scales: list[float], origins: list[tuple[int, int]],
                 frames: list[int], align: int = 16) -> PyramidLayout:
    """Pack patches of pyramid levels (of any frames) into one canvas, tallest first, in
    rows ("shelves") of a canvas about as wide as it is tall.

    Built per call (regions change every frame), so it is a simple shelf packer rather than
    the MaxRects search of `pack_pyramid`.  The canvas's sides are rounded up to `align`, so
    consecutive calls mostly repeat a few shapes (ONNX Runtime and TensorRT plan per shape).
    Patches sit at even offsets.
    """
    if not sizes:
        return PyramidLayout(0, 0, ())
    area = sum(_even_up(h) * _even_up(w) for h, w in sizes)
    widest = max(_even_up(w) for _, w in sizes)
    canvas_w = _round_up(max(widest, int(math.sqrt(area) * 1.15)), align)
    order = sorted(range(len(sizes)), key=lambda k: (-sizes[k][0], -sizes[k][1]))
    placed: dict[int, PackedLevel] = {}
    x = y = shelf = 0
    for i in order:
        h, w = sizes[i]
        if x + _even_up(w) > canvas_w:
            x, y, shelf = 0, y + shelf, 0
        oy, ox = origins[i]
        placed[i] = PackedLevel(scales[i], y, x, h, w, oy, ox, frames[i])
        x += _even_up(w)
        shelf = max(shelf, _even_up(h))
    canvas_h = _round_up(y + shelf, align)
    return PyramidLayout(canvas_h, canvas_w, tuple(placed[i] for i in range(len(sizes))))


def _round_up(v: int, step: int) -> int:
    return -(-v // step) * step


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, groups: np.ndarray | None = None,
        mode: str = "union") -> np.ndarray:
    """Greedy non-maximum suppression; returns kept indices, best first.

    Boxes of different `groups` (frames, pyramid levels) never suppress each other, so one
    call handles a whole batch.  `mode="min"` divides the intersection by the smaller area, as
    MTCNN's last stage does.  The overlap matrix is computed in one vectorised step; only the
    greedy walk, one cheap row operation per kept box, stays in Python.
    """
    n = boxes.shape[0]
    if n == 0:
        return np.zeros(0, np.int64)
    order = np.argsort(-scores, kind="stable")
    b = boxes[order].astype(np.float32)
    x1, y1, x2, y2 = (b[:, i] for i in range(4))
    areas = (x2 - x1) * (y2 - y1)
    w = np.clip(np.minimum(x2[:, None], x2[None, :]) - np.maximum(x1[:, None], x1[None, :]), 0, None)
    h = np.clip(np.minimum(y2[:, None], y2[None, :]) - np.maximum(y1[:, None], y1[None, :]), 0, None)
    inter = w * h
    if mode == "min":
        denom = np.minimum(areas[:, None], areas[None, :])
    else:
        denom = areas[:, None] + areas[None, :] - inter
    over = inter > iou_threshold * np.maximum(denom, 1e-9)
    if groups is not None:
        g = groups[order]
        over &= g[:, None] == g[None, :]
    suppressed = np.zeros(n, bool)
    keep = []
    for i in range(n):
        if not suppressed[i]:
            keep.append(i)
            suppressed |= over[i]
    return order[np.asarray(keep, np.int64)]


def apply_offsets(boxes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """MTCNN box regression: offsets are fractions of the box's width and height."""
    wh = np.concatenate([boxes[:, 2:] - boxes[:, :2]] * 2, axis=1)
    moved: np.ndarray = (boxes + offsets * wh).astype(np.float32)
    return moved


def square(boxes: np.ndarray) -> np.ndarray:
    """Grow each box to a square around its centre (the next stage's input is square)."""
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    side = np.max(boxes[:, 2:] - boxes[:, :2], axis=1, keepdims=True)
    return np.concatenate([centre - side / 2, centre + side / 2], axis=1).astype(np.float32)


# Where R-Net looks for a tracked face: squares around its predicted box at several sizes
# (dx, dy as fractions of the box's longer side, and the square's side as a fraction of it),
# since a prediction is off by a little and MTCNN's final boxes are taller than the squares
# its earlier stages see.  On the Hamilton clip at 10 fps, these nine re-find 147 of 150
# faces from their previous frame's box alone (seven squares of the full side and shifts of
# it: 138; the box squared alone: 117); the four lower ones keep the gated detector's
# tracks of the clip's audience (Michelle Obama at 60 px) from dropping a frame now and then.
REFRESH_VARIANTS: tuple[tuple[float, float, float], ...] = (
    (0.0, 0.0, 1.0), (0.0, 0.0, 0.8), (0.0, 0.0, 0.65), (0.0, 0.0, 1.25),
    (-0.12, 0.0, 0.8), (0.12, 0.0, 0.8), (0.0, -0.12, 0.8), (0.0, 0.12, 0.8),
    (0.0, -0.1, 0.65),
    # MTCNN's final boxes reach up over the forehead: the face P-Net would see sits lower
    (0.0, 0.1, 0.65), (0.0, 0.12, 0.5), (-0.1, 0.1, 0.6), (0.1, 0.1, 0.6))


def refresh_candidates(boxes: np.ndarray,
                       variants: tuple[tuple[float, float, float], ...] = REFRESH_VARIANTS
                       ) -> np.ndarray:
    """R-Net candidates around predicted face boxes: (K, 4) → (K * V, 4), V per box in order."""
    sq = square(boxes.astype(np.float32).reshape(-1, 4))
    centre = (sq[:, :2] + sq[:, 2:]) / 2
    side = sq[:, 2:3] - sq[:, 0:1]
    v = np.asarray(variants, np.float32)
    c = centre[:, None, :] + v[None, :, :2] * side[:, None, :]  # (K, V, 2)
    half = (side[:, None, :] * v[None, :, 2:3]) / 2  # (K, V, 1)
    out: np.ndarray = np.concatenate([c - half, c + half], axis=2).reshape(-1, 4).astype(np.float32)
    return out


def landmarks_from_onet(boxes: np.ndarray, points: np.ndarray) -> np.ndarray:
    """O-Net gives x1..x5, y1..y5 as fractions of its input box; return (K, 5, 2).

    The fraction is taken from the box's first pixel, as MTCNN's authors decode it (their
    MATLAB code and every port): x = x1 + p * w read as a pixel index.  Treating the box edge
    as the origin instead (half a pixel further left) measured worse on LFW and video.
    """
    wh = boxes[:, 2:] - boxes[:, :2]
    xs = boxes[:, 0:1] + points[:, :5] * wh[:, 0:1]
    ys = boxes[:, 1:2] + points[:, 5:] * wh[:, 1:2]
    return np.stack([xs, ys], axis=2).astype(np.float32)


class Pyramid:
    """One frame at several scales, finest first, as uint8 RGB; level 0 is the frame itself.

    The levels are area-downsampled (cv2.INTER_AREA), so sampling a box bilinearly from the
    level where it is just larger than the network input gives nearly what area resampling of
    the full frame would, at the cost of one cv2.remap per level instead of a resize per box.

    Levels are made when first asked for (each from the one before it), so a frame that only
    needs crops of a few large faces, or P-Net over a few fine levels, pays only for those.
    """

    def __init__(self, images: tuple[np.ndarray, ...], scales: tuple[tuple[float, float], ...],
                 sizes: tuple[tuple[int, int], ...] | None = None) -> None:
        """`images`: the frame and any levels already made; `scales`: the (x, y) scale of every
        image; `sizes`: the (height, width) of every image, so that those not given are made
        when asked for (`build` gives only the frame)."""
        self.scales: tuple[tuple[float, float], ...] = tuple(scales)
        self.sizes: tuple[tuple[int, int], ...] = sizes if sizes is not None else tuple(
            (int(i.shape[0]), int(i.shape[1])) for i in images)
        self._images: list[np.ndarray] = list(images)

    @staticmethod
    def build(frame: np.ndarray, scales: list[float]) -> Pyramid:
        """`frame`'s pyramid for these P-Net scales; its levels are made on demand."""
        h, w = frame.shape[:2]
        sizes = ((h, w), *(level_size(h, w, s) for s in scales))
        # (x, y) scale of each image, from its actual size
        return Pyramid((frame,), tuple((lw / w, lh / h) for lh, lw in sizes), sizes)

    def image(self, index: int) -> np.ndarray:
        """Image `index` (0: the frame, i: P-Net scale i - 1)."""
        while len(self._images) <= index:
            # Each level from the previous one: the same area filter on ever smaller sources
            # costs a fraction of resizing the full frame every time.
            lh, lw = self.sizes[len(self._images)]
            self._images.append(cv2.resize(self._images[-1], (lw, lh), interpolation=cv2.INTER_AREA))
        return self._images[index]

    @property
    def images(self) -> tuple[np.ndarray, ...]:
        """The frame and every level."""
        return tuple(self.image(i) for i in range(len(self.sizes)))


def crop_boxes(pyramids: list[Pyramid], image_idx: np.ndarray, boxes: np.ndarray,
               size: int) -> np.ndarray:
    """Resample each box of each frame to size x size, normalised, as (K, 3, size, size).

    Each box is sampled from the coarsest pyramid level in which it is still at least `size`
    pixels wide (the frame itself for boxes smaller than that), with the boxes of one level in
    as few cv2.remap calls as its limit allows (`_remap`): 1,365 boxes per call at 24 px, 682
    at 48, so a crowd or a busy texture is cropped in several calls, with the same result.
    Outside the frame counts as black, as in the original MTCNN.
    """
    k = boxes.shape[0]
    out = np.empty((k * size, size, 3), np.uint8)
    side = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    t = (np.arange(size, dtype=np.float32) + 0.5) / size
    for fi in np.unique(image_idx):
        pyr = pyramids[fi]
        sx = np.array([f[0] for f in pyr.scales], np.float32)
        # index of the coarsest level where the box is still >= size pixels
        fits = side[:, None] * sx[None, :] >= size
        level = np.where(fits.any(axis=1), fits.shape[1] - 1 - np.argmax(fits[:, ::-1], axis=1), 0)
        for li in np.unique(level[image_idx == fi]):
            sel = np.nonzero((image_idx == fi) & (level == li))[0]
            fx, fy = pyr.scales[li]
            b = boxes[sel]
            xs = (b[:, 0:1] + t[None, :] * (b[:, 2:3] - b[:, 0:1])) * fx - 0.5  # (n, size)
            ys = (b[:, 1:2] + t[None, :] * (b[:, 3:4] - b[:, 1:2])) * fy - 0.5
            map_x = np.broadcast_to(xs[:, None, :], (sel.size, size, size)).reshape(-1, size)
            map_y = np.broadcast_to(ys[:, :, None], (sel.size, size, size)).reshape(-1, size)
            crops = _remap(pyr.image(int(li)), map_x, map_y, size)
            out.reshape(k, size, size, 3)[sel] = crops.reshape(sel.size, size, size, 3)
    x = out.reshape(k, size, size, 3).transpose(0, 3, 1, 2).astype(np.float32)
    x -= MEAN
    x *= SCALE
    return x


def _remap(image: np.ndarray, map_x: np.ndarray, map_y: np.ndarray, size: int) -> np.ndarray:
    """cv2.remap of `image` through maps of (boxes x size, size), in calls within its limits.

    Maps are cut into runs of whole boxes below REMAP_LIMIT rows.  A source of REMAP_LIMIT
    pixels or more a side (a panorama) is cut to the window the run's samples touch, halving
    the run until the window fits; the samples and the black outside the image are the same."""
    per_call = (REMAP_LIMIT - 1) // size
    if map_x.shape[0] > per_call * size:
        return np.concatenate([
            _remap(image, map_x[s:s + per_call * size], map_y[s:s + per_call * size], size)
            for s in range(0, map_x.shape[0], per_call * size)])
    height, width = image.shape[:2]
    if height < REMAP_LIMIT and width < REMAP_LIMIT:
        return cv2.remap(image, np.ascontiguousarray(map_x), np.ascontiguousarray(map_y),
                         cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    # bilinear sampling reads the pixel below and the one after each coordinate
    left = min(max(int(np.floor(map_x.min())), 0), width)
    right = min(max(int(np.floor(map_x.max())) + 2, 0), width)
    top = min(max(int(np.floor(map_y.min())), 0), height)
    bottom = min(max(int(np.floor(map_y.max())) + 2, 0), height)
    boxes = map_x.shape[0] // size
    if (right - left >= REMAP_LIMIT or bottom - top >= REMAP_LIMIT) and boxes > 1:
        half = boxes // 2 * size
        return np.concatenate([_remap(image, map_x[:half], map_y[:half], size),
                               _remap(image, map_x[half:], map_y[half:], size)])
    if right <= left or bottom <= top:  # wholly outside the image: black
        return np.zeros((*map_x.shape, *image.shape[2:]), image.dtype)
    window = image[top:bottom, left:right]
    return cv2.remap(window, np.ascontiguousarray(map_x - np.float32(left)),
                     np.ascontiguousarray(map_y - np.float32(top)), cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_CONSTANT, borderValue=0)
