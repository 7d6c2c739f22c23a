"""Which optimisation profile runs an input, in what pieces, and one call at a time.

Pure Python and numpy: the TensorRT runner hands it the engine's profiles and a function that
runs one piece on one profile, and this decides the rest:

- an exact profile (min = max for every axis but the batch) is preferred: TensorRT tuned its
  kernels for that very shape;
- otherwise the tightest ranged profile that takes the shape (P-Net's 12x12-to-largest range:
  gallery photos, a camera of an unplanned size);
- otherwise, for a fully convolutional net (P-Net), the input is cut into overlapping tiles that
  the range takes, and the output maps are put together again.  P-Net has no padding, a 12-px
  window and stride 2, so with tiles at even offsets overlapping by 10 px every output cell is
  computed from exactly the pixels it is computed from on the whole canvas;
- batches larger than the profile's maximum are run in chunks.

`run` holds a lock for the whole call: the runner's execution contexts, CUDA stream and
pinned/device buffers are shared, and TensorRT's `execute_async_v3` releases the GIL, so two
threads (the inference loop and the gallery watcher re-analysing photos) would otherwise
overwrite each other's inputs.  Serialising costs nothing measurable here: the gallery thread
runs rarely, and one GPU stream runs one batch at a time anyway.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from facewatch.errors import BackendUnavailableError

Shape = tuple[int, ...]
# (min, opt, max) shapes of one optimisation profile, as the engine reports them.
ProfileShapes = tuple[Shape, Shape, Shape]
Execute = Callable[[int, dict[str, np.ndarray]], dict[str, np.ndarray]]


@dataclass(frozen=True)
class Tiling:
    """A fully convolutional net without padding: output cell i sees input [i*stride,
    i*stride + field) along each spatial axis (NCHW input, NCHW output maps)."""

    field: int
    stride: int


def is_exact(profile: ProfileShapes, shape: Shape) -> bool:
    lo, _opt, hi = profile
    return len(shape) == len(lo) and lo[1:] == hi[1:] == tuple(shape[1:])


def takes(profile: ProfileShapes, shape: Shape) -> bool:
    """Every axis but the batch fits (a larger batch runs in chunks)."""
    lo, _opt, hi = profile
    return len(shape) == len(lo) and shape[0] >= 1 and all(
        a <= d <= b for a, d, b in zip(lo[1:], shape[1:], hi[1:]))


def choose_profile(profiles: Sequence[ProfileShapes], shape: Shape) -> int | None:
    """The exact profile for `shape`, else the tightest one that takes it, else None."""
    for i, p in enumerate(profiles):
        if is_exact(p, shape):
            return i
    fits = [i for i, p in enumerate(profiles) if takes(p, shape)]
    if not fits:
        return None
    return min(fits, key=lambda i: int(np.prod(profiles[i][2][1:], dtype=np.int64)))


def axis_tiles(length: int, most: int, tiling: Tiling) -> list[tuple[int, int]]:
    """(start, size) of tiles along one axis of `length` input pixels, each at most `most` long,
    starting on the stride's grid, overlapping so that every output cell whose window lies
    inside the input has its whole window inside one tile; the last tile ends at the input's
    end, so the edge cells come out as on the whole input."""
    if length <= most:
        return [(0, length)]
    # Even in stride units, and one stride short of the maximum so the last tile, moved back
    # onto the grid, still fits.
    size = (most - tiling.stride + 1) // tiling.stride * tiling.stride
    step = size - tiling.field + tiling.stride
    if step <= 0:
        raise ValueError(f"tiles of {most} px cannot hold a {tiling.field}-px window")
    tiles = []
    start = 0
    while start + size < length:
        tiles.append((start, size))
        start += step
    last = (length - size) // tiling.stride * tiling.stride
    tiles.append((last, length - last))
    return tiles


class ProfileDispatch:
    """Runs inputs of any shape the engine's profiles allow, one call at a time."""

    def __init__(self, engine_name: str, profiles: Sequence[ProfileShapes], execute: Execute,
                 tiling: Tiling | None = None) -> None:
        self.engine_name = engine_name
        self.profiles = list(profiles)
        self._execute = execute
        self.tiling = tiling
        self._lock = threading.Lock()

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with self._lock:
            return self._run(inputs)

    def _run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        shape = tuple(int(d) for d in next(iter(inputs.values())).shape)
        index = choose_profile(self.profiles, shape)
        if index is not None:
            return self._batched(index, inputs)
        tile_profile = self._tile_profile(shape)
        if tile_profile is None:
            raise BackendUnavailableError(self._no_profile_message(shape))
        return self._tiled(tile_profile, inputs)

    def _batched(self, index: int, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        most = self.profiles[index][2][0]
        n = next(iter(inputs.values())).shape[0]
        if n <= most:
            return self._execute(index, inputs)
        parts = [self._execute(index, {k: v[i:i + most] for k, v in inputs.items()})
                 for i in range(0, n, most)]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def _tile_profile(self, shape: Shape) -> int | None:
        """The largest ranged profile whose channels match, when the net can be tiled."""
        if self.tiling is None or len(shape) != 4:
            return None
        need = self.tiling.field + self.tiling.stride
        ranged = [i for i, (lo, _o, hi) in enumerate(self.profiles)
                  if len(lo) == 4 and lo[1] <= shape[1] <= hi[1] and lo[2] <= self.tiling.field
                  and lo[3] <= self.tiling.field and hi[2] >= need and hi[3] >= need]
        if not ranged:
            return None
        return max(ranged, key=lambda i: self.profiles[i][2][2] * self.profiles[i][2][3])

    def _tiled(self, index: int, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        assert self.tiling is not None
        t = self.tiling
        (name, x), = inputs.items()
        _lo, _opt, hi = self.profiles[index]
        rows = axis_tiles(x.shape[2], hi[2], t)
        cols = axis_tiles(x.shape[3], hi[3], t)
        pieces = {(r, c): self._batched(index, {name: np.ascontiguousarray(
                      x[:, :, top:top + height, left:left + width])})
                  for r, (top, height) in enumerate(rows) for c, (left, width) in enumerate(cols)}
        corner = pieces[len(rows) - 1, len(cols) - 1]
        out = {key: np.empty((*v.shape[:2], rows[-1][0] // t.stride + v.shape[2],
                              cols[-1][0] // t.stride + v.shape[3]), v.dtype)
               for key, v in corner.items()}
        for (r, c), got in pieces.items():
            (top, height), (left, width) = rows[r], cols[c]
            for key, v in got.items():
                # Inner tiles give only the cells whose window lies inside them; the last
                # row and column end where the input ends, edge cells included.
                nh = v.shape[2] if r == len(rows) - 1 else (height - t.field) // t.stride + 1
                nw = v.shape[3] if c == len(cols) - 1 else (width - t.field) // t.stride + 1
                r0, c0 = top // t.stride, left // t.stride
                out[key][:, :, r0:r0 + nh, c0:c0 + nw] = v[:, :, :nh, :nw]
        return out

    def _no_profile_message(self, shape: Shape) -> str:
        built = ", ".join(
            "x".join(map(str, lo[1:])) if lo[1:] == hi[1:] else
            f"{'x'.join(map(str, lo[1:]))} to {'x'.join(map(str, hi[1:]))}"
            for lo, _o, hi in self.profiles)
        return (f"{self.engine_name}: no optimisation profile takes input "
                f"{'x'.join(map(str, shape))} (the engine takes {built}); the engine was built "
                f"for another model or shape: rebuild with `facewatch tensorrt build`")
