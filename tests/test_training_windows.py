"""Windows: the on-disk format round-trips, the official filters drop what they should, splits follow speakers."""
import numpy as np
import pytest

from ha2g_model.skeleton import TED_EXPRESSIVE
from training import ted_culture
from training.windows import (N_FRAMES, WINDOW_SAMPLES, Sequence, WindowFilter, filter_positions, load_vocab,
                              load_windows, read_index, rejection_reason, speaker_split, write_dataset)


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
