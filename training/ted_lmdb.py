"""The official TED Gesture / TED Expressive lmdb files -> a windows data set, WITHOUT pyarrow 0.14.

    python -m training.ted_lmdb --train data/ted_expressive_dataset/train --val data/ted_expressive_dataset/val \
        --test data/ted_expressive_dataset/test --skeleton ted_expressive --out data/ted_expressive_windows

Each lmdb value (key '{:010}') was written by `pyarrow.serialize(dict)` of pyarrow 0.14.1, a format that pyarrow
removed in 2.0, which is where users of the official code got stuck. Its bytes, checked against real pyarrow 0.14.1
output (tests/data/pyarrow_0_14/, made by tests/pyarrow_0_14_fixtures.py under Python 3.7):
    int32 num_tensors, int32 num_ndarrays, int32 num_buffers, padding to 8 bytes
    an Arrow IPC stream (legacy framing, metadata V4): schema + one record batch whose column 0 is a dense union,
        one element per serialised object; each union child is named by pyarrow's PythonType code of the values
        it holds ("1" int64, "4" utf8, "9" list<union>, "10" dict as list<struct<keys union, values union>>,
        "14" int32 index of an ndarray ...; see `_decode`)
    each tensor and each ndarray as an Arrow IPC tensor message, 64-byte aligned, then each buffer as int64 size +
    bytes.
Current pyarrow still reads legacy-framed V4 messages (ARROW-6314), so it parses the container; the
union-of-Python-objects layout is decoded here in plain Python.

Known limit: current pyarrow refuses a V4 union with nulls, i.e. a serialised None anywhere in a value ("Cannot read
dense_union array with top-level validity bitmap"); the error names the entry. The official entries are not
expected to hold any. Not run on the real 16 GB files (not available here); if one does not decode, the error names
the entry: please report it with `--limit 1`.
"""
from __future__ import annotations

import argparse
import struct
from pathlib import Path
from typing import Iterator

import numpy as np

from ha2g_model.audio import resample
from ha2g_model.skeleton import get_skeleton, positions_to_directions, resample_frames
from ha2g_model.text import Vocab
from training.windows import Sequence, write_dataset

ALIGNMENT = 64  # tensor bodies are 64-byte aligned in the serialised stream


def _pyarrow():
    try:
        import pyarrow as pa
        import pyarrow.ipc  # noqa: F401  (registers pa.ipc)
    except ImportError as e:
        raise ImportError("reading the official lmdb files needs a current pyarrow (pip install pyarrow); "
                          "pyarrow 0.14 is NOT needed") from e
    return pa


def decode_serialized(data: bytes):
    """Decode one `pyarrow.serialize` blob (pyarrow 0.14 layout) into Python objects and numpy arrays."""
    pa = _pyarrow()
    counts = struct.unpack_from("<3i", data, 0)
    if min(counts) < 0 or max(counts) > 1_000_000:
        raise ValueError(f"not a pyarrow.serialize blob: implausible header counts {counts}")
    n_tensors, n_ndarrays, n_buffers = counts
    reader = pa.BufferReader(pa.py_buffer(data))
    reader.seek(16)  # the three counts, then the IPC stream 8-byte aligned
    schema_message = pa.ipc.read_message(reader)
    schema = pa.ipc.read_schema(schema_message)
    batch = pa.ipc.read_record_batch(pa.ipc.read_message(reader), schema)
    # end-of-stream marker: a zero length (legacy framing), or continuation token + zero (current framing)
    marker = struct.unpack_from("<I", data, reader.tell())[0]
    reader.seek(reader.tell() + (8 if marker == 0xFFFFFFFF else 4))
    blobs = {"tensor": [], "ndarray": [], "buffer": []}
    for kind, n in (("tensor", n_tensors), ("ndarray", n_ndarrays)):
        for _ in range(n):
            reader.seek(-(-reader.tell() // ALIGNMENT) * ALIGNMENT)
            blobs[kind].append(pa.ipc.read_tensor(reader).to_numpy())
    if n_buffers:
        reader.seek(-(-reader.tell() // ALIGNMENT) * ALIGNMENT)
    for _ in range(n_buffers):
        (size,) = struct.unpack("<q", reader.read(8))
        blobs["buffer"].append(reader.read(size))
    return _decode(batch.column(0), 0, blobs)


# pyarrow 0.14's PythonType codes (arrow/python/serialize.h), which name the union's fields ("9" = list...): the
# field a value lives in says what it is; the scalar kinds (0 bool, 1 int, 3 bytes, 4 str, 5 half, 6 float,
# 7 double, 8 date64) need no help to decode.
LIST, DICT, TUPLE, SET = 9, 10, 11, 12
BLOB_KINDS = {13: "tensor", 14: "ndarray", 15: "buffer"}  # an int32 index into the blobs after the record batch


def _decode(union, i: int, blobs: dict):
    """Element i of a serialised-object union array."""
    position = union.type.type_codes.index(union.type_codes[i].as_py())
    code, child, j = int(union.type.field(position).name), union.field(position), union.offsets[i].as_py()
    if code in BLOB_KINDS:
        return blobs[BLOB_KINDS[code]][child[j].as_py()]
    if code in (LIST, DICT, TUPLE, SET):  # a list<union> (dict: list<struct<keys union, values union>>)
        start, stop = child.offsets[j].as_py(), child.offsets[j + 1].as_py()
        if code == DICT:
            keys, values = child.values.field(0), child.values.field(1)
            return {_decode(keys, k, blobs): _decode(values, k, blobs) for k in range(start, stop)}
        items = [_decode(child.values, k, blobs) for k in range(start, stop)]
        return tuple(items) if code == TUPLE else set(items) if code == SET else items
    return child[j].as_py()


# --- lmdb entries -> sequences -----------------------------------------------------------------------------------

def read_entries(lmdb_dir: str | Path, limit: int | None = None) -> Iterator[tuple[bytes, dict]]:
    """(key, decoded value) of every entry of an official lmdb directory, in key order."""
    try:
        import lmdb
    except ImportError as e:
        raise ImportError("reading the official lmdb files needs the lmdb package (pip install lmdb)") from e
    if not (Path(lmdb_dir) / "data.mdb").exists():
        raise FileNotFoundError(f"{lmdb_dir}: no data.mdb (pass the lmdb directory of one split)")
    env = lmdb.open(str(lmdb_dir), readonly=True, lock=False)
    with env.begin() as txn:
        for n, (key, value) in enumerate(txn.cursor()):
            if limit is not None and n >= limit:
                break
            try:
                yield key, decode_serialized(value)
            except Exception as e:
                raise ValueError(f"{lmdb_dir}: entry {key!r} could not be decoded: {e}") from e
    env.close()


def video_sequences(video: dict, skeleton_name: str) -> Iterator[Sequence]:
    """The clips of one official video entry as Sequences (words shifted to each clip's own clock)."""
    skeleton = get_skeleton(skeleton_name)
    vid = str(video["vid"])
    fps = float(video.get("framerate", 15))
    for k, clip in enumerate(video["clips"]):
        positions = np.asarray(clip["skeletons_3d"], dtype=np.float32)
        if positions.ndim != 3 or positions.shape[1:] != (skeleton.n_joints, 3) or len(positions) < 2:
            continue  # clips without 3D poses of this skeleton: the official loader skips them too
        if abs(fps - 15) > 1e-3:
            positions = resample_frames(positions, fps, 15)
        audio = np.asarray(clip["audio_raw"], dtype=np.float32)
        if np.abs(audio).max(initial=0) > 1.0:  # some dumps store int16 PCM values
            audio = audio / 32768.0
        start = float(clip["start_time"])
        words = [(str(w), float(s) - start, float(e) - start) for w, s, e in clip["words"] if str(w).strip()]
        yield Sequence(name=f"{vid}_{k}", speaker=vid, directions=positions_to_directions(positions, skeleton),
                       audio=np.clip(resample(audio, 16000), -1, 1), words=words, source="ted",
                       positions=positions - positions[:, :1])


def convert(splits: dict[str, str], skeleton: str, out: str, limit: int | None = None) -> dict:
    """Two passes: words and speakers first (vocabulary), then the windows, so 16 GB never sit in memory."""
    def sequences():
        for split, path in splits.items():
            for _, video in read_entries(path, limit):
                for seq in video_sequences(video, skeleton):
                    split_of[seq.name] = split
                    yield seq

    split_of: dict[str, str] = {}
    words, speakers = [], set()
    for seq in sequences():
        words += [w for w, _, _ in seq.words]
        speakers.add(seq.speaker)
    return write_dataset(sequences(), out, skeleton, split_of=split_of, vocab=Vocab.build(words),
                         speakers=sorted(speakers))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for split in ("train", "val", "test"):
        parser.add_argument(f"--{split}", help=f"lmdb directory of the official {split} split")
    parser.add_argument("--skeleton", required=True, choices=["ted_gesture", "ted_expressive"])
    parser.add_argument("--out", required=True)
    parser.add_argument("--limit", type=int, default=None, help="read only the first N videos per split (a test)")
    args = parser.parse_args()
    splits = {s: getattr(args, s) for s in ("train", "val", "test") if getattr(args, s)}
    if not splits:
        parser.error("give at least one of --train / --val / --test")
    index = convert(splits, args.skeleton, args.out, args.limit)
    print(f"{args.out}: windows {index['windows']}, rejected {index['rejected']}")


if __name__ == "__main__":
    main()
