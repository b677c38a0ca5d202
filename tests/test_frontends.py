"""Audio and text front-ends: log-mel, window slicing, resampling, validation, vocabulary, word timings, vectors."""
import json
from pathlib import Path

import numpy as np
import pytest

from ha2g_model import audio as A
from ha2g_model.text import (EOS, PAD, SOS, UNK, FastTextBin, Vocab, frame_word_indices, hashed_word_vectors,
                             load_word_vectors, normalize_word)
from ha2g_model.words import validate_words

DATA = Path(__file__).parent / "data"


def tone(seconds, freq=220.0, sr=A.SAMPLE_RATE, amplitude=0.5):
    t = np.arange(int(round(seconds * sr))) / sr
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


# --- audio -----------------------------------------------------------------------------------------------------------

def test_window_constants_match_the_spec():
    assert A.WINDOW_SAMPLES == 36267 and A.SPEC_COLS == 70
    assert round((34 / 15 * 16000 - 1024) / 512 + 1) == A.SPEC_COLS


def test_window_spectrogram_reads_the_windows_own_time_span():
    # 2 s of silence-level noise, then a tone: the window starting at frame 30 (t = 2 s) must begin loud.
    # (The official synthesis read every window from the clip start, i.e. the quiet part.)
    rng = np.random.default_rng(1)
    quiet = (1e-3 * rng.standard_normal(2 * A.SAMPLE_RATE)).astype(np.float32)
    spec = A.log_mel(np.concatenate([quiet, tone(3.0)]))
    first, later = A.window_spectrogram(spec, 0), A.window_spectrogram(spec, 30)
    assert first.shape == later.shape == (128, 70)
    assert A.frame_to_column(30) == 63  # 2 s * 16000 / 512 = 62.5, rounded half up
    assert later[:, :3].max() > first[:, :3].max() + 30
    np.testing.assert_array_equal(later, spec[:, 63:133])


def test_window_spectrogram_pads_past_the_ends():
    spec = np.tile(np.arange(100, dtype=np.float32), (128, 1)) - 80
    tail = A.window_spectrogram(spec, 45)  # starts at column 94: 6 real columns, then padding
    np.testing.assert_array_equal(tail[:, :6], spec[:, 94:100])
    assert np.all(tail[:, 6:] == spec.min())
    head = A.window_spectrogram(spec, -3, pad_db=-80.0)  # 6 columns before the clip
    assert np.all(head[:, :6] == -80.0) and np.array_equal(head[:, 6:], spec[:, :64])
    with pytest.raises(ValueError, match=r"\(128, n_cols\)"):
        A.window_spectrogram(spec[:64], 0)


def test_resample_is_band_limited_and_keeps_pitch():
    sr = 44100
    audio = tone(1.0, freq=440.0, sr=sr)
    out = A.resample(audio, sr)
    assert out.dtype == np.float32 and abs(len(out) - 16000) <= 1
    spectrum = np.abs(np.fft.rfft(out))
    assert abs(np.argmax(spectrum) * A.SAMPLE_RATE / len(out) - 440.0) < 2.0
    # a 10 kHz tone is above the new Nyquist (8 kHz): a real resampler removes it instead of aliasing it
    # (edges excluded: the filter's start-up transient)
    assert np.abs(A.resample(tone(1.0, freq=10000.0, sr=sr), sr)[1000:-1000]).max() < 0.01
    assert A.resample(audio[:16000], 16000) is not None


@pytest.mark.parametrize("audio, sr, message", [
    (np.full(100, np.nan, np.float32), 16000, "NaN/Inf"),
    (np.array([0.1, np.inf], np.float32), 16000, "NaN/Inf"),
    (np.zeros(16000, np.float32), 16000, "silence only"),
    (np.zeros((16000, 2), np.float32) + 0.1, 16000, "mono"),
    ((np.ones(100) * 1000).astype(np.int16), 16000, "floating point"),
    (np.ones(100, np.float32) * 0.1, 44100, "resample"),
    (np.ones(100, np.float32) * 0.1, 0, "positive integer"),
    (np.zeros(0, np.float32), 16000, "empty"),
    (np.ones(100, np.float32) * 3000, 16000, r"\[-1, 1\]"),
])
def test_validate_audio_errors(audio, sr, message):
    with pytest.raises(ValueError, match=message):
        A.validate_audio(audio, sr)


def test_log_mel_rejects_silence_unless_a_reference_is_fixed():
    with pytest.raises(ValueError, match="silence"):
        A.log_mel(np.zeros(A.WINDOW_SAMPLES, np.float32))
    spec = A.log_mel(np.zeros(A.WINDOW_SAMPLES, np.float32), ref=1.0)
    assert np.all(spec == spec.min())


def test_real_speech_clip(ted_culture_clips):
    clip = ted_culture_clips[0]
    with pytest.raises(ValueError, match="floating point"):  # the clips store int16 PCM
        A.log_mel(clip["audio"])
    audio = clip["audio"].astype(np.float32) / 32767
    spec = A.log_mel(audio)
    assert spec.shape == (128, 1 + len(audio) // 512) and np.isfinite(spec).all()
    assert A.window_spectrogram(spec, 15).shape == (128, 70)
    timings = [(str(w), float(s), float(e)) for w, (s, e) in zip(clip["words"], clip["word_times"])]
    vocab = Vocab.build(w for w, _, _ in timings)
    ids = frame_word_indices(timings, vocab, window_start_s=0.0)
    assert (ids > UNK).sum() >= 3  # real speech: several words start within the first 2.3 s


# --- text ------------------------------------------------------------------------------------------------------------

def test_vocab_special_tokens_unknown_words_and_round_trip(tmp_path):
    vocab = Vocab.build(["Hello,", "world", "hello", "the", "The", "world!", "gesture"], min_count=2)
    assert (PAD, SOS, EOS, UNK) == (0, 1, 2, 3) and vocab.words[:4] == ["<PAD>", "<SOS>", "<EOS>", "<UNK>"]
    assert vocab.words[4:] == ["hello", "the", "world"]  # by frequency, ties alphabetical; "gesture" seen once
    assert vocab.index("HELLO!") == 4 and vocab.index("gesture") == UNK and vocab.index("") == UNK
    vocab.save(tmp_path / "vocab.json")
    assert Vocab.load(tmp_path / "vocab.json") == vocab
    assert len(Vocab.build(["a", "b", "c", "d"], max_size=6)) == 6
    assert normalize_word("  Don't... ") == "don't"
    with pytest.raises(ValueError, match="duplicate"):
        Vocab.from_list(["<PAD>", "<SOS>", "<EOS>", "<UNK>", "a", "a"])
    (tmp_path / "bad.json").write_text('{"words": ["a"]}')
    with pytest.raises(ValueError, match="<PAD>"):
        Vocab.load(tmp_path / "bad.json")
    with pytest.raises(FileNotFoundError):
        Vocab.load(tmp_path / "missing.json")


def test_frame_word_indices_place_each_word_at_its_start_frame():
    vocab = Vocab(["so", "we", "move", "hands", "later"])
    words = [("so", 9.9, 10.05), ("we", 10.2, 10.4), ("move", 10.4, 10.7), ("hands", 11.0, 11.5),
             ("unknownword", 12.0, 12.2), ("later", 13.0, 13.5)]
    ids = frame_word_indices(words, vocab, window_start_s=10.0)
    assert ids.dtype == np.int64 and ids.shape == (34,)
    expected = np.zeros(34, np.int64)
    expected[[0, 3, 6, 15, 30]] = [vocab.index("so"), vocab.index("we"), vocab.index("move"), vocab.index("hands"),
                                   UNK]
    np.testing.assert_array_equal(ids, expected)  # "later" starts after the window (10 + 34/15 s)
    assert frame_word_indices([], vocab, 0.0).sum() == 0


@pytest.mark.parametrize("words, message", [
    ([("a", 1.0)], "#0 must be"),
    ([("a", 0.0, 1.0), ("  ", 1.0, 2.0)], "#1 has an empty word"),
    ([("a", 2.0, 1.0)], "ends before it starts"),
    ([("a", float("nan"), 1.0)], "non-finite"),
    ([("a", "x", 1.0)], "#0 must be"),
    ([None], "#0 must be"),
])
def test_malformed_word_timings_are_named(words, message):
    with pytest.raises(ValueError, match=message):
        validate_words(words, "transcript")


def test_hashed_vectors_are_deterministic_and_subword_aware():
    vocab = Vocab(["gesture", "gestures", "banana", "café"])
    vectors = hashed_word_vectors(vocab, dim=300)
    assert vectors.shape == (8, 300) and vectors.dtype == np.float32
    assert np.array_equal(vectors, hashed_word_vectors(vocab, dim=300)) and not vectors[PAD].any()

    def cos(a, b):
        return float(vectors[a] @ vectors[b] / np.linalg.norm(vectors[a]) / np.linalg.norm(vectors[b]))

    g, gs, b = vocab.index("gesture"), vocab.index("gestures"), vocab.index("banana")
    assert cos(g, gs) > 0.5 > abs(cos(g, b))
    assert np.array_equal(load_word_vectors(vocab, None, dim=300), vectors)


def test_vec_file_loading(tmp_path):
    vocab = Vocab(["hello", "world", "missing"])
    path = tmp_path / "tiny.vec"
    path.write_text("3 4\nHello 1 2 3 4\nworld 0.5 0.5 0.5 0.5\nother 9 9 9 9\n")
    vectors = load_word_vectors(vocab, path)
    assert vectors.shape == (7, 4)
    np.testing.assert_array_equal(vectors[vocab.index("hello")], [1, 2, 3, 4])
    np.testing.assert_array_equal(vectors[vocab.index("world")], [0.5] * 4)
    assert np.linalg.norm(vectors[vocab.index("missing")]) > 0 and not vectors[PAD].any()
    (tmp_path / "bad.vec").write_text("hello 1 2 3\n")
    with pytest.raises(ValueError, match="not a FastText .vec"):
        load_word_vectors(vocab, tmp_path / "bad.vec")
    with pytest.raises(FileNotFoundError):
        load_word_vectors(vocab, tmp_path / "none.vec")
    with pytest.raises(ValueError, match=".vec or .bin"):
        load_word_vectors(vocab, path.rename(tmp_path / "tiny.txt"))


def test_bin_file_matches_the_fasttext_library():
    """fasttext_tiny.bin was trained by the real fastText (fasttext-wheel 0.9.2); the expected vectors are its
    get_word_vector results, for in-vocabulary, out-of-vocabulary and non-ASCII words."""
    expected = json.loads((DATA / "fasttext_tiny_expected.json").read_text())["vectors"]
    model = FastTextBin(DATA / "fasttext_tiny.bin")
    assert model.dim == 8
    for word, vector in expected.items():
        np.testing.assert_allclose(model.word_vector(word), vector, atol=1e-7, err_msg=word)
    vocab = Vocab(["robot", "unseenword"])
    vectors = load_word_vectors(vocab, DATA / "fasttext_tiny.bin")
    np.testing.assert_allclose(vectors[vocab.index("unseenword")], expected["unseenword"], atol=1e-7)
    assert not vectors[PAD].any()


def test_bin_reader_rejects_other_files(tmp_path):
    (tmp_path / "x.bin").write_bytes(b"\x00" * 200)
    with pytest.raises(ValueError, match="not a FastText .bin"):
        FastTextBin(tmp_path / "x.bin")
