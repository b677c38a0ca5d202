"""BEAT ingestion on the real take in ../shared/data/beat_scott: the authors' folder layout, the speaker from the take
name, the frame rate despite the BVH header, and BEAT's skeleton mapped onto TED Expressive the right way up."""
from pathlib import Path

import numpy as np
import pytest

from conftest import SHARED, require_path
from ha2g_model.skeleton import TED_EXPRESSIVE
from training import beat
from training.windows import load_windows

BEAT_SCOTT = SHARED / "data" / "beat_scott"


@pytest.fixture(scope="module")
def beat_folder(tmp_path_factory) -> Path:
    """The shared files, linked into BEAT's layout: one folder per speaker id, plus a split file."""
    source = require_path(BEAT_SCOTT)
    root = tmp_path_factory.mktemp("beat") / "beat_english_v0.2.1"
    (root / "2").mkdir(parents=True)
    for path in source.iterdir():
        if path.suffix in (".bvh", ".wav", ".TextGrid"):
            (root / "2" / path.name).symlink_to(path)
    (root / "train_test_split.csv").write_text("id,type\n2_scott_0_1_1,val\n2_scott_0_2_2,test\n")
    return root


def test_beat_folder_converts_with_speaker_split_and_frame_rate(beat_folder, tmp_path):
    takes = beat.find_takes(beat_folder)
    assert [t[0].stem for t in takes] == ["2_scott_0_1_1"]  # the speech-only takes have no motion: skipped
    index = beat.convert(beat_folder, tmp_path / "w")
    assert index["speakers"] == ["2_scott"] and index["sources"] == {"beat": 1}
    assert index["sequences"][0]["split"] == "val"  # from train_test_split.csv
    # the header claims 7669 frames at 120 fps; the file holds 957 at 15 fps, 63.8 s against 64.1 s of audio
    assert abs(index["sequences"][0]["n_frames"] - 957) <= 1
    val = load_windows(tmp_path / "w", "val")
    assert len(val) > 20 and (val.words > 3).any()
    # the right way up and facing forward: torso and shoulders keep TED's rest directions, the arms move
    rest = TED_EXPRESSIVE.rest_directions()
    agreement = (val.dir_vec * rest).sum(-1).mean(axis=(0, 1))
    torso = [TED_EXPRESSIVE.bone_index(p, c) for p, c in (("spine", "neck"), ("neck", "left_shoulder"),
                                                           ("neck", "right_shoulder"))]
    assert (agreement[torso] > 0.9).all()
    forearm = TED_EXPRESSIVE.bone_index("left_elbow", "left_wrist")
    assert val.dir_vec[:, :, forearm].std(axis=(0, 1)).sum() > 0.1
    # BEAT has body and fingers but no face joints: the face bones are placeholders, marked so in every window
    face = [TED_EXPRESSIVE.bone_index(p, c) for p, c in (("neck", "nose"), ("nose", "right_eye"), ("nose", "left_eye"),
                                                         ("right_eye", "right_ear"), ("left_eye", "left_ear"))]
    assert not val.valid[..., face].any() and np.delete(val.valid, face, axis=-1).all()
    assert index["sequences"][0]["missing_bones"] == ["neck-nose", "nose-right_eye", "nose-left_eye",
                                                      "right_eye-right_ear", "left_eye-left_ear"]


def test_frame_rate_and_names_are_checked():
    assert beat.motion_rate(957, None, 64.1, Path("x.bvh")) == 15.0
    assert beat.motion_rate(1920, 1 / 30, 64.0, Path("x.bvh")) == 30.0  # a header that fits the audio is trusted
    assert beat.motion_rate(957, 1 / 120, 64.1, Path("x.bvh")) == 15.0  # one that does not is not
    with pytest.raises(ValueError, match="no usual rate"):
        beat.motion_rate(1100, None, 64.1, Path("x.bvh"))
    assert beat.speaker_of("12_carla_1_3_3") == "12_carla"
    with pytest.raises(ValueError, match="not a BEAT take name"):
        beat.speaker_of("talk01")
    with pytest.raises(FileNotFoundError, match="no BEAT take"):
        beat.find_takes(Path(__file__).parent)
