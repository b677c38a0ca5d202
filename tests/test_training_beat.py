"""BEAT ingestion on the real take in ../shared/data/beat_scott: the authors' folder layout, the speaker from the take
name, the frame rate despite the BVH header, and BEAT's skeleton mapped onto TED Expressive the right way up."""
from pathlib import Path

import numpy as np
import pytest

from conftest import SHARED, require_path
from ha2g_model.skeleton import TED_EXPRESSIVE, directions_to_positions
from training import beat
from training.recordings import read_bvh
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


def test_beat_bones_are_rigid_symmetric_and_proportioned_like_ted():
    """The BVH reader's joint positions: every mapped arm and hand bone keeps its length in all 957 frames, left and
    right arms are equally long, and the proportions match TED Expressive's (so directions mean the same thing)."""
    names, positions, _ = read_bvh(require_path(BEAT_SCOTT) / "2_scott_0_1_1.bvh")

    def length(a: str, b: str) -> np.ndarray:
        return np.linalg.norm(positions[:, names.index(beat.JOINTS[a])] - positions[:, names.index(beat.JOINTS[b])],
                              axis=-1)

    def ted_length(a: str, b: str) -> float:
        return TED_EXPRESSIVE.bone_lengths[TED_EXPRESSIVE.bone_index(a, b)]

    arm = {}
    for side in ("left", "right"):
        for a, b in ((f"{side}_shoulder", f"{side}_elbow"), (f"{side}_elbow", f"{side}_wrist"),
                     (f"{side}_wrist", f"{side}_index_1"), (f"{side}_index_1", f"{side}_index_2")):
            lengths = length(a, b)
            assert lengths.std() < 1e-3 * lengths.mean(), (a, b)  # a rigid bone: the reader chains offsets right
            arm[a, b] = lengths.mean()
    assert arm["left_shoulder", "left_elbow"] == pytest.approx(arm["right_shoulder", "right_elbow"], rel=0.01)
    assert arm["left_elbow", "left_wrist"] == pytest.approx(arm["right_elbow", "right_wrist"], rel=0.01)
    for upper, lower in ((("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist")),
                         (("left_elbow", "left_wrist"), ("left_wrist", "left_index_1"))):
        assert arm[upper] / arm[lower] == pytest.approx(ted_length(*upper) / ted_length(*lower), rel=0.15)


def test_beat_left_is_the_persons_left():
    """BEAT faces +Z with Y up, so the person's left hand is at +X in the file; after conversion it must be on TED
    Expressive's left side (where the rest pose's left wrist is), not mirrored."""
    folder = require_path(BEAT_SCOTT)
    names, positions, _ = read_bvh(folder / "2_scott_0_1_1.bvh")
    assert positions[:, names.index("LeftHand"), 0].mean() > 0 > positions[:, names.index("RightHand"), 0].mean()
    take = beat.load_take(folder / "2_scott_0_1_1.bvh", folder / "2_scott_0_1_1.wav", folder / "2_scott_0_1_1.TextGrid")
    converted = directions_to_positions(take.directions, TED_EXPRESSIVE)
    rest = directions_to_positions(TED_EXPRESSIVE.rest_directions()[None], TED_EXPRESSIVE)[0]
    for side in ("left", "right"):
        wrist = TED_EXPRESSIVE.joint_names.index(f"{side}_wrist")
        assert np.sign(converted[:, wrist, 0]).mean() * np.sign(rest[wrist, 0]) > 0.9, side


def test_default_data_trains_on_beat_with_an_english_vocabulary(tmp_path):
    """The shipped default's data: BEAT's motion take is training material beside the TED-Culture clips, and the
    vocabulary covers what the robot says."""
    require_path(BEAT_SCOTT)
    from ha2g_model.text import UNK, Vocab
    from training.export_default import build_data
    from training.vocabulary import robot_sentences_words

    index = build_data(str(tmp_path / "w"), n_synthetic=0, beat_dir=BEAT_SCOTT)
    assert index["sources"] == {"ted_culture": 12, "beat": 1}
    assert [s["split"] for s in index["sequences"] if s["source"] == "beat"] == ["train"]
    train = load_windows(tmp_path / "w", "train")
    assert (train.sources() == "beat").sum() > 400  # 64 s at stride 2
    vocab = Vocab.load(tmp_path / "w" / "vocab.json")
    assert all(vocab.index(w) != UNK for w in robot_sentences_words())
