"""Read a legacy (pre-zip) PyTorch `torch.save` file into numpy arrays, without torch.

The legacy format is five things back to back: three small pickles (magic number, protocol
version, system info), the pickled object whose tensors refer to storages by persistent id,
a pickled list of storage keys, and then each storage's raw bytes prefixed by its element
count (int64, little endian).  Storages may be tagged `cuda:0`; the bytes are the same, so the
tag is ignored.  Only what a state_dict needs is allowed through `find_class`, so a hostile
file cannot run code.
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from facewatch.errors import ModelError

_MAGIC = 0x1950A86A20F9469CFC6C
_PROTOCOL = 1001

_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


@dataclass(frozen=True)
class _StorageType:
    dtype: type


@dataclass(frozen=True)
class _StorageRef:
    key: str
    dtype: type
    numel: int


@dataclass(frozen=True)
class _PendingTensor:
    """A tensor whose storage bytes come later in the file than its description."""

    storage: _StorageRef
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor(storage: _StorageRef, offset: int, size: tuple[int, ...],
                    stride: tuple[int, ...], *_: Any) -> _PendingTensor:
    return _PendingTensor(storage, int(offset), tuple(size), tuple(stride))


def _rebuild_parameter(data: _PendingTensor, *_: Any) -> _PendingTensor:
    return data


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: not part of a state_dict")

    def persistent_load(self, pid: Any) -> _StorageRef:
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        _, storage_type, key, _location, numel, _view = pid
        if not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError(f"unexpected storage type {storage_type!r}")
        return _StorageRef(str(key), storage_type.dtype, int(numel))


def load_state_dict(path: Path) -> dict[str, np.ndarray]:
    """Return the arrays of a legacy-format state_dict, keyed by parameter name."""
    data = path.read_bytes()
    try:
        return _parse(io.BytesIO(data))
    except (pickle.UnpicklingError, EOFError, ValueError, struct.error, KeyError,
            # What a corrupt or hostile stream makes the unpickler itself raise: opcodes
            # applied to the wrong kind of object, or lengths no buffer can have.
            TypeError, AttributeError, IndexError, OverflowError, MemoryError) as exc:
        raise ModelError(f"{path}: not a legacy PyTorch state_dict "
                         f"({type(exc).__name__}: {exc})") from None


def _parse(stream: io.BytesIO) -> dict[str, np.ndarray]:
    magic = _Unpickler(stream).load()
    if magic != _MAGIC:
        raise ValueError("wrong magic number (a zip-format or non-PyTorch file?)")
    if _Unpickler(stream).load() != _PROTOCOL:
        raise ValueError("unsupported protocol version")
    sys_info = _Unpickler(stream).load()
    if not isinstance(sys_info, dict):
        raise ValueError("no system info where torch.save writes it")
    if not sys_info.get("little_endian", True):
        raise ValueError("big-endian files are not supported")
    state = _Unpickler(stream).load()
    if not isinstance(state, dict):
        raise ValueError(f"top-level object is a {type(state).__name__}, not a state_dict")
    keys = _Unpickler(stream).load()
    if not isinstance(keys, list):
        raise ValueError("no storage key list where torch.save writes it")

    refs = {t.storage.key: t.storage for t in state.values() if isinstance(t, _PendingTensor)}
    storages: dict[str, np.ndarray] = {}
    for key in keys:
        (numel,) = struct.unpack("<q", stream.read(8))
        ref = refs.get(key)
        dtype = np.dtype(ref.dtype if ref else np.float32)
        raw = stream.read(numel * dtype.itemsize)
        if len(raw) != numel * dtype.itemsize:
            raise ValueError(f"storage {key} is truncated")
        storages[key] = np.frombuffer(raw, dtype=dtype)

    out: dict[str, np.ndarray] = {}
    for name, value in state.items():
        if not isinstance(value, _PendingTensor):
            continue  # e.g. BatchNorm's num_batches_tracked is a tensor; plain ints are skipped
        flat = storages[value.storage.key]
        itemsize = flat.dtype.itemsize
        if len(value.stride) != len(value.size) or any(st < 0 for st in value.stride):
            # torch never writes negative strides; as_strided would read before the buffer
            raise ValueError(f"tensor {name} has an invalid stride {value.stride}")
        last = value.offset + sum((n - 1) * st for n, st in zip(value.size, value.stride) if n)
        if any(n == 0 for n in value.size) or last >= flat.size or value.offset < 0:
            raise ValueError(f"tensor {name} lies outside its storage")
        view = np.lib.stride_tricks.as_strided(
            flat[value.offset:],
            shape=value.size,
            strides=tuple(s * itemsize for s in value.stride),
            writeable=False,
        )
        out[name] = np.ascontiguousarray(view)
    return out
