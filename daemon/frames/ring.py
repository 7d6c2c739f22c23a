"""A ring of frame slots per camera in POSIX shared memory; queues carry only a small `FrameRef`.

The supervisor creates one ring per camera (`FrameRing.create`) and unlinks it on close; the
camera's source process writes frames into it and other processes (started with spawn) attach
by name (`FrameRing.attach`) and copy frames out.

Layout, all little-endian, every field naturally aligned:

    ring header   128 bytes   magic, version, geometry, camera name, next sequence number
    slot 0        64-byte slot header, then max_height * max_width * 3 bytes of pixels
    slot 1 ...    (each slot padded to a multiple of 64 bytes)

Each slot header holds a generation counter used as a seqlock: the writer makes it odd before
touching the slot and even again after, and a reader copies the pixels out between two reads
of it.  A changed or odd generation, or a sequence number other than the one in the reader's
`FrameRef`, means the frame was overwritten: `read()` returns None and counts a drop.  The
writer never waits for readers; a slow reader loses frames and knows it (Frigate's ring, with
no header, hands such a reader a frame that changed under it).

There is one writer per ring.  The checks rely on the writer's stores becoming visible in
program order, which x86-64 guarantees; on weakly ordered CPUs (arm64) Python offers no
memory fence, and the interpreter work between the stores is what keeps them apart.
"""

from __future__ import annotations

import mmap
import os
import re
import secrets
import sys
from dataclasses import dataclass
from enum import IntEnum
from multiprocessing.shared_memory import SharedMemory
from types import TracebackType
from typing import Any, Self

import numpy as np

from facewatch.errors import FacewatchError

_MAGIC = b"FWRING01"
_VERSION = 1
_RING_HEADER_SIZE = 128
_SLOT_HEADER_SIZE = 64
_CAMERA_NAME_BYTES = 64
_ALIGN = 64

_RING_HEADER = np.dtype({
    "names": ["magic", "version", "slots", "max_width", "max_height", "channels", "slot_stride",
              "next_seq", "camera"],
    "formats": ["S8", "<u4", "<u4", "<u4", "<u4", "<u4", "<u8", "<u8", f"S{_CAMERA_NAME_BYTES}"],
    "offsets": [0, 8, 12, 16, 20, 24, 32, 40, 48],
    "itemsize": _RING_HEADER_SIZE,
})
_SLOT_HEADER = np.dtype({
    "names": ["generation", "seq", "capture_ts", "width", "height", "channels", "pixel_format"],
    "formats": ["<u8", "<u8", "<f8", "<u4", "<u4", "<u4", "<u4"],
    "offsets": [0, 8, 16, 24, 28, 32, 36],
    "itemsize": _SLOT_HEADER_SIZE,
})


class PixelFormat(IntEnum):
    """How a slot's pixels are laid out (stored in its header)."""

    RGB24 = 1  # HxWx3 uint8, R G B


class FrameRingError(FacewatchError):
    """A frame ring cannot be created, attached or used as asked."""


class FrameTooLargeError(FrameRingError):
    """A frame is larger than the ring's slots."""


@dataclass(frozen=True, slots=True)
class FrameRef:
    """What goes on a queue instead of a frame: where it is and what it should be."""

    camera: str
    slot: int
    seq: int
    capture_ts: float
    width: int
    height: int


class FrameRing:
    """One camera's ring, as created (owner) or attached by name."""

    def __init__(
        self, name: str, buffer: memoryview, *, owner: SharedMemory | None = None,
        attached: SharedMemory | None = None, mapping: mmap.mmap | None = None,
    ) -> None:
        """Internal: use `FrameRing.create` or `FrameRing.attach`."""
        self.name = name
        self._owner = owner
        self._attached = attached
        self._mapping = mapping
        self._buffer = buffer
        self._header: np.ndarray = np.ndarray((), dtype=_RING_HEADER, buffer=buffer, offset=0)
        # Reads of this handle that found their frame overwritten, and frames it wrote.
        self.dropped = 0
        self.written = 0
        self._closed = False

    @classmethod
    def create(
        cls, camera: str, *, slots: int, max_width: int, max_height: int, name: str | None = None,
    ) -> FrameRing:
        """A new ring, owned by the caller: `close()` unlinks it.

        Frames larger than max_width x max_height are refused (`FrameTooLargeError`) rather
        than scaled, so a frame's geometry never changes silently between processes; the
        stream's `max_size` setting scales them down before they get here.
        """
        if slots < 2:
            raise FrameRingError(f"frame ring for {camera!r}: needs at least 2 slots, got {slots}")
        if max_width < 1 or max_height < 1:
            raise FrameRingError(f"frame ring for {camera!r}: bad max size {max_width}x{max_height}")
        encoded = camera.encode()
        if len(encoded) > _CAMERA_NAME_BYTES:
            raise FrameRingError(f"camera name {camera!r} is longer than {_CAMERA_NAME_BYTES} bytes")
        channels = 3
        stride = _round_up(_SLOT_HEADER_SIZE + max_width * max_height * channels, _ALIGN)
        shm_name = name if name is not None else _default_name(camera)
        try:
            shm = SharedMemory(name=shm_name, create=True, size=_RING_HEADER_SIZE + slots * stride)
        except FileExistsError:
            raise FrameRingError(f"shared memory {shm_name!r} already exists: pick another ring name") from None
        assert shm.buf is not None
        ring = cls(shm_name, shm.buf, owner=shm)
        header = ring._header
        header["magic"] = _MAGIC
        header["version"] = _VERSION
        header["slots"] = slots
        header["max_width"] = max_width
        header["max_height"] = max_height
        header["channels"] = channels
        header["slot_stride"] = stride
        header["next_seq"] = 0
        header["camera"] = encoded
        ring._load_geometry()
        return ring

    @classmethod
    def attach(cls, name: str) -> FrameRing:
        """The ring `name`, created by another process; `close()` leaves it in place."""
        # On Python < 3.13, SharedMemory(name) registers the segment with this process's
        # resource tracker, which unlinks it when this process exits: a reader that exits
        # would take the ring away from everyone (bpo-39959), and its shutdown prints a
        # "leaked shared_memory" warning.  3.13 added track=False.  Before that, instead of
        # patching the tracker's globals, open the segment where POSIX shared memory lives on
        # Linux (glibc's shm_open opens /dev/shm/<name>) and map it ourselves: the tracker
        # never hears of it.  Only the creator's registration remains, which is the one we
        # want (it cleans up if the supervisor dies without closing).
        mapping: mmap.mmap | None = None
        shm: SharedMemory | None = None
        try:
            if sys.version_info >= (3, 13):
                shm = SharedMemory(name=name, create=False, track=False)
                assert shm.buf is not None
                buffer = shm.buf
            else:
                fd = os.open(os.path.join("/dev/shm", name), os.O_RDWR)
                try:
                    mapping = mmap.mmap(fd, os.fstat(fd).st_size)
                finally:
                    os.close(fd)
                buffer = memoryview(mapping)
        except FileNotFoundError:
            raise FrameRingError(
                f"frame ring {name!r} does not exist: the supervisor creates it at start") from None
        ring = cls(name, buffer, attached=shm, mapping=mapping)
        if ring._header["magic"].item() != _MAGIC or int(ring._header["version"]) != _VERSION:
            ring.close()
            raise FrameRingError(f"shared memory {name!r} is not a facewatch frame ring (version {_VERSION})")
        ring._load_geometry()
        return ring

    def _load_geometry(self) -> None:
        h = self._header
        self.camera: str = h["camera"].item().decode()
        self.slots: int = int(h["slots"])
        self.max_width: int = int(h["max_width"])
        self.max_height: int = int(h["max_height"])
        self.channels: int = int(h["channels"])
        stride = int(h["slot_stride"])
        slot_headers = np.ndarray(
            (self.slots,), dtype=_SLOT_HEADER, buffer=self._buffer, offset=_RING_HEADER_SIZE, strides=(stride,))
        # Field views: assigning one element is a single aligned 8-byte store, so a reader
        # never sees half of a generation number.
        self._generation: np.ndarray = slot_headers["generation"]
        self._slot_headers: np.ndarray = slot_headers
        self._pixels: np.ndarray = np.ndarray(
            (self.slots, stride), dtype=np.uint8, buffer=self._buffer, offset=_RING_HEADER_SIZE)

    # -- writing (one writer per ring) ----------------------------------------------------

    def write(self, image: np.ndarray, capture_ts: float) -> FrameRef:
        """Copy an HxWx3 uint8 RGB frame into the next slot, overwriting the oldest frame."""
        self._check_open()
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != self.channels:
            raise FrameRingError(
                f"frame ring {self.camera!r}: frames must be HxWx3 uint8 RGB, got {image.dtype} {image.shape}")
        height, width = image.shape[:2]
        if width > self.max_width or height > self.max_height:
            raise FrameTooLargeError(
                f"frame {width}x{height} does not fit ring {self.camera!r} (max {self.max_width}x{self.max_height}): "
                "set the stream's max_size to the ring size")
        seq = int(self._header["next_seq"])
        slot = seq % self.slots
        generation = int(self._generation[slot])
        # Odd while writing.  An odd value left by a writer that died mid-write moves on by
        # two, so it still differs from what any reader saw before.
        writing = generation + 1 if generation % 2 == 0 else generation + 2
        self._generation[slot] = writing
        header = self._slot_headers[slot]
        header["seq"] = seq
        header["capture_ts"] = capture_ts
        header["width"] = width
        header["height"] = height
        header["channels"] = self.channels
        header["pixel_format"] = PixelFormat.RGB24
        size = height * width * self.channels
        np.copyto(self._pixels[slot, _SLOT_HEADER_SIZE:_SLOT_HEADER_SIZE + size].reshape(image.shape), image)
        self._generation[slot] = writing + 1
        self._header["next_seq"] = seq + 1
        self.written += 1
        return FrameRef(camera=self.camera, slot=slot, seq=seq, capture_ts=capture_ts, width=width, height=height)

    # -- reading --------------------------------------------------------------------------

    def read(self, ref: FrameRef) -> np.ndarray | None:
        """A copy of the frame `ref` points to, or None (counted in `dropped`) if it was overwritten."""
        self._check_open()
        if ref.camera != self.camera or not 0 <= ref.slot < self.slots:
            raise FrameRingError(f"frame ring {self.camera!r} cannot read {ref}")
        before = int(self._generation[ref.slot])
        header = self._slot_headers[ref.slot]
        # Generation 0: never written (a fresh slot's seq field reads 0 too).
        if before == 0 or before % 2 or int(header["seq"]) != ref.seq:
            self.dropped += 1
            return None
        height, width, channels = int(header["height"]), int(header["width"]), int(header["channels"])
        size = height * width * channels
        if size > self.max_width * self.max_height * self.channels:
            raise FrameRingError(f"frame ring {self.camera!r}: slot {ref.slot} header is corrupt")
        frame = self._pixels[ref.slot, _SLOT_HEADER_SIZE:_SLOT_HEADER_SIZE + size].copy()
        if int(self._generation[ref.slot]) != before:
            self.dropped += 1
            return None
        return frame.reshape(height, width, channels)

    def ref_at(self, seq: int) -> FrameRef | None:
        """A reference to frame `seq` if its slot still holds it (whole, not being written),
        else None: how a restarted reader finds frames whose references it never received."""
        self._check_open()
        if seq < 0:
            return None
        slot = seq % self.slots
        generation = int(self._generation[slot])
        header = self._slot_headers[slot]
        if generation == 0 or generation % 2 or int(header["seq"]) != seq:
            return None
        ref = FrameRef(camera=self.camera, slot=slot, seq=seq,
                       capture_ts=float(header["capture_ts"]), width=int(header["width"]),
                       height=int(header["height"]))
        return ref if int(self._generation[slot]) == generation else None

    @property
    def next_seq(self) -> int:
        """The sequence number the next write will get (frames written so far, by any writer)."""
        return int(self._header["next_seq"])

    # -- lifetime -------------------------------------------------------------------------

    def close(self) -> None:
        """Unmap the ring; the owner also unlinks it (attached processes keep their mapping)."""
        if self._closed:
            return
        self._closed = True
        # Views into the mapping must go before it can be closed.
        for attribute in ("_header", "_slot_headers", "_generation", "_pixels"):
            self.__dict__.pop(attribute, None)
        self._buffer.release()
        if self._owner is not None:
            self._owner.close()
            self._owner.unlink()
        if self._attached is not None:
            self._attached.close()
        if self._mapping is not None:
            self._mapping.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, _type: type[BaseException] | None, _value: BaseException | None,
                 _traceback: TracebackType | None) -> None:
        self.close()

    def __reduce__(self) -> Any:
        raise TypeError("a FrameRing cannot be pickled: pass ring.name and call FrameRing.attach(name) in the child")

    def _check_open(self) -> None:
        if self._closed:
            raise FrameRingError(f"frame ring {self.name!r} is closed")


def _round_up(value: int, multiple: int) -> int:
    return (value + multiple - 1) // multiple * multiple


def _default_name(camera: str) -> str:
    # POSIX names allow no "/"; a random suffix keeps two daemons (or a stale segment from a
    # crashed one) from colliding.
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", camera)[:48]
    return f"facewatch_{safe}_{secrets.token_hex(4)}"
