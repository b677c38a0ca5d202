"""The official lmdb reader, on values written in the pyarrow 0.12-0.14 `serialize` layout by current pyarrow.

The real 16 GB files are not available here, so the blobs are built by hand in the documented layout (the counts
header, a legacy-framed V4 IPC stream of the union, 64-byte aligned tensor messages) and stored in a real lmdb.
"""
import struct

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")
lmdb = pytest.importorskip("lmdb")

from ha2g_model.skeleton import TED_EXPRESSIVE, directions_to_positions  # noqa: E402
from training import ted_lmdb  # noqa: E402
from training.windows import load_windows  # noqa: E402


def _union(values, ndarrays):
    """A dense union of Python values in the pyarrow 0.14 SequenceBuilder layout."""
    kinds, tags, offsets, children = [], [], [], {}
    for v in values:
        if isinstance(v, np.ndarray):
            kind, item = "ndarray", len(ndarrays)
            ndarrays.append(v)
        elif isinstance(v, (list, tuple, dict)):
            kind, item = {list: "list", tuple: "tuple", dict: "dict"}[type(v)], v
        else:
            kind, item = {bool: "bool", int: "int", float: "double", str: "string"}[type(v)], v
        if kind not in kinds:
            kinds.append(kind)
            children[kind] = []
        tags.append(kinds.index(kind))
        offsets.append(len(children[kind]))
        children[kind].append(item)
    arrays, names = [], []
    for kind in kinds:
        items = children[kind]
        if kind in ("list", "tuple", "dict"):
            lengths = np.cumsum([0] + [len(x) for x in items]).astype(np.int32)
            if kind == "dict":
                keys = _union([k for d in items for k in d], ndarrays)
                vals = _union([v for d in items for v in d.values()], ndarrays)
                flat = pa.StructArray.from_arrays([keys, vals], names=["keys", "vals"])
            else:
                flat = _union([x for sub in items for x in sub], ndarrays)
            lists = pa.ListArray.from_arrays(pa.array(lengths), flat)
            arrays.append(pa.StructArray.from_arrays([lists], names=[kind]))
            names.append("")
        else:
            types = {"bool": pa.bool_(), "int": pa.int64(), "double": pa.float64(), "string": pa.utf8(),
                     "ndarray": pa.int32()}
            arrays.append(pa.array(items, type=types[kind]))
            names.append("ndarray" if kind == "ndarray" else "")
    return pa.UnionArray.from_dense(pa.array(tags, pa.int8()), pa.array(offsets, pa.int32()), arrays, names)


def serialize_0_14(value) -> bytes:
    ndarrays = []
    union = _union([value], ndarrays)
    batch = pa.record_batch([union], names=["list"])
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(metadata_version=pa.ipc.MetadataVersion.V4, use_legacy_format=True)
    with pa.ipc.new_stream(sink, batch.schema, options=options) as writer:
        writer.write_batch(batch)
    out = bytearray(struct.pack("<3i", 0, len(ndarrays), 0) + sink.getvalue().to_pybytes())
    for array in ndarrays:
        out += b"\0" * (-len(out) % 64)
        tensor_sink = pa.BufferOutputStream()
        pa.ipc.write_tensor(pa.Tensor.from_numpy(array), tensor_sink)
        out += tensor_sink.getvalue().to_pybytes()
    return bytes(out)


def test_decode_nested_values():
    value = {"vid": "abc", "n": 3, "x": 1.5, "flag": True, "seq": [1, "two", (3.0, 4)],
             "array": np.arange(12, dtype=np.float16).reshape(3, 4), "nested": {"k": [np.ones(2)]}}
    decoded = ted_lmdb.decode_serialized(serialize_0_14(value))
    assert decoded.keys() == value.keys()
    assert decoded["vid"] == "abc" and decoded["n"] == 3 and decoded["flag"] is True
    assert decoded["seq"] == [1, "two", (3.0, 4)]
    np.testing.assert_array_equal(decoded["array"], value["array"])
    assert decoded["array"].dtype == np.float16
    np.testing.assert_array_equal(decoded["nested"]["k"][0], np.ones(2))
    with pytest.raises(ValueError, match="implausible"):
        ted_lmdb.decode_serialized(struct.pack("<3i", -5, 0, 0) + b"\0" * 64)


def test_convert_an_official_style_lmdb(ted_culture_clips, tmp_path):
    clip = ted_culture_clips[0]
    positions = directions_to_positions(clip["dir_vec"], TED_EXPRESSIVE) + np.array([0.0, -0.5, 0.0])
    start = 100.0  # official word and clip times are on the video's clock
    video = {"vid": "video0", "framerate": 15.0, "clips": [{
        "words": [[str(w), float(s) + start, float(e) + start] for w, (s, e) in zip(clip["words"], clip["word_times"])],
        "skeletons_3d": positions.astype(np.float32), "audio_raw": (clip["audio"] / 32767).astype(np.float16),
        "start_time": start, "end_time": start + len(positions) / 15, "start_frame_no": 0,
        "end_frame_no": len(positions)}]}
    for split in ("train", "val"):
        env = lmdb.open(str(tmp_path / split), map_size=1 << 26)
        with env.begin(write=True) as txn:
            txn.put(b"0000000000", serialize_0_14(video | {"vid": f"video_{split}"}))
        env.close()
    index = ted_lmdb.convert({"train": str(tmp_path / "train"), "val": str(tmp_path / "val")}, "ted_expressive",
                             str(tmp_path / "out"))
    assert index["speakers"] == ["video_train", "video_val"] and index["windows"]["train"] > 0
    train = load_windows(tmp_path / "out", "train")
    np.testing.assert_allclose(train.dir_vec[0], clip["dir_vec"][:34] / np.linalg.norm(clip["dir_vec"][:34], axis=-1,
                                                                                          keepdims=True), atol=1e-4)
    assert (train.words > 3).any()  # words were moved onto the clip's clock, so they land in the windows
