"""Transcript messages (std_msgs/String) -> timed words. Pure functions, no node state.

Two forms are accepted on the `transcript` topic:

* plain text, e.g. from an ASR that reports only the words of the utterance it just heard: the node spreads them
  over the most recent stretch of speech (`spread_words`), since their timing is unknown;
* JSON with word timings, e.g. from a TTS that knows when it says each word:

      {"words": [{"word": "hello", "start": 1.20, "end": 1.48}, ...], "clock": "stream", "origin": 0.0}

  `clock` says what the times are relative to: "stream" (default) = seconds of the audio stream the gesture node
  receives (its first sample is 0), "ros" = seconds of ROS time (the node's clock). `origin` (default 0) is added to
  every time, so a TTS can state "the utterance started at ROS time T" and give word times relative to it.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

from ha2g_model.untrusted import short_repr as _short

CLOCKS = ("stream", "ros")
# Bounds on one message, checked before anything is parsed, so that a hostile or broken publisher costs at most a few
# milliseconds per message and a bounded amount of memory (the engine keeps the words until they are spoken).
MAX_WORDS = 10_000  # more than an hour of speech in one message is a bug upstream, not a transcript
MAX_TRANSCRIPT_CHARS = 1_000_000  # 10,000 timed words take ~500 kB of JSON; parsing 1 MB takes ~10 ms
MAX_WORD_CHARS = 100  # longer is not a spoken word (and the vocabulary lookup would never match it)


class TranscriptError(ValueError):
    """A transcript that cannot be used; the text says what is wrong with it."""


@dataclass(frozen=True)
class Transcript:
    words: tuple[tuple[str, float, float], ...]  # (word, start_s, end_s) on `clock`; untimed: all zero
    clock: str  # "stream", "ros", or "untimed" (plain text)


def parse_transcript(text: str) -> Transcript:
    """Parse a transcript message's text (plain or JSON, see the module docstring). Anything unusable, however
    hostile (deep nesting, 5,000-digit numbers, megabytes of words), raises TranscriptError with a one-line reason."""
    if not isinstance(text, str):
        raise TranscriptError(f"a transcript is text, got {type(text).__name__}")
    if len(text) > MAX_TRANSCRIPT_CHARS:
        raise TranscriptError(f"transcript has {len(text):,} characters, more than the {MAX_TRANSCRIPT_CHARS:,} "
                              "accepted in one message")
    stripped = text.strip()
    if not stripped:
        raise TranscriptError("empty transcript")
    if stripped.startswith("{"):
        return _parse_json(stripped)
    tokens = stripped.split()
    _check_count(len(tokens))
    for i, token in enumerate(tokens):
        _check_word(token, i)
    return Transcript(tuple((token, 0.0, 0.0) for token in tokens), "untimed")


def _check_count(n_words: int) -> None:
    if n_words > MAX_WORDS:
        raise TranscriptError(f"transcript has {n_words} words, more than the {MAX_WORDS} accepted at once")


def _check_word(word: str, i: int) -> None:
    if len(word) > MAX_WORD_CHARS:
        raise TranscriptError(f"word #{i} has {len(word)} characters, more than the {MAX_WORD_CHARS} of a word")


def _number(value, what: str) -> float:
    # Integers arrive as floats (parse_int=float below): a 400-digit integer is inf here, not an OverflowError.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TranscriptError(f"{what} must be a finite number, got {_short(value)}")
    return float(value)


def _parse_json(text: str) -> Transcript:
    try:
        # Every number parsed as a float: huge integers become inf (refused by _number) instead of Python ints that
        # overflow float() or exceed the interpreter's 4,300-digit limit for int parsing.
        data = json.loads(text, parse_int=float)
    except json.JSONDecodeError as error:
        raise TranscriptError(f"transcript JSON is malformed: {error}") from None
    except RecursionError:
        raise TranscriptError("transcript JSON is nested too deeply") from None
    if not isinstance(data, dict) or not isinstance(data.get("words"), list):
        raise TranscriptError('transcript JSON must be an object with a "words" list')
    clock = data.get("clock", "stream")
    if not isinstance(clock, str) or clock not in CLOCKS:
        raise TranscriptError(f'transcript "clock" must be one of {CLOCKS}, got {_short(clock)}')
    origin = _number(data.get("origin", 0.0), '"origin"')
    if not data["words"]:
        raise TranscriptError('transcript JSON has an empty "words" list')
    _check_count(len(data["words"]))
    words = []
    for i, entry in enumerate(data["words"]):
        if not isinstance(entry, dict):
            raise TranscriptError(f"word #{i} must be an object with word/start/end, got {_short(entry)}")
        word = entry.get("word")
        if not isinstance(word, str) or not word.strip():
            raise TranscriptError(f'word #{i} has no text in "word": {_short(entry)}')
        word = word.strip()
        _check_word(word, i)
        start = _number(entry.get("start"), f'"start" of word #{i} ({word!r})')
        end = _number(entry.get("end"), f'"end" of word #{i} ({word!r})')
        if end < start:
            raise TranscriptError(f"word #{i} ({word!r}) ends ({end}) before it starts ({start})")
        start, end = origin + start, origin + end
        if not math.isfinite(end) or not math.isfinite(start):
            raise TranscriptError(f'word #{i} ({word!r}): "origin" + its times is not a finite number ({origin} + '
                                  f"[{start - origin}, {end - origin}])")
        words.append((word, start, end))
    words.sort(key=lambda w: w[1])
    return Transcript(tuple(words), clock)


def spread_words(words: list[str] | tuple[str, ...], start_s: float, end_s: float) -> list[tuple[str, float, float]]:
    """Spread untimed words over [start_s, end_s], each getting time in proportion to its length (+1 for the gap).

    Word length in letters is a fair proxy for spoken duration, better than equal shares for short function words.
    """
    if not words:
        return []
    if not end_s > start_s:
        raise ValueError(f"cannot spread words over an empty interval [{start_s}, {end_s}]")
    weights = [len(w) + 1 for w in words]
    scale = (end_s - start_s) / sum(weights)
    timed, t = [], start_s
    for word, weight in zip(words, weights):
        timed.append((word, t, t + weight * scale))
        t += weight * scale
    return timed


def to_json(words, clock: str = "stream", origin: float = 0.0) -> str:
    """Timed words -> the JSON transcript form (what a TTS or the file source publishes)."""
    if clock not in CLOCKS:
        raise ValueError(f"clock must be one of {CLOCKS}, got {clock!r}")
    return json.dumps({"words": [{"word": w, "start": round(s, 4), "end": round(e, 4)} for w, s, e in words],
                       "clock": clock, "origin": origin})
