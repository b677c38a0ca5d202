"""The text front-end: a vocabulary, frame-aligned word indices and word vectors (FastText files or an offline default).

HA2G sees speech text as one word index per pose frame (15 fps, PAD = 0 where no word starts), looked up in a word
embedding initialised from FastText "crawl-300d-2M-subword" vectors. Nothing here downloads anything: users who have
FastText files pass their path (`.vec` text or `.bin` model), everyone else gets deterministic hashed character
n-gram vectors, in the spirit of FastText's subwords (similar spellings get similar vectors, unknown words work).
"""
from __future__ import annotations

import json
import math
import mmap
import re
import struct
from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ha2g_model.skeleton import FPS

PAD, SOS, EOS, UNK = 0, 1, 2, 3
SPECIAL_TOKENS = ("<PAD>", "<SOS>", "<EOS>", "<UNK>")
WORD_DIM = 300

_EDGE_PUNCTUATION = re.compile(r"^[^\w']+|[^\w']+$")


def normalize_word(word: str) -> str:
    """Lower-case and strip surrounding punctuation ("Hello," -> "hello"); inner apostrophes stay ("don't")."""
    return _EDGE_PUNCTUATION.sub("", word.strip().lower())


# English inflections, longest first: (suffix, what replaces it). A candidate counts only if the vocabulary has it,
# so a wrong stem ("news" -> "new") costs a near miss at worst, never a crash.
_ENGLISH_SUFFIXES = (("'s", ""), ("s'", ""), ("ies", "y"), ("ied", "y"), ("ing", ""), ("ing", "e"), ("es", ""),
                     ("ed", ""), ("ed", "e"), ("ly", ""), ("er", ""), ("est", ""), ("s", ""))


def english_stems(word: str) -> list[str]:
    """Candidate base forms of an inflected English word, most specific first ("stopped" -> "stopp", "stop")."""
    stems = []
    for suffix, replacement in _ENGLISH_SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:  # "seed" is not "se" (French, in TED)
            stem = word[:len(word) - len(suffix)] + replacement
            stems.append(stem)
            if len(stem) >= 3 and stem[-1] == stem[-2] and not replacement:  # doubled consonant: "stopp" -> "stop"
                stems.append(stem[:-1])
    return stems


class Vocab:
    """Word <-> index, with PAD 0, SOS 1, EOS 2, UNK 3 first. Unknown words map to UNK."""

    def __init__(self, words: Iterable[str] = ()):
        self.words: list[str] = list(SPECIAL_TOKENS)
        self._index: dict[str, int] = {w: i for i, w in enumerate(self.words)}
        for word in words:
            self.add(word)

    def add(self, word: str) -> int:
        word = normalize_word(word)
        if not word:
            raise ValueError("cannot add an empty word (or one made of punctuation only) to the vocabulary")
        if word not in self._index:
            self._index[word] = len(self.words)
            self.words.append(word)
        return self._index[word]

    @classmethod
    def build(cls, words: Iterable[str], min_count: int = 1, max_size: int | None = None) -> "Vocab":
        """From a corpus word list: words seen at least `min_count` times, most frequent first (ties: alphabetical),
        at most `max_size` entries including the 4 special tokens."""
        counts = Counter(w for w in map(normalize_word, words) if w and w not in SPECIAL_TOKENS)
        ranked = sorted((w for w, n in counts.items() if n >= min_count), key=lambda w: (-counts[w], w))
        if max_size is not None:
            ranked = ranked[:max(0, max_size - len(SPECIAL_TOKENS))]
        return cls(ranked)

    def index(self, word: str) -> int:
        """The word's id: exact spelling first (vocabularies from official checkpoints), else its normalised form,
        else that of a known word it inflects ("gestures" -> "gesture", "robot's" -> "robot"), else UNK."""
        exact = self._index.get(word)
        if exact is not None:
            return exact
        word = normalize_word(word)
        for candidate in (word, *english_stems(word)):
            found = self._index.get(candidate)
            if found is not None:
                return found
        return UNK

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word in self._index or normalize_word(word) in self._index

    def __eq__(self, other) -> bool:
        return isinstance(other, Vocab) and self.words == other.words

    def to_dict(self) -> dict:
        return {"words": self.words}

    @classmethod
    def from_list(cls, words: Sequence[str]) -> "Vocab":
        """The vocabulary whose word i is words[i], verbatim (no normalisation): for stored vocabularies."""
        words = list(words)
        if tuple(words[:4]) != SPECIAL_TOKENS or not all(isinstance(w, str) for w in words):
            raise ValueError(f"a stored vocabulary must be a list of strings starting with {', '.join(SPECIAL_TOKENS)}")
        vocab = cls()
        vocab.words = words
        vocab._index = {w: i for i, w in enumerate(words)}
        if len(vocab._index) != len(words):
            duplicates = sorted({w for w in words if words.count(w) > 1})
            raise ValueError(f"vocabulary has duplicate words: {duplicates[:10]}")
        return vocab

    @classmethod
    def from_dict(cls, d: dict) -> "Vocab":
        if not isinstance(d, dict) or not isinstance(d.get("words"), list):
            raise ValueError("a vocabulary must be {'words': [<PAD>, <SOS>, <EOS>, <UNK>, ...]}")
        return cls.from_list(d["words"])

    def save(self, path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), ensure_ascii=False, indent=0))

    @classmethod
    def load(cls, path) -> "Vocab":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"vocabulary file {path} not found")
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except json.JSONDecodeError as e:
            raise ValueError(f"vocabulary file {path} is not valid JSON: {e}") from None


def frame_word_indices(words: Sequence, vocab: Vocab, window_start_s: float, n_frames: int = 34,
                       fps: float = FPS) -> np.ndarray:
    """(word, start_s, end_s) timings -> (n_frames,) int64 word ids of the window starting at `window_start_s`.

    As in the official data loader, a word is written at the one frame where it starts (floor), PAD elsewhere; a word
    that started before the window but is still being spoken lands on frame 0; a later word on the same frame wins.
    `words` are checked once per utterance by `ha2g_model.words.validate_words`, not here (this runs every window).
    """
    indices = np.zeros(n_frames, dtype=np.int64)
    window_end_s = window_start_s + n_frames / fps
    for word, start, end in words:
        if start >= window_end_s or end <= window_start_s:
            continue
        frame = max(0, int(math.floor((start - window_start_s) * fps + 1e-6)))  # 1e-6: exact frame starts
        if frame < n_frames:
            indices[frame] = vocab.index(word)
    return indices


# --- word vectors ----------------------------------------------------------------------------------------------------

def _fnv1a(data: bytes) -> int:
    """FastText's 32-bit FNV-1a, including its sign extension of bytes >= 0x80 (it hashes int8 values)."""
    h = 2166136261
    for byte in data:
        h ^= (byte - 256 if byte >= 128 else byte) & 0xFFFFFFFF
        h = (h * 16777619) & 0xFFFFFFFF
    return h


def _char_ngrams(word: str, minn: int, maxn: int) -> list[bytes]:
    """FastText's subwords of "<word>": UTF-8 character n-grams of length minn..maxn (not the lone "<" / ">")."""
    data = f"<{word}>".encode("utf-8")
    starts = [i for i, b in enumerate(data) if b & 0xC0 != 0x80]  # character boundaries
    ngrams = []
    for a, i in enumerate(starts):
        for n in range(1, maxn + 1):
            if a + n > len(starts):
                break
            j = starts[a + n] if a + n < len(starts) else len(data)
            if n >= minn and not (n == 1 and (i == 0 or j == len(data))):
                ngrams.append(data[i:j])
    return ngrams


def hashed_word_vectors(vocab: Vocab, dim: int = WORD_DIM, minn: int = 3, maxn: int = 6) -> np.ndarray:
    """The offline default: (len(vocab), dim) float32, each word the mean of pseudo-random vectors of its character
    n-grams (seeded by their hash), scaled like FastText's (std 1/sqrt(dim)). Deterministic across runs/machines.
    PAD is the zero vector."""
    cache: dict[bytes, np.ndarray] = {}

    def ngram_vector(ngram: bytes) -> np.ndarray:
        if ngram not in cache:
            cache[ngram] = np.random.default_rng(_fnv1a(ngram)).standard_normal(dim).astype(np.float32)
        return cache[ngram]

    vectors = np.zeros((len(vocab), dim), dtype=np.float32)
    for i, word in enumerate(vocab.words[1:], start=1):
        vectors[i] = np.mean([ngram_vector(g) for g in _char_ngrams(word, minn, maxn)], axis=0)
    return (vectors / np.sqrt(dim)).astype(np.float32)


def _read_vec(path: Path, vocab: Vocab) -> tuple[np.ndarray, np.ndarray]:
    """FastText .vec text file -> (vectors, found mask) for the vocabulary (only its words are kept in memory)."""
    found = np.zeros(len(vocab), dtype=bool)
    with open(path, encoding="utf-8", errors="replace") as f:
        header = f.readline().split()
        if len(header) != 2 or not all(h.isdigit() for h in header):
            raise ValueError(f"{path}: not a FastText .vec file (first line must be '<n_words> <dim>')")
        dim = int(header[1])
        vectors = np.zeros((len(vocab), dim), dtype=np.float32)
        for line_no, line in enumerate(f, start=2):
            word, _, rest = line.rstrip("\n").partition(" ")
            i = vocab._index.get(normalize_word(word))
            if i is None or found[i]:  # first (most frequent) spelling wins, e.g. "The" vs "the"
                continue
            values = rest.split()
            if len(values) != dim:
                raise ValueError(f"{path}:{line_no}: {len(values)} values for {word!r}, expected {dim}")
            vectors[i], found[i] = np.asarray(values, dtype=np.float32), True
    return vectors, found


class FastTextBin:
    """A FastText `.bin` model read without the fasttext package: its dictionary plus a memory map of the input
    matrix, enough for `word_vector` (word row + subword rows, averaged) for in- and out-of-vocabulary words."""

    MAGIC, VERSION = 793712314, 12

    def __init__(self, path):
        self.path = Path(path)
        with open(self.path, "rb") as f:  # a memory map: real models are GBs, only the dictionary is parsed
            data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        magic, version = struct.unpack_from("<ii", data, 0)
        if magic != self.MAGIC or version > self.VERSION:
            raise ValueError(f"{path}: not a FastText .bin model (magic {magic}, version {version})")
        (self.dim, _ws, _epoch, _min_count, _neg, _word_ngrams, _loss, _model, self.bucket, self.minn,
         self.maxn, _lr_update, _t) = struct.unpack_from("<12id", data, 8)
        size, self.nwords, _nlabels, _ntokens, prune_size = struct.unpack_from("<iiiqq", data, 64)  # 28 bytes
        if prune_size > 0:
            raise ValueError(f"{path}: pruned (quantised) FastText models are not supported")
        self.words: dict[str, int] = {}
        pos = 92
        for i in range(size):  # entries: NUL-terminated word, int64 count, int8 type (0 = word, 1 = label)
            end = data.find(b"\0", pos)
            if end < 0:
                raise ValueError(f"{path}: truncated FastText dictionary")
            if data[end + 9] == 0:
                self.words.setdefault(data[pos:end].decode("utf-8", errors="replace"), i)
            pos = end + 10
        if data[pos]:
            raise ValueError(f"{path}: quantised FastText models (.ftz) are not supported")
        rows, cols = struct.unpack_from("<qq", data, pos + 1)
        if cols != self.dim or pos + 17 + rows * cols * 4 > len(data):
            raise ValueError(f"{path}: input matrix ({rows} x {cols}) does not fit the model (dim {self.dim})")
        self.matrix = np.memmap(self.path, dtype="<f4", mode="r", offset=pos + 17, shape=(rows, cols))

    def word_vector(self, word: str) -> np.ndarray:
        rows = [self.words[word]] if word in self.words else []
        if self.maxn > 0:
            rows += [self.nwords + _fnv1a(g) % self.bucket for g in _char_ngrams(word, self.minn, self.maxn)]
        if not rows:
            return np.zeros(self.dim, dtype=np.float32)
        return np.asarray(self.matrix[sorted(rows)], dtype=np.float32).mean(axis=0)


def load_word_vectors(vocab: Vocab, path=None, dim: int = WORD_DIM) -> np.ndarray:
    """(len(vocab), dim) float32 initial word embedding.

    path None: the offline hashed default. `.vec`: FastText text vectors; words not in the file get the hashed
    default (scaled to the file's vector norm). `.bin`: a FastText model, which also covers unknown words through
    its subwords. PAD is always the zero vector.
    """
    if path is None:
        return hashed_word_vectors(vocab, dim)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"word vector file {path} not found")
    if path.suffix == ".bin":
        model = FastTextBin(path)
        vectors = np.stack([model.word_vector(w) for w in vocab.words])
    elif path.suffix == ".vec":
        vectors, found = _read_vec(path, vocab)
        fallback = hashed_word_vectors(vocab, vectors.shape[1])
        if found.any():  # match the file's typical vector length
            scale = np.linalg.norm(vectors[found], axis=1).mean() / np.linalg.norm(fallback[1:], axis=1).mean()
            fallback *= scale
        vectors[~found] = fallback[~found]
    else:
        raise ValueError(f"{path}: word vectors must be a FastText .vec or .bin file")
    vectors[PAD] = 0.0
    return vectors.astype(np.float32)


def with_generic_unknown(vectors: np.ndarray) -> np.ndarray:
    """UNK as the mean of the real words' vectors: an unknown word then reads as "some word" to the model rather
    than as the arbitrary spelling "<unk>" (what the hashed default gives it)."""
    vectors = vectors.copy()
    if len(vectors) > len(SPECIAL_TOKENS):
        vectors[UNK] = vectors[len(SPECIAL_TOKENS):].mean(axis=0)
    return vectors
