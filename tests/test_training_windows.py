"""Windows: the on-disk format round-trips, the official filters drop what they should, splits follow speakers,
partial skeletons keep their per-bone mask, and data sets from before the mask still load."""
import json

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from ha2g_model.skeleton import TED_EXPRESSIVE
from training import ted_culture
from training.data import WindowDataset
from training.windows import (N_FRAMES, WINDOW_SAMPLES, Sequence, WindowFilter, filter_positions, load_vocab,
                              load_windows, read_index, rejection_reason, speaker_posture_offsets, speaker_split,
                              write_dataset)


def test_shared_clips_round_trip(ted_culture_dir, tmp_path):
    clips = ted_culture.load_clips(ted_culture_dir)
    assert len(clips) == 12 and all(c.source == "ted_culture" for c in clips)
    split = {c.name: ted_culture.split_of(c.name) for c in clips}
    index = write_dataset(clips, tmp_path / "w", "ted_expressive", split_of=split)
    assert set(index["windows"]) == {"train", "val", "test"} and all(index["windows"].values())
    assert sum(index["rejected"].values()) > 0  # the official filters do drop some real windows
    test = load_windows(tmp_path / "w", "test")
    assert test.dir_vec.shape[1:] == (N_FRAMES, 42, 3) and test.spec.shape[1:] == (128, 70)
    assert test.audio.shape[1] == WINDOW_SAMPLES and test.words.shape[1] == N_FRAMES
    names = {index["sequences"][i]["name"] for i in test.sequence}
    assert names == set(ted_culture.TEST_CLIPS)
    # a stored window is exactly the clip's frames from its start
    clip = next(c for c in clips if c.name == index["sequences"][test.sequence[0]]["name"])
    np.testing.assert_allclose(test.dir_vec[0], clip.directions[test.start[0]:test.start[0] + N_FRAMES], atol=1e-6)
    assert load_vocab(tmp_path / "w").index(clip.words[0][0]) > 3
    assert read_index(tmp_path / "w")["skeleton"] == "ted_expressive"
    with pytest.raises(FileExistsError):
        write_dataset(clips[:1], tmp_path / "w", "ted_expressive")


def _still_sequence(name="still", speaker="s", words=True):
    n = 60
    directions = np.repeat(TED_EXPRESSIVE.rest_directions()[None], n, axis=0)
    audio = (0.1 * np.sin(np.arange(int(n / 15 * 16000)) * 0.05)).astype(np.float32)
    timed = [("hello", 0.1, 0.5), ("world", 0.6, 1.0), ("again", 2.0, 2.5)] if words else []
    return Sequence(name, speaker, directions, audio, timed, "synthetic")


def test_filters_reject_static_and_wordless_windows():
    flt = WindowFilter()
    still = filter_positions(_still_sequence().directions[:N_FRAMES], TED_EXPRESSIVE)
    assert rejection_reason(still, 5, TED_EXPRESSIVE, flt) in ("pose", "motion")
    assert rejection_reason(still, 1, TED_EXPRESSIVE, flt) == "words"
    assert rejection_reason(still, 1, TED_EXPRESSIVE, WindowFilter(enabled=False)) is None
    # a bent-over person (spine 60 degrees from vertical) is rejected for its spine angle
    bent = still.copy()
    neck = TED_EXPRESSIVE.joint_names.index("neck")
    bent[:, neck] = [0.0, -0.5 * np.cos(np.radians(60)), -0.5 * np.sin(np.radians(60))]
    bent[:, 2:] += np.sin(np.arange(N_FRAMES))[:, None, None] * 0.3  # lots of motion, so only the spine fails
    assert rejection_reason(bent, 5, TED_EXPRESSIVE, flt) == "spine angle"


def test_bad_sequences_are_refused_with_a_reason(tmp_path):
    seq = _still_sequence()
    seq.directions = seq.directions * 2
    with pytest.raises(ValueError, match="unit vectors"):
        write_dataset([seq], tmp_path / "a", "ted_expressive")
    seq = _still_sequence()
    seq.audio[5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        write_dataset([seq], tmp_path / "b", "ted_expressive")
    with pytest.raises(ValueError, match="unique"):
        write_dataset([_still_sequence(), _still_sequence()], tmp_path / "c", "ted_expressive")


def test_speaker_split_is_deterministic_and_keeps_speakers_together():
    splits = [speaker_split(f"speaker{i}") for i in range(400)]
    assert splits == [speaker_split(f"speaker{i}") for i in range(400)]
    counts = {s: splits.count(s) for s in ("train", "val", "test")}
    assert 240 < counts["train"] < 400 and counts["val"] > 10 and counts["test"] > 10


def test_partial_skeletons_keep_their_bone_mask(tmp_path):
    """A source without fingers marks them invalid; a per-frame gap (tracking lost) is kept frame by frame."""
    fingers = [b for b in range(42) if b not in TED_EXPRESSIVE.levels[2]]
    no_fingers = _still_sequence("no_fingers", "a")
    no_fingers.valid = np.ones(42, dtype=bool)
    no_fingers.valid[fingers] = False
    gap = _still_sequence("gap", "b")
    gap.valid = np.ones((gap.n_frames, 42), dtype=bool)
    gap.valid[25:40, TED_EXPRESSIVE.bone_index("left_elbow", "left_wrist")] = False
    index = write_dataset([no_fingers, gap, _still_sequence("whole", "c")], tmp_path / "w", "ted_expressive",
                          split_of={"no_fingers": "train", "gap": "train", "whole": "train"},
                          flt=WindowFilter(enabled=False))
    assert read_index(tmp_path / "w")["format"] == "ha2g_windows/3"
    missing = {s["name"]: s["missing_bones"] for s in index["sequences"]}
    assert len(missing["no_fingers"]) == 30 and "left_wrist-left_index_1" in missing["no_fingers"]
    assert missing["gap"] == [] and missing["whole"] == []  # a gap is not a missing bone
    train = load_windows(tmp_path / "w", "train")
    assert train.valid.shape == (len(train), N_FRAMES, 42) and train.valid.dtype == bool
    for i in range(len(train)):
        seq = [no_fingers, gap, None][train.sequence[i]]
        start = train.start[i]
        expected = np.ones((N_FRAMES, 42), bool) if seq is None else seq.bone_validity()[start:start + N_FRAMES]
        np.testing.assert_array_equal(train.valid[i], expected)
    assert not train.valid[train.sequence == 1].all()  # the gap reached the windows that cover it
    bad = _still_sequence()
    bad.valid = np.ones(41, dtype=bool)
    with pytest.raises(ValueError, match="valid must be"):
        write_dataset([bad], tmp_path / "bad", "ted_expressive")


def test_data_sets_from_before_the_mask_load_with_every_bone_valid(tmp_path):
    """ha2g_windows/2: the same shards without `valid`."""
    write_dataset([_still_sequence()], tmp_path / "w", "ted_expressive", split_of={"still": "train"},
                  flt=WindowFilter(enabled=False))
    new = load_windows(tmp_path / "w", "train")
    index = read_index(tmp_path / "w")
    for shard in index["shards"]["train"]:
        tensors = load_file(str(tmp_path / "w" / shard["file"]))
        save_file({k: v for k, v in tensors.items() if k != "valid"}, str(tmp_path / "w" / shard["file"]))
    (tmp_path / "w" / "index.json").write_text(json.dumps(index | {"format": "ha2g_windows/2"}))
    old = load_windows(tmp_path / "w", "train")
    assert old.valid.shape == new.valid.shape and old.valid.all()
    np.testing.assert_array_equal(old.dir_vec, new.dir_vec)
    streamed = WindowDataset(tmp_path / "w", "train")  # what training reads
    assert all(bool(streamed[i][4].all()) for i in range(len(streamed)))
    (tmp_path / "w" / "index.json").write_text(json.dumps(index | {"format": "ha2g_windows/9"}))
    with pytest.raises(ValueError, match="unknown format"):
        load_windows(tmp_path / "w", "train")


def test_speaker_posture_offsets_are_the_real_training_speakers_arm_postures(tmp_path):
    """Each real training speaker's average arm posture relative to their mean; fingers, head, synthetic speakers,
    other splits and bones a source lacks are left out."""
    forearm = TED_EXPRESSIVE.bone_index("left_elbow", "left_wrist")
    finger = TED_EXPRESSIVE.bone_index("left_wrist", "left_index_1")

    def speaker(name, source, forearm_direction, valid=None):
        seq = _still_sequence(name, name)
        seq.source = source
        seq.directions = seq.directions.copy()
        seq.directions[:, forearm] = forearm_direction
        seq.directions[:, finger] = forearm_direction  # a finger pose of its own: not a posture bone
        seq.valid = valid
        return seq

    lacks_forearm = np.ones(42, dtype=bool)
    lacks_forearm[forearm] = False
    sequences = [speaker("a", "ted_culture", [1.0, 0, 0]), speaker("b", "beat", [0, 1.0, 0]),
                 speaker("c", "synthetic", [0, 0, 1.0]), speaker("d", "recordings", [0, 0, -1.0], lacks_forearm),
                 speaker("e", "ted_culture", [-1.0, 0, 0])]
    write_dataset(sequences, tmp_path / "w", "ted_expressive", flt=WindowFilter(enabled=False),
                  split_of={"a": "train", "b": "train", "c": "train", "d": "train", "e": "val"})
    offsets = speaker_posture_offsets(tmp_path / "w")
    assert set(offsets) == {"a", "b", "d"}  # real training speakers only
    table = {name: np.asarray(values).reshape(42, 3) for name, values in offsets.items()}
    mean = np.array([0.5, 0.5, 0.0])  # of a's and b's forearms: d has none
    np.testing.assert_allclose(table["a"][forearm], [0.5, -0.5, 0.0], atol=1e-6)
    np.testing.assert_allclose(table["b"][forearm], np.array([0, 1.0, 0]) - mean, atol=1e-6)
    np.testing.assert_array_equal(table["d"][forearm], 0.0)
    for name in table:  # the other bones: the same rest posture (offset 0), or not posture bones
        others = np.delete(table[name], forearm, axis=0)
        np.testing.assert_allclose(others, 0.0, atol=1e-6)
    assert speaker_posture_offsets(tmp_path / "w", "test") == {}
