"""The English vocabulary of the default: what it covers, and what happens to words it does not have."""
import numpy as np

from conftest import SHARED, require_path
from ha2g_model.text import PAD, UNK, Vocab, english_stems, hashed_word_vectors, with_generic_unknown
from training.vocabulary import english_vocabulary, function_words, robot_sentences_words, transcript_words
from training.windows import Sequence

BEAT_SCOTT = SHARED / "data" / "beat_scott"


def _sequence(words: list[str]) -> Sequence:
    return Sequence(name="s", speaker="p", directions=np.zeros((15, 42, 3), np.float32),
                    audio=np.zeros(16000, np.float32), words=[(w, 0.0, 0.1) for w in words], source="x")


def test_vocabulary_covers_the_robots_sentences_beat_and_function_words():
    beat_words = transcript_words(require_path(BEAT_SCOTT))
    assert len(beat_words) > 700  # four takes of about 200 words
    vocab = english_vocabulary([_sequence(["tomorrow", "tomorrow", "gesture"])],
                               beat_words + robot_sentences_words() + function_words())
    assert vocab.words[4:6] == ["tomorrow", "gesture"]  # the training words first, most frequent first
    for word in robot_sentences_words() + beat_words + ["whereas", "nevertheless", "themselves"]:
        assert vocab.index(word) != UNK, word
    assert len(vocab) == len(set(vocab.words))


def test_unknown_words_fall_back_to_the_word_they_inflect_else_unk():
    vocab = Vocab(["gesture", "stop", "study", "make", "robot", "seed"])
    for inflected, base in [("Gestures,", "gesture"), ("stopped", "stop"), ("studies", "study"),
                            ("making", "make"), ("robot's", "robot"), ("robots'", "robot"), ("studied", "study")]:
        assert vocab.index(inflected) == vocab.index(base), inflected
    assert vocab.index("banana") == UNK and vocab.index("") == UNK
    assert vocab.index("se") == UNK  # stems shorter than 3 letters are not tried
    assert english_stems("stopping")[:2] == ["stopp", "stop"]


def test_unknown_word_vector_is_the_mean_word():
    vocab = Vocab(["hello", "world", "gesture"])
    vectors = with_generic_unknown(hashed_word_vectors(vocab, dim=16))
    np.testing.assert_allclose(vectors[UNK], vectors[4:].mean(axis=0), rtol=1e-6)
    assert not vectors[PAD].any()
    assert np.array_equal(vectors[4:], hashed_word_vectors(vocab, dim=16)[4:])
