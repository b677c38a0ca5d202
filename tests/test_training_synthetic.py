"""The synthetic corpus: espeak-ng word timings are real timings, and the gestures follow the speech by construction."""
import shutil

import numpy as np
import pytest

from ha2g_model.skeleton import TED_EXPRESSIVE as S
from training.metrics import ARM_JOINTS, loudness, loudness_speed_correlation, speeds

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


def test_espeak_word_timings_are_ordered_and_inside_the_audio():
    from training.synthetic import Espeak

    audio, words = Espeak().synthesize("Hello there, this is a small test of timing.")
    assert audio.dtype == np.float32 and 1.5 < len(audio) / 16000 < 6
    assert [w for w, _, _ in words] == ["hello", "there", "this", "is", "a", "small", "test", "of", "timing"]
    starts = [s for _, s, _ in words]
    assert starts == sorted(starts) and all(e > s for _, s, e in words) and words[-1][2] <= len(audio) / 16000
    # speech is where the words are: the loudness inside words is well above the trailing silence
    db = loudness(audio, int(len(audio) / 16000 * 15))
    inside = np.mean([db[int(s * 15):max(int(e * 15), int(s * 15) + 1)].mean() for _, s, e in words])
    assert inside > db.min() + 20
    with pytest.raises(ValueError, match="no voice"):
        Espeak().synthesize("hi", voice="no-such-voice")


def test_synthetic_gestures_follow_loudness():
    from training.synthetic import make_corpus

    sequences = make_corpus(2, n_speakers=2, seed=3, seconds=8)
    for seq in sequences:
        assert seq.source == "synthetic" and seq.directions.shape[1:] == (42, 3)
        np.testing.assert_allclose(np.linalg.norm(seq.directions, axis=-1), 1.0, atol=1e-5)
        assert abs(seq.n_frames - len(seq.audio) / 16000 * 15) <= 1
        assert loudness_speed_correlation(seq.directions, seq.audio, S) > 0.2
        assert 0.05 < speeds(seq.directions, S, ARM_JOINTS).mean() < 1.5  # the speed range of the real clips
