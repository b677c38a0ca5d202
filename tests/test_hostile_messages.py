"""Hostile and random messages: the transcript parser and the audio conversion either return something valid or raise
their own error (TranscriptError, AudioMessageError) with a short message -- never another exception.

The fuzz tests use hypothesis with a fixed seed and a bounded number of examples (derandomize), so they take the same
few seconds on every run; the time a refusal takes is measured in benchmarks/hostile_inputs.py, not here.
"""
import json
import math
import re

import numpy as np
import pytest

pytest.importorskip("std_msgs")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from ha2g_ros.audio_messages import (MAX_CHANNELS, MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, AudioChunk,  # noqa: E402
                                     AudioMessageError, from_samples, to_chunk)
from ha2g_ros.transcript import (CLOCKS, MAX_TRANSCRIPT_CHARS, MAX_WORDS, Transcript, TranscriptError,  # noqa: E402
                                 parse_transcript, to_json)

FUZZ = settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
MAX_ERROR_CHARS = 300  # a refusal is one readable log line, whatever the message held


def _check_transcript(text) -> None:
    """parse_transcript(text) gives usable words or a short TranscriptError; anything else fails the test."""
    try:
        transcript = parse_transcript(text)
    except TranscriptError as error:
        assert len(str(error)) <= MAX_ERROR_CHARS and "\n" not in str(error), str(error)[:500]
        return
    assert isinstance(transcript, Transcript) and transcript.clock in CLOCKS + ("untimed",)
    assert 1 <= len(transcript.words) <= MAX_WORDS
    for word, start, end in transcript.words:
        assert isinstance(word, str) and word.strip() == word and word
        assert math.isfinite(start) and math.isfinite(end) and start <= end
    assert [w[1] for w in transcript.words] == sorted(w[1] for w in transcript.words)


def _timed(start: str, end: str = "2", origin: str = "0") -> str:
    return f'{{"words": [{{"word": "hi", "start": {start}, "end": {end}}}], "origin": {origin}}}'


@pytest.mark.parametrize("text, message", [
    ('{"words": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested"),
    ('{"words": [{"word": "hi", "start": ' + "[" * 5_000 + "]" * 5_000 + ', "end": 1}]}', "nested"),
    (_timed("1" + "0" * 400), "finite"),  # overflowed float conversion (OverflowError)
    (_timed("1" + "0" * 5_000), "finite"),  # beyond Python's int string limit (ValueError)
    (_timed("1e400"), "finite"),
    (_timed("1e308", "1e308", origin="1e308"), "finite"),  # each number finite, their sum is not
    (_timed("0", origin="-" + "9" * 400), "finite"),
    ("w " * (MAX_TRANSCRIPT_CHARS // 2 + 1), "characters"),  # refused before it is split
    ("w " * (MAX_WORDS + 1), f"{MAX_WORDS}"),
    (to_json([("w", i / 10, i / 10 + 0.05) for i in range(MAX_WORDS + 1)]), f"{MAX_WORDS}"),
    ('{"words": [' + ",".join(['{"word": "' + "x" * 10_000 + '", "start": 1, "end": 2}'] * 2) + "]}", "word #0"),
    (b'{"words": []}', "text"),
    (None, "text"),
])
def test_hostile_transcripts_are_transcript_errors(text, message):
    with pytest.raises(TranscriptError, match=message) as refused:
        parse_transcript(text)
    assert len(str(refused.value)) <= MAX_ERROR_CHARS


def test_transcript_at_the_limits_is_accepted():
    words = [("w", i / 10, i / 10 + 0.05) for i in range(MAX_WORDS)]
    assert len(parse_transcript(to_json(words)).words) == MAX_WORDS
    assert len(parse_transcript("w " * MAX_WORDS).words) == MAX_WORDS
    assert parse_transcript(_timed("1", "2", origin="1e300")).words[0][1] == 1e300


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**1000, 10**1000) | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20)
_times = st.one_of(st.floats(), st.integers(-10**500, 10**500), st.text(max_size=4), st.none(), st.booleans())
_word_entries = st.fixed_dictionaries({"word": st.one_of(st.text(max_size=12), st.integers()), "start": _times,
                                       "end": _times})
_transcripts = st.fixed_dictionaries(
    {"words": st.lists(_word_entries | _json_values, max_size=6)},
    optional={"clock": st.sampled_from(CLOCKS + ("wall", "")) | _json_values, "origin": _times})


@FUZZ
@given(st.one_of(st.text(max_size=300), _json_values.map(json.dumps), _transcripts.map(json.dumps)))
def test_fuzz_transcripts(text):
    _check_transcript(text)


_numbers = st.one_of(st.from_regex(r"-?[0-9]{1,20}(\.[0-9]*)?([eE]-?[0-9]{1,4})?", fullmatch=True),
                     st.builds(lambda sign, digits, n: sign + digits * n, st.sampled_from(["", "-"]),
                               st.sampled_from(["9", "10", "123"]), st.integers(100, 3_000)))


@FUZZ
@given(st.data())
def test_fuzz_corrupted_transcripts(data):
    """A valid transcript with one of its numbers replaced by a random (often huge) one, or random text spliced in."""
    words = [("hello", 0.5, 0.9), ("there", 1.0, 1.4), ("robot", 1.5, 2.0)]
    text = to_json(words, clock=data.draw(st.sampled_from(CLOCKS)), origin=data.draw(st.floats(-1e6, 1e6)))
    numbers = list(re.finditer(r"-?[0-9.]+(e[-+]?[0-9]+)?", text))
    if data.draw(st.booleans()):
        number = data.draw(st.sampled_from(numbers))
        at, cut, insert = number.start(), number.end(), data.draw(_numbers)
    else:
        at = data.draw(st.integers(0, len(text)))
        cut, insert = data.draw(st.integers(at, len(text))), data.draw(st.text(max_size=20))
    _check_transcript(text[:at] + insert + text[cut:])


# --- audio messages ---------------------------------------------------------------------------------------------

def _check_chunk(msg, sample_rate, channels) -> None:
    """to_chunk gives a valid mono chunk or a short AudioMessageError; anything else fails the test."""
    try:
        chunk = to_chunk(msg, sample_rate, channels)
    except AudioMessageError as error:
        assert len(str(error)) <= MAX_ERROR_CHARS and "\n" not in str(error), str(error)[:500]
        return
    assert isinstance(chunk, AudioChunk)
    assert isinstance(chunk.sample_rate, int) and MIN_SAMPLE_RATE <= chunk.sample_rate <= MAX_SAMPLE_RATE
    samples = chunk.samples
    assert isinstance(samples, np.ndarray) and samples.dtype == np.float32 and samples.ndim == 1 and samples.size
    assert np.isfinite(samples).all() and np.abs(samples).max() <= 1.0 + 1e-3


_rates = st.one_of(st.integers(-10**6, 10**7), st.sampled_from([16_000, 44_100, 48_000]), st.floats(),
                   st.sampled_from([None, "16000", True, 16_000.0, np.int64(16_000), 10**30]))
_channels = st.one_of(st.integers(-3, MAX_CHANNELS + 3), st.sampled_from([1, 2]), st.floats(),
                      st.sampled_from([None, "1", True, 2.0, np.int32(2)]))


@FUZZ
@given(st.data(), _rates, _channels)
def test_fuzz_audio_messages(data, sample_rate, channels):
    from std_msgs.msg import Float32MultiArray, Int16MultiArray, UInt8MultiArray

    kind = data.draw(st.sampled_from(["int16", "float32", "uint8"]))
    if kind == "int16":
        msg = Int16MultiArray(data=data.draw(st.lists(st.integers(-32768, 32767), max_size=64)))
    elif kind == "float32":
        msg = Float32MultiArray(data=data.draw(st.lists(st.floats(width=32), max_size=64)))
    else:
        msg = UInt8MultiArray(data=data.draw(st.binary(max_size=129)))
    _check_chunk(msg, sample_rate, channels)


@pytest.mark.parametrize("msg", [None, "audio", 3.5, b"\x00\x01", object(), [0.1, 0.2], np.zeros(4, np.float32)])
def test_what_is_not_an_audio_message_is_named(msg):
    with pytest.raises(AudioMessageError, match="not an audio message"):
        to_chunk(msg, 16_000, 1)


def test_audio_message_of_each_valid_format_still_converts():
    samples = np.linspace(-0.5, 0.5, 64, dtype=np.float32)
    for rate in (MIN_SAMPLE_RATE, 16_000, MAX_SAMPLE_RATE):
        chunk = to_chunk(from_samples(samples, "std_msgs/msg/Float32MultiArray", rate), np.int64(rate), 2)
        assert chunk.sample_rate == rate and type(chunk.sample_rate) is int and len(chunk.samples) == 32
