"""MTCNN's numeric steps (engines/converters/mtcnn.py): NMS, the packed P-Net pyramid, and
P-Net run once on the packed canvas against P-Net run on every level alone."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from facewatch.engines.backends.base import BackendOptions
from facewatch.engines.backends.onnxruntime import OnnxRuntimeRunner
from facewatch.engines.converters import mtcnn_outputs as conv
from facewatch.images import load_image

# NMS -----------------------------------------------------------------------------------

A: list[float] = [0, 0, 10, 10]
B: list[float] = [1, 0, 11, 10]  # IoU with A: 90 / 110 = 0.82
C: list[float] = [20, 20, 30, 30]  # apart
D: list[float] = [2, 2, 6, 6]  # inside A: IoU 0.16, but overlap over the smaller box 1.0


def _nms(boxes: list[list[float]], scores: list[float], thr: float, **kw: object) -> list[int]:
    return conv.nms(np.array(boxes, np.float32), np.array(scores, np.float32), thr, **kw).tolist()  # type: ignore[arg-type]


def test_nms_union() -> None:
    assert _nms([C, B, A], [0.7, 0.8, 0.9], 0.7) == [2, 0]  # indices into the input, best first
    assert _nms([C, B, A], [0.7, 0.8, 0.9], 0.9) == [2, 1, 0]
    assert _nms([A, D], [0.9, 0.8], 0.7) == [0, 1]


def test_nms_min_suppresses_a_box_inside_another() -> None:
    assert _nms([A, D], [0.9, 0.8], 0.7, mode="min") == [0]
    assert _nms([D, A], [0.9, 0.8], 0.7, mode="min") == [0]  # whichever scores higher stays


def test_nms_groups_never_suppress_each_other() -> None:
    boxes, scores = [A, B, B, A], [0.9, 0.8, 0.95, 0.6]
    assert _nms(boxes, scores, 0.5, groups=np.array([0, 0, 1, 1])) == [2, 0]
    assert _nms(boxes, scores, 0.5) == [2]


def test_nms_empty() -> None:
    keep = conv.nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), 0.5)
    assert keep.shape == (0,) and keep.dtype == np.int64


def _greedy_reference(boxes: np.ndarray, scores: np.ndarray, thr: float, groups: np.ndarray,
                      mode: str) -> list[int]:
    """The textbook greedy loop, one box at a time."""
    keep: list[int] = []
    for i in sorted(range(len(scores)), key=lambda k: (-scores[k], k)):
        ok = True
        for j in keep:
            if groups[i] != groups[j]:
                continue
            w = max(0.0, min(boxes[i, 2], boxes[j, 2]) - max(boxes[i, 0], boxes[j, 0]))
            h = max(0.0, min(boxes[i, 3], boxes[j, 3]) - max(boxes[i, 1], boxes[j, 1]))
            inter = w * h
            ai = (boxes[i, 2] - boxes[i, 0]) * (boxes[i, 3] - boxes[i, 1])
            aj = (boxes[j, 2] - boxes[j, 0]) * (boxes[j, 3] - boxes[j, 1])
            denom = min(ai, aj) if mode == "min" else ai + aj - inter
            if inter > thr * denom:
                ok = False
                break
        if ok:
            keep.append(i)
    return keep


@pytest.mark.parametrize("mode", ["union", "min"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_nms_equals_the_greedy_loop(mode: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 100, (300, 2))
    wh = rng.uniform(5, 40, (300, 2))
    boxes = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
    scores = rng.uniform(0, 1, 300).astype(np.float32)
    groups = rng.integers(0, 3, 300)
    for thr in (0.3, 0.7):
        keep = conv.nms(boxes, scores, thr, groups=groups, mode=mode).tolist()
        assert keep == _greedy_reference(boxes, scores, thr, groups, mode)
        assert 0 < len(keep) < 300


# Packed pyramid ------------------------------------------------------------------------

FRAME_SIZES = [(360, 640), (720, 1280), (375, 500), (640, 360), (97, 113), (25, 300)]


@pytest.mark.parametrize("height, width", FRAME_SIZES)
def test_pack_pyramid_layout(height: int, width: int) -> None:
    scales = conv.pyramid_scales(height, width, 20.0, 0.709)
    layout = conv.pack_pyramid(height, width, scales)
    assert [lv.scale for lv in layout.levels] == scales
    assert layout.canvas_height % 2 == 0 and layout.canvas_width % 2 == 0
    rects = []
    for lv, s in zip(layout.levels, scales):
        assert (lv.height, lv.width) == conv.level_size(height, width, s)
        assert lv.top % 2 == 0 and lv.left % 2 == 0  # keeps P-Net's stride-2 grid aligned
        assert lv.top + lv.height <= layout.canvas_height
        assert lv.left + lv.width <= layout.canvas_width
        assert min(lv.height, lv.width) >= conv.PNET_CELL
        rects.append((lv.top, lv.left, lv.top + lv.height, lv.left + lv.width))
    for i, a in enumerate(rects):
        for b in rects[i + 1:]:
            overlap = min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])
            assert not overlap, (a, b)
    # packing pays: the canvas is not much more than the levels' own area
    area = sum(lv.height * lv.width for lv in layout.levels)
    assert layout.canvas_height * layout.canvas_width <= 1.6 * area + 64 * layout.canvas_width


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pack_patches_layout(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 40))
    sizes = [(int(rng.integers(12, 200)), int(rng.integers(12, 300))) for _ in range(n)]
    origins = [(2 * int(rng.integers(0, 50)), 2 * int(rng.integers(0, 50))) for _ in range(n)]
    layout = conv.pack_patches(sizes, [0.5] * n, origins, list(range(n)))
    assert layout.canvas_height % 16 == 0 and layout.canvas_width % 16 == 0
    rects = []
    for i, (p, size, origin) in enumerate(zip(layout.levels, sizes, origins)):
        assert (p.height, p.width) == size and (p.origin_y, p.origin_x) == origin and p.frame == i
        assert p.top % 2 == 0 and p.left % 2 == 0
        assert p.top + p.height <= layout.canvas_height and p.left + p.width <= layout.canvas_width
        rects.append((p.top, p.left, p.top + p.height, p.left + p.width))
    for i, a in enumerate(rects):
        for b in rects[i + 1:]:
            assert not (min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1]))
    area = sum(h * w for h, w in sizes)
    assert layout.canvas_height * layout.canvas_width <= 2.5 * area + 16 * (layout.canvas_width + layout.canvas_height)
    assert conv.pack_patches([], [], [], []).levels == ()


@pytest.mark.parametrize("height, width", FRAME_SIZES[:3])
def test_cell_levels_holds_every_window_inside_its_level(height: int, width: int) -> None:
    layout = conv.pack_pyramid(height, width, conv.pyramid_scales(height, width, 20.0, 0.709))
    out_h = (layout.canvas_height - conv.PNET_CELL) // 2 + 1
    out_w = (layout.canvas_width - conv.PNET_CELL) // 2 + 1
    levels = conv.cell_levels(layout, out_h, out_w)
    wy = np.arange(out_h)[:, None] * 2
    wx = np.arange(out_w)[None, :] * 2
    expected = np.full((out_h, out_w), -1)
    for i, lv in enumerate(layout.levels):
        inside = ((wx >= lv.left) & (wx + 12 <= lv.left + lv.width)
                  & (wy >= lv.top) & (wy + 12 <= lv.top + lv.height))
        expected[inside] = i
    np.testing.assert_array_equal(levels, expected)


def test_refresh_candidates_surround_the_box() -> None:
    boxes = np.array([[100, 50, 160, 130], [0, 0, 20, 20]], np.float32)
    out = conv.refresh_candidates(boxes)
    v = len(conv.REFRESH_VARIANTS)
    assert out.shape == (2 * v, 4)
    sides = out[:, 2] - out[:, 0]
    np.testing.assert_allclose(sides, out[:, 3] - out[:, 1], rtol=1e-5)  # squares
    np.testing.assert_allclose(out[0], conv.square(boxes[:1])[0])  # the first: the box squared
    centres = (out[:v, :2] + out[:v, 2:]) / 2
    assert (np.abs(centres - [130, 90]) <= 0.15 * 80 + 1e-3).all()  # around the face


def test_pyramid_scales_reach_down_to_one_cell() -> None:
    scales = conv.pyramid_scales(360, 640, 20.0, 0.709)
    assert scales[0] == pytest.approx(12 / 20)
    assert 360 * scales[-1] >= conv.PNET_CELL > 360 * scales[-1] * 0.709
    assert conv.pyramid_scales(10, 10, 20.0, 0.709) == []


@pytest.fixture(scope="module")
def pnet(models_dir: Path) -> OnnxRuntimeRunner:
    return OnnxRuntimeRunner(models_dir / "mtcnn-pnet.onnx", BackendOptions())


def _hamilton_frame(shared_dir: Path) -> np.ndarray:
    cap = cv2.VideoCapture(str(shared_dir / "data" / "videos" / "short_hamilton_clip.mp4"))
    try:
        for _ in range(150):
            ok, frame = cap.read()
            assert ok
    finally:
        cap.release()
    return np.ascontiguousarray(frame[:, :, ::-1])


def _normalised(rgb: np.ndarray) -> np.ndarray:
    return (rgb.transpose(2, 0, 1)[None].astype(np.float32) - conv.MEAN) * conv.SCALE


@pytest.mark.parametrize("source", ["hamilton", "dlib"])
def test_packed_pnet_equals_pnet_per_level(pnet: OnnxRuntimeRunner, shared_dir: Path,
                                           photos: Path, source: str) -> None:
    frame = (_hamilton_frame(shared_dir) if source == "hamilton"
             else load_image(photos / "dlib_examples_faces" / "2008_002470.jpg"))
    h, w = frame.shape[:2]
    scales = conv.pyramid_scales(h, w, 20.0, 0.709)
    layout = conv.pack_pyramid(h, w, scales)
    pyramid = conv.Pyramid.build(frame, scales)
    canvas = np.zeros((1, 3, layout.canvas_height, layout.canvas_width), np.float32)
    for lv, image in zip(layout.levels, pyramid.images[1:]):
        canvas[0, :, lv.top:lv.top + lv.height, lv.left:lv.left + lv.width] = _normalised(image)[0]
    packed = pnet.run({"input": canvas})
    levels = conv.cell_levels(layout, *packed["prob"].shape[2:])
    for i, (lv, image) in enumerate(zip(layout.levels, pyramid.images[1:])):
        alone = pnet.run({"input": _normalised(image)})
        ys, xs = np.nonzero(levels == i)
        # every cell whose 12-px window lies inside the level is kept, and no other
        assert ys.size == ((lv.height - 12) // 2 + 1) * ((lv.width - 12) // 2 + 1), i
        ly, lx = ys - lv.top // 2, xs - lv.left // 2
        for name in ("prob", "reg"):
            np.testing.assert_allclose(packed[name][0][:, ys, xs], alone[name][0][:, ly, lx],
                                       atol=1e-5, err_msg=f"level {i} {name}")


def test_p_net_on_a_patch_equals_p_net_on_its_level(pnet: OnnxRuntimeRunner, shared_dir: Path) -> None:
    """Candidates from a patch of a level (at even offsets) are the level's own candidates in
    the patch's window, mapped to the same frame coordinates."""
    frame = _hamilton_frame(shared_dir)
    h, w = frame.shape[:2]
    scales = conv.pyramid_scales(h, w, 20.0, 0.709)
    pyramid = conv.Pyramid.build(frame, scales)
    li = 1
    level = pyramid.image(li + 1)
    whole = conv.PyramidLayout(level.shape[0], level.shape[1],
                               (conv.PackedLevel(scales[li], 0, 0, *level.shape[:2]),))
    out = pnet.run({"input": _normalised(level)})
    all_boxes, all_scores, _, _ = conv.pnet_patch_candidates(
        out["prob"][0, 1], out["reg"][0], whole, conv.cell_levels(whole, *out["prob"].shape[2:]), 0.6)
    oy, ox, ph, pw = 40, 100, 80, 120
    patch = conv.pack_patches([(ph, pw)], [scales[li]], [(oy, ox)], [0])
    canvas = np.zeros((1, 3, patch.canvas_height, patch.canvas_width), np.float32)
    p = patch.levels[0]
    canvas[0, :, p.top:p.top + ph, p.left:p.left + pw] = _normalised(level[oy:oy + ph, ox:ox + pw])[0]
    out = pnet.run({"input": canvas})
    boxes, scores, _, idx = conv.pnet_patch_candidates(
        out["prob"][0, 1], out["reg"][0], patch, conv.cell_levels(patch, *out["prob"].shape[2:]), 0.6)
    assert (idx == 0).all()
    # the level's candidates whose window lies inside the patch
    gx = all_boxes[:, 0] * scales[li] - 1
    gy = all_boxes[:, 1] * scales[li] - 1
    inside = (gx >= ox - 1e-3) & (gx + 12 <= ox + pw + 1e-3) & (gy >= oy - 1e-3) & (gy + 12 <= oy + ph + 1e-3)
    assert inside.sum() > 0 and boxes.shape[0] > 0
    # the patch's 3x3 peak test sees no neighbours beyond its edge: it may keep a few more
    for box, score in zip(all_boxes[inside], all_scores[inside]):
        match = np.abs(boxes - box).max(axis=1) < 1e-3
        assert match.any(), box
        np.testing.assert_allclose(scores[match], score, atol=1e-5)
