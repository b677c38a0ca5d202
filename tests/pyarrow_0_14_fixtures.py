"""Values serialised by the real pyarrow 0.14.1, the library that wrote the official TED Gesture / Expressive lmdb
files, stored in tests/data/pyarrow_0_14/ for tests/test_training_ted_lmdb.py.

Only pyarrow 0.14 can write these bytes, and it needs Python 3.7; run this file there to remake them:

    PYENV_VERSION=3.7.16 python3.7 -m venv /tmp/py37        # any Python 3.7
    /tmp/py37/bin/pip install pyarrow==0.14.1 numpy==1.16.6   # a newer numpy: "Did not pass numpy.dtype object"
    /tmp/py37/bin/python tests/pyarrow_0_14_fixtures.py

The test rebuilds the same values with `fixture_values()` (numpy's legacy RandomState gives the same numbers in
every numpy version) and compares them with what training.ted_lmdb decodes. Python 3.7 syntax on purpose.
"""
import sys
from pathlib import Path

import numpy as np

FIXTURE_DIR = Path(__file__).resolve().parent / "data" / "pyarrow_0_14"


def official_video():
    """One video entry in the layout of the official lmdb files (see ../shared/spec/ha2g.md, data format), small."""
    rng = np.random.RandomState(14)
    n_frames, start = 40, 100.0  # clip and word times are on the video's clock
    words = [["so", 100.1, 100.3], ["what", 100.35, 100.7], ["we", 100.9, 101.0], ["found", 101.05, 101.6],
             ["was", 101.7, 101.9], ["surprising", 102.0, 102.6]]
    clip = {
        "start_frame_no": 1500, "end_frame_no": 1500 + n_frames, "start_time": start, "end_time": start + n_frames / 15,
        "words": words,
        "skeletons": rng.uniform(-1, 1, (n_frames, 30)).astype(np.float32),  # the 2D poses (unused by the reader)
        "skeletons_3d": (rng.normal(0, 0.3, (n_frames, 43, 3))).astype(np.float32),
        "audio_feat": rng.normal(-40, 10, (128, 20)).astype(np.float16),
        "audio_raw": rng.uniform(-0.5, 0.5, round(n_frames / 15 * 16000)).astype(np.float16),
    }
    return {"vid": "fixture_video", "framerate": 15.0, "clips": [clip]}


def every_kind():
    """One of each kind of value pyarrow 0.14's serialize handles, nested."""
    rng = np.random.RandomState(7)
    return {
        "int": 3, "negative": -12, "big": 2 ** 40, "float": 1.5, "true": True, "false": False,
        "text": "h\u00e9llo w\u00f6rld", "bytes": b"\x00\x01\xff",
        "list": [1, "two", 3.0], "tuple": (3.0, 4), "set": {5, 6}, "empty": [],
        "float16": rng.normal(size=(3, 4)).astype(np.float16),
        "int32": rng.randint(-1000, 1000, size=7).astype(np.int32),
        "float64_3d": rng.normal(size=(2, 3, 4)),
        "nested": {"k": [np.ones(2), {"deep": [[1, 2], [3]]}], 7: "integer key"},
    }


def fixture_values():
    """name -> value of every fixture file."""
    return {"official_video": official_video(), "every_kind": every_kind()}


def main():
    import pyarrow

    if not pyarrow.__version__.startswith("0.14."):
        sys.exit("this needs pyarrow 0.14 (see the docstring), got " + pyarrow.__version__)
    FIXTURE_DIR.mkdir(parents=True, exist_ok=True)
    for name, value in fixture_values().items():
        path = FIXTURE_DIR / (name + ".bin")
        path.write_bytes(pyarrow.serialize(value).to_buffer().to_pybytes())
        print(path, path.stat().st_size, "bytes")
    # a serialised None: current pyarrow cannot read the union that holds it (a documented limit of the reader)
    with_none = pyarrow.serialize({"vid": "v", "missing": None}).to_buffer()
    (FIXTURE_DIR / "with_none.bin").write_bytes(with_none.to_pybytes())


if __name__ == "__main__":
    main()
