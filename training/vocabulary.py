"""The English vocabulary of the shipped default: the words it trains on plus the words a robot will say.

A vocabulary built from the training transcripts alone (what `write_dataset` does by default) maps most of what a
robot says to <UNK> when the real training speech is a few minutes: the issue-15 default knew 274 words, mostly the
synthetic grammar's. The words added here keep their offline subword vectors (ha2g_model.text) and are never
trained, so they help only as far as similar spellings do; what they avoid is collapsing every unseen word onto one
index. Sources, all offline:
  * every word of the training sequences (most frequent first);
  * every BEAT transcript found (English speech, motion-capture takes and speech-only takes alike);
  * the sentences the robot demo speaks (ha2g_ros.tts.SPEECH);
  * scikit-learn's English stop-word list (318 function words; scikit-learn comes with librosa). No larger list of
    common English words is installed here; a FastText model given as `word_vectors` covers the rest at training
    time, and `Vocab.index` maps inflected forms of known words onto them at run time.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from ha2g_model.text import Vocab, normalize_word
from ha2g_model.words import read_words
from training.windows import Sequence


def robot_sentences_words() -> list[str]:
    from ha2g_ros.tts import SPEECH

    return [w for paragraph in SPEECH for sentence in paragraph for w in sentence.split()]


def function_words() -> list[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return sorted(ENGLISH_STOP_WORDS)


def transcript_words(folder: str | Path) -> list[str]:
    """The words of every TextGrid under `folder` (sorted by path, so the vocabulary is reproducible)."""
    return [w for path in sorted(Path(folder).rglob("*.TextGrid")) for w, _, _ in read_words(path)]


def english_vocabulary(sequences: Iterable[Sequence], extra_words: Iterable[str] = ()) -> Vocab:
    """The training words, most frequent first, then the extra words not among them (in first-seen order)."""
    vocab = Vocab.build(w for seq in sequences for w, _, _ in seq.words)
    for word in extra_words:
        if normalize_word(word):
            vocab.add(word)
    return vocab
