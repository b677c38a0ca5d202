"""The official lmdb reader, on bytes written by the real pyarrow 0.14.1 (tests/data/pyarrow_0_14/, made by
tests/pyarrow_0_14_fixtures.py under Python 3.7) and on values written in the same layout by current pyarrow.

The real 16 GB files are not available here; the real pyarrow 0.14.1 bytes pin the layout, and the hand-written
serialiser below (checked against them) puts a real clip through the whole conversion into training windows.
"""
import struct

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")
lmdb = pytest.importorskip("lmdb")

from ha2g_model.skeleton import TED_EXPRESSIVE, directions_to_positions  # noqa: E402
from training import ted_lmdb  # noqa: E402
from training.windows import N_FRAMES, STRIDE, load_windows  # noqa: E402

from pyarrow_0_14_fixtures import FIXTURE_DIR, every_kind, fixture_values  # noqa: E402

# pyarrow 0.14's PythonType code of each kind of value: the name of its child in the union
KIND_CODES = {bool: "0", int: "1", bytes: "3", str: "4", float: "7", list: "9", dict: "10", tuple: "11", set: "12",
              np.ndarray: "14"}
SCALAR_TYPES = {"0": pa.bool_(), "1": pa.int64(), "3": pa.binary(), "4": pa.utf8(), "7": pa.float64(),
                "14": pa.int32()}


def _union(values, ndarrays):
    """A dense union of Python values as pyarrow 0.14's SequenceBuilder lays it out: one child per kind of value."""
    kinds, tags, offsets, children = [], [], [], {}
    for value in values:
        kind = KIND_CODES[type(value)]
        if kind == "14":
            ndarrays.append(value)
            value = len(ndarrays) - 1  # an index into the ndarrays after the record batch
        if kind not in kinds:
            kinds.append(kind)
            children[kind] = []
        tags.append(kinds.index(kind))
        offsets.append(len(children[kind]))
        children[kind].append(value)
    arrays = []
    for kind in kinds:
        items = children[kind]
        if kind in SCALAR_TYPES:
            arrays.append(pa.array(items, type=SCALAR_TYPES[kind]))
            continue
        lengths = pa.array(np.cumsum([0] + [len(x) for x in items]), pa.int32())
        if kind == "10":
            keys = _union([k for d in items for k in d], ndarrays)
            values_ = _union([v for d in items for v in d.values()], ndarrays)
            flat = pa.StructArray.from_arrays([keys, values_], names=["", ""])
        else:
            flat = _union([x for sub in items for x in sub], ndarrays)
        arrays.append(pa.ListArray.from_arrays(lengths, flat))
    return pa.UnionArray.from_dense(pa.array(tags, pa.int8()), pa.array(offsets, pa.int32()), arrays, kinds)


def serialize_0_14(value) -> bytes:
    """`pyarrow.serialize(value)` of pyarrow 0.14, written with current pyarrow (legacy-framed V4 IPC)."""
    ndarrays = []
    batch = pa.record_batch([_union([value], ndarrays)], names=["list"])
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(metadata_version=pa.ipc.MetadataVersion.V4, use_legacy_format=True)
    with pa.ipc.new_stream(sink, batch.schema, options=options) as writer:
        writer.write_batch(batch)
    out = bytearray(struct.pack("<4i", 0, len(ndarrays), 0, 0) + sink.getvalue().to_pybytes())  # 3 counts, padding
    for array in ndarrays:
        out += b"\0" * (-len(out) % 64)
        tensor_sink = pa.BufferOutputStream()
        pa.ipc.write_tensor(pa.Tensor.from_numpy(array), tensor_sink)
        out += tensor_sink.getvalue().to_pybytes()
    return bytes(out)


def assert_same(decoded, expected, where="value"):
    """Equal, and of the same Python type / numpy dtype, all the way down."""
    if isinstance(expected, np.ndarray):
        assert isinstance(decoded, np.ndarray) and decoded.dtype == expected.dtype, where
        np.testing.assert_array_equal(decoded, expected, err_msg=where)
        return
    assert type(decoded) is type(expected), f"{where}: {type(decoded).__name__} != {type(expected).__name__}"
    if isinstance(expected, dict):
        assert list(decoded) == list(expected), where
        for key in expected:
            assert_same(decoded[key], expected[key], f"{where}[{key!r}]")
    elif isinstance(expected, (list, tuple)):
        assert len(decoded) == len(expected), where
        for k, (d, e) in enumerate(zip(decoded, expected)):
            assert_same(d, e, f"{where}[{k}]")
    else:
        assert decoded == expected, where


def write_lmdb(path, values: list[bytes]):
    env = lmdb.open(str(path), map_size=1 << 26)
    with env.begin(write=True) as txn:
        for key, value in enumerate(values):
            txn.put(f"{key:010}".encode(), value)  # the official keys
    env.close()
    return str(path)


@pytest.mark.parametrize("name", sorted(fixture_values()))
def test_bytes_of_the_real_pyarrow_0_14_decode_exactly(name):
    value = fixture_values()[name]
    assert_same(ted_lmdb.decode_serialized((FIXTURE_DIR / f"{name}.bin").read_bytes()), value)


def test_the_handwritten_serialiser_matches_real_pyarrow_0_14():
    value = every_kind()
    real = ted_lmdb.decode_serialized((FIXTURE_DIR / "every_kind.bin").read_bytes())
    assert_same(ted_lmdb.decode_serialized(serialize_0_14(value)), real)


def test_undecodable_values_name_their_entry(tmp_path):
    with pytest.raises(ValueError, match="implausible"):
        ted_lmdb.decode_serialized(struct.pack("<3i", -5, 0, 0) + b"\0" * 64)
    # a serialised None: current pyarrow refuses V4 unions with a validity bitmap (the reader's documented limit)
    path = write_lmdb(tmp_path / "none", [(FIXTURE_DIR / "with_none.bin").read_bytes()])
    with pytest.raises(ValueError, match=r"entry b'0000000000' could not be decoded.*validity bitmap"):
        list(ted_lmdb.read_entries(path))


def test_convert_an_lmdb_written_by_pyarrow_0_14(tmp_path):
    blob = (FIXTURE_DIR / "official_video.bin").read_bytes()
    video = fixture_values()["official_video"]
    clip = video["clips"][0]
    path = write_lmdb(tmp_path / "train", [blob])
    (sequence,) = ted_lmdb.video_sequences(next(ted_lmdb.read_entries(path))[1], "ted_expressive")
    assert sequence.name == "fixture_video_0" and sequence.speaker == "fixture_video"
    assert sequence.n_frames == len(clip["skeletons_3d"]) and len(sequence.audio) == len(clip["audio_raw"])
    assert sequence.words[0] == ("so", pytest.approx(0.1), pytest.approx(0.3))  # on the clip's own clock
    index = ted_lmdb.convert({"train": path}, "ted_expressive", str(tmp_path / "out"))
    assert [s["name"] for s in index["sequences"]] == ["fixture_video_0"]
    n_starts = len(range(0, sequence.n_frames - N_FRAMES + 1, STRIDE))
    assert sum(index["windows"].values()) + sum(index["rejected"].values()) == n_starts  # random poses: rejected


def test_convert_a_real_clip_through_an_official_style_lmdb(ted_culture_clips, tmp_path):
    clip = ted_culture_clips[0]
    positions = directions_to_positions(clip["dir_vec"], TED_EXPRESSIVE) + np.array([0.0, -0.5, 0.0])
    start = 100.0  # official word and clip times are on the video's clock
    video = {"vid": "video0", "framerate": 15.0, "clips": [{
        "words": [[str(w), float(s) + start, float(e) + start] for w, (s, e) in zip(clip["words"], clip["word_times"])],
        "skeletons_3d": positions.astype(np.float32), "audio_raw": (clip["audio"] / 32767).astype(np.float16),
        "start_time": start, "end_time": start + len(positions) / 15, "start_frame_no": 0,
        "end_frame_no": len(positions)}]}
    splits = {split: write_lmdb(tmp_path / split, [serialize_0_14(video | {"vid": f"video_{split}"})])
              for split in ("train", "val")}
    index = ted_lmdb.convert(splits, "ted_expressive", str(tmp_path / "out"))
    assert index["speakers"] == ["video_train", "video_val"] and index["windows"]["train"] > 0
    train = load_windows(tmp_path / "out", "train")
    truth = clip["dir_vec"][:34]
    np.testing.assert_allclose(train.dir_vec[0], truth / np.linalg.norm(truth, axis=-1, keepdims=True), atol=1e-4)
    assert (train.words > 3).any()  # words were moved onto the clip's clock, so they land in the windows
