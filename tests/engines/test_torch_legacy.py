"""The torch-free reader of legacy `torch.save` files: the real MTCNN and MobileFaceNet weights,
and files that are broken or hostile."""

from __future__ import annotations

import io
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from facewatch.engines.readers import torch_legacy
from facewatch.engines.readers.torch_legacy import load_state_dict
from facewatch.errors import ModelError

# Per-net parameter shapes of facenet-pytorch 2.6.0's MTCNN (first conv, last dense or conv).
MTCNN_SHAPES: dict[str, dict[str, tuple[int, ...]]] = {
    "pnet": {"conv1.weight": (10, 3, 3, 3), "conv4_2.weight": (4, 32, 1, 1)},
    "rnet": {"conv1.weight": (28, 3, 3, 3), "dense4.weight": (128, 576), "dense5_2.weight": (4, 128)},
    "onet": {"conv1.weight": (32, 3, 3, 3), "dense5.weight": (256, 1152),
             "dense6_3.weight": (10, 256)},
}


def _reference_initializers(path: Path) -> dict[str, np.ndarray]:
    """The weights of a reference export, keyed by state_dict name.

    torch's exporter keeps the state_dict names for conv and dense weights but renames PReLU
    slopes (`onnx::PRelu_30`, reshaped for broadcasting); their node's output says which module
    (`/prelu1/PRelu_output_0`) they belong to.
    """
    model = onnx.load(str(path))
    arrays = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "PRelu":
            module = node.output[0].split("/")[1]
            arrays[f"{module}.weight"] = arrays.pop(node.input[1]).reshape(-1)
    return arrays


@pytest.mark.parametrize("net", ["pnet", "rnet", "onet"])
def test_mtcnn_weights_equal_the_reference_export(shared_dir: Path, net: str) -> None:
    sd = load_state_dict(shared_dir / "models" / "mtcnn" / f"{net}.pt")
    reference = _reference_initializers(shared_dir / "models" / "mtcnn" / f"{net}.reference.onnx")
    # torch's exporter names MTCNN's initializers after the state_dict keys
    assert set(sd) == set(reference)
    for name, array in sd.items():
        assert array.dtype == np.float32, name
        assert array.flags.c_contiguous, name
        np.testing.assert_array_equal(array, reference[name], err_msg=name)
    for name, shape in MTCNN_SHAPES[net].items():
        assert sd[name].shape == shape


def _tensor_descriptions(path: Path) -> dict[str, torch_legacy._PendingTensor]:
    """The state_dict pickle of a legacy file, as the reader sees it before reading storages."""
    stream = io.BytesIO(path.read_bytes())
    for _ in range(3):  # magic, protocol, system info
        torch_legacy._Unpickler(stream).load()
    state = torch_legacy._Unpickler(stream).load()
    assert isinstance(state, dict)
    return dict(state)


def test_non_contiguous_storage_is_read_through_its_strides(shared_dir: Path) -> None:
    pnet = shared_dir / "models" / "mtcnn" / "pnet.pt"
    described = _tensor_descriptions(pnet)["conv1.weight"]
    # The file really stores this weight column-major: reading the storage in C order
    # would scramble it, and the comparison below would fail.
    assert described.size == (10, 3, 3, 3)
    assert described.stride == (1, 10, 30, 90)
    weight = load_state_dict(pnet)["conv1.weight"]
    reference = _reference_initializers(pnet.with_name("pnet.reference.onnx"))["conv1.weight"]
    np.testing.assert_array_equal(weight, reference)
    assert weight.flags.c_contiguous


def test_foamliu_mobilefacenet_loads(shared_dir: Path) -> None:
    sd = load_state_dict(shared_dir / "models" / "mobilefacenet" / "mobilefacenet.pt")
    assert sd["conv1.0.weight"].shape == (64, 3, 3, 3)
    assert sd["dw_conv.depthwise.weight"].shape == (64, 1, 3, 3)
    assert sd["gdconv.depthwise.weight"].shape == (512, 1, 7, 7)
    assert sd["conv3.weight"].shape == (128, 512, 1, 1)
    assert sd["bn.running_var"].shape == (128,)
    assert len([k for k in sd if k.startswith("features.")]) > 15 * 4
    learned = sum(v.size for k, v in sd.items()
                  if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))
    assert learned == 999_936  # the parameter count foamliu's README gives
    assert all(np.isfinite(v).all() for v in sd.values() if v.dtype.kind == "f")
    assert float(sd["bn.running_var"].min()) > 0


# Hand-made legacy files ----------------------------------------------------------------

def _unicode(s: str) -> bytes:
    raw = s.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def _int(v: int) -> bytes:
    return b"J" + struct.pack("<i", v)


def _tuple(items: list[bytes]) -> bytes:
    return b"(" + b"".join(items) + b"t"


def _global(module: str, name: str) -> bytes:
    return f"c{module}\n{name}\n".encode()


def _tensor(key: str, numel: int, offset: int, size: tuple[int, ...],
            stride: tuple[int, ...]) -> bytes:
    """Pickle opcodes for `_rebuild_tensor_v2(storage, offset, size, stride)`, as torch writes."""
    storage = _tuple([_unicode("storage"), _global("torch", "FloatStorage"), _unicode(key),
                      _unicode("cpu"), _int(numel), b"N"]) + b"Q"  # BINPERSID
    args = _tuple([storage, _int(offset), _tuple([_int(n) for n in size]),
                   _tuple([_int(s) for s in stride])])
    return _global("torch._utils", "_rebuild_tensor_v2") + args + b"R"


def _legacy_file(state: bytes, storages: dict[str, np.ndarray],
                 sys_info: object = None) -> bytes:
    """A legacy torch.save stream: magic, protocol, system info, state pickle, keys, storages."""
    info = {"protocol_version": 1001, "little_endian": True,
            "type_sizes": {"short": 2, "int": 4, "long": 8}} if sys_info is None else sys_info
    out = [pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2), pickle.dumps(1001, protocol=2),
           pickle.dumps(info, protocol=2), b"\x80\x02" + state + b".",
           pickle.dumps(list(storages), protocol=2)]
    for array in storages.values():
        out.append(struct.pack("<q", array.size) + array.astype("<f4").tobytes())
    return b"".join(out)


def _state(tensors: dict[str, bytes]) -> bytes:
    body = b"}"  # EMPTY_DICT
    for name, tensor in tensors.items():
        body += _unicode(name) + tensor + b"s"  # SETITEM
    return body


def test_hand_made_file_with_transposed_strides_loads(tmp_path: Path) -> None:
    """The crafting helpers make files the reader accepts, so the refusals below are real."""
    storage = np.arange(6, dtype=np.float32)
    path = tmp_path / "ok.pt"
    path.write_bytes(_legacy_file(
        _state({"w": _tensor("0", 6, 0, (2, 3), (1, 2)), "b": _tensor("0", 6, 4, (2,), (1,))}),
        {"0": storage}))
    sd = load_state_dict(path)
    np.testing.assert_array_equal(sd["w"], storage.reshape(3, 2).T)
    np.testing.assert_array_equal(sd["b"], [4.0, 5.0])


def _refused(path: Path) -> str:
    with pytest.raises(ModelError) as info:
        load_state_dict(path)
    message = str(info.value)
    assert str(path) in message
    assert "\n" not in message
    return message


@pytest.mark.parametrize("keep", [0.0005, 0.3, 0.9, 0.99999])
def test_truncated_file_is_refused(shared_dir: Path, tmp_path: Path, keep: float) -> None:
    data = (shared_dir / "models" / "mtcnn" / "pnet.pt").read_bytes()
    path = tmp_path / "pnet.pt"
    path.write_bytes(data[: int(len(data) * keep)])
    _refused(path)


def test_zip_format_file_is_refused(tmp_path: Path) -> None:
    """torch >= 1.6 saves a zip archive; that is not the legacy format this reader handles."""
    path = tmp_path / "new_format.pt"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps({"w": 1}, protocol=2))
        zf.writestr("archive/version", "3\n")
        zf.writestr("archive/data/0", np.zeros(4, np.float32).tobytes())
    _refused(path)


@pytest.mark.parametrize("garbage", [
    b"",
    b"this is a text file, not a model\n",
    np.random.default_rng(7).bytes(4096),
    b"\x8e" + struct.pack("<Q", 1 << 60),  # BINBYTES8 claiming an exabyte: MemoryError
    b"\x8e" + struct.pack("<Q", (1 << 64) - 1),  # longer than any buffer: OverflowError
], ids=["empty", "text", "random", "huge-bytes", "overflow-bytes"])
def test_garbage_is_refused(tmp_path: Path, garbage: bytes) -> None:
    path = tmp_path / "garbage.pt"
    path.write_bytes(garbage)
    _refused(path)


@pytest.mark.parametrize("sys_info", [(1, 2), 5, "little"], ids=["tuple", "int", "str"])
def test_malformed_header_is_refused(tmp_path: Path, sys_info: object) -> None:
    path = tmp_path / "header.pt"
    path.write_bytes(_legacy_file(_state({"w": _tensor("0", 4, 0, (4,), (1,))}),
                                  {"0": np.zeros(4, np.float32)}, sys_info=sys_info))
    _refused(path)


@pytest.mark.parametrize("size, stride, offset", [
    ((4,), (-1,), 3),  # negative stride: would read before the storage's buffer
    ((4,), (2,), 0),  # runs past the end of a 4-element storage
    ((2, 2), (1,), 0),  # fewer strides than dimensions
    ((4,), (1,), -2),
], ids=["negative-stride", "past-end", "short-stride", "negative-offset"])
def test_tensor_outside_its_storage_is_refused(tmp_path: Path, size: tuple[int, ...],
                                               stride: tuple[int, ...], offset: int) -> None:
    path = tmp_path / "strided.pt"
    path.write_bytes(_legacy_file(_state({"w": _tensor("0", 4, offset, size, stride)}),
                                  {"0": np.arange(4, dtype=np.float32)}))
    _refused(path)


def test_pickle_that_imports_os_system_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = _global("os", "system") + _tuple([_unicode(f"touch {marker}")]) + b"R"
    path = tmp_path / "evil.pt"
    path.write_bytes(_legacy_file(payload, {}))
    message = _refused(path)
    assert "os.system" in message
    assert not marker.exists()
    # the same payload where the magic number should be
    path.write_bytes(b"\x80\x02" + payload + b".")
    assert "os.system" in _refused(path)
    assert not marker.exists()
