"""The pure parts of the ROS layer: audio messages, transcripts, voice activity, trajectory building and checks."""
import json

import numpy as np
import pytest

pytest.importorskip("std_msgs")
from ha2g_ros.audio_messages import (AUDIO_COMMON_TYPES, STD_TYPES, AudioMessageError, StreamResampler,  # noqa: E402
                                     from_samples, message_class, to_chunk)
from ha2g_ros.trajectory import Timeline, build_trajectory, check_limits, validate_trajectory  # noqa: E402
from ha2g_ros.transcript import TranscriptError, parse_transcript, spread_words, to_json  # noqa: E402
from ha2g_ros.voice_activity import EnergyVAD, VadConfig  # noqa: E402

RATE = 16_000


def tone(seconds, freq=220.0, amplitude=0.3, rate=RATE):
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize("type_name", STD_TYPES)
def test_std_audio_round_trip(type_name):
    samples = tone(0.1)
    chunk = to_chunk(from_samples(samples, type_name, RATE), RATE, 1)
    assert chunk.sample_rate == RATE and chunk.samples.dtype == np.float32
    np.testing.assert_allclose(chunk.samples, samples, atol=1 / 32767 + 1e-6)  # 16-bit quantisation at most


def test_stereo_is_mixed_to_mono():
    left, right = tone(0.05, 200), tone(0.05, 300)
    chunk = to_chunk(from_samples(np.stack([left, right], 1), "std_msgs/msg/Int16MultiArray", RATE), RATE, 2)
    np.testing.assert_allclose(chunk.samples, (left + right) / 2, atol=2e-4)


@pytest.mark.parametrize("type_name", AUDIO_COMMON_TYPES)
def test_audio_common_round_trip(type_name):
    pytest.importorskip("audio_common_msgs", reason="audio_common_msgs is optional and not installed here")
    try:
        message_class(type_name)
    except ValueError as error:
        pytest.skip(str(error))  # the other audio_common flavour: it lacks this message
    samples = tone(0.1)
    chunk = to_chunk(from_samples(samples, type_name, RATE), RATE, 1)
    np.testing.assert_allclose(chunk.samples, samples, atol=1 / 32767 + 1e-6)


def test_audio_common_is_imported_only_on_request():
    import sys

    message_class("std_msgs/msg/Int16MultiArray")
    assert "audio_common_msgs" not in sys.modules or "audio_common_msgs.msg" in sys.modules
    with pytest.raises(ValueError, match="unsupported audio message type"):
        message_class("sensor_msgs/msg/Image")


def test_malformed_audio_is_named():
    from std_msgs.msg import Float32MultiArray, Int16MultiArray, UInt8MultiArray

    with pytest.raises(AudioMessageError, match="odd number"):
        to_chunk(UInt8MultiArray(data=b"\x00\x01\x02"), RATE, 1)
    with pytest.raises(AudioMessageError, match="NaN"):
        to_chunk(Float32MultiArray(data=[0.1, float("nan")]), RATE, 1)
    with pytest.raises(AudioMessageError, match="empty"):
        to_chunk(Int16MultiArray(), RATE, 1)
    with pytest.raises(AudioMessageError, match="sample rate 100 Hz"):
        to_chunk(Int16MultiArray(data=[1, 2]), 100, 1)
    with pytest.raises(AudioMessageError, match="interleaved channels"):
        to_chunk(Int16MultiArray(data=[1, 2, 3]), RATE, 2)
    with pytest.raises(AudioMessageError, match=r"\[-1, 1\]"):
        to_chunk(Float32MultiArray(data=[0.5, 300.0]), RATE, 1)


@pytest.mark.parametrize("rate", [48_000, 44_100, 8_000])
def test_stream_resampler_is_seamless_across_chunks(rate):
    """A sine resampled in odd-sized chunks is still a clean sine at 16 kHz, with the right number of samples."""
    x = tone(1.0, freq=440.0, amplitude=0.5, rate=rate)
    resample = StreamResampler()
    out = np.concatenate([resample(x[i:i + 777], rate) for i in range(0, len(x), 777)])
    assert abs(len(out) - RATE) <= 1
    n = np.arange(2000, len(out))  # after the filter settles
    basis = np.stack([np.sin(2 * np.pi * 440 * n / RATE), np.cos(2 * np.pi * 440 * n / RATE)], 1)
    coef, *_ = np.linalg.lstsq(basis, out[2000:], rcond=None)
    assert np.hypot(*coef) == pytest.approx(0.5, rel=0.02)
    assert np.abs(basis @ coef - out[2000:]).max() < 0.01  # no clicks at chunk boundaries


def test_json_transcript_with_origin_and_clock():
    t = parse_transcript(to_json([("hello", 1.2, 1.48), ("world", 1.5, 1.9)], clock="ros", origin=100.0))
    assert t.clock == "ros"
    assert t.words == (("hello", 101.2, 101.48), ("world", 101.5, 101.9))


def test_plain_transcript_and_spreading():
    t = parse_transcript("  hello wonderful world ")
    assert t.clock == "untimed" and [w for w, _, _ in t.words] == ["hello", "wonderful", "world"]
    timed = spread_words([w for w, _, _ in t.words], 2.0, 4.0)
    assert timed[0][1] == 2.0 and timed[-1][2] == pytest.approx(4.0)
    assert all(a[2] == pytest.approx(b[1]) for a, b in zip(timed, timed[1:]))
    assert timed[1][2] - timed[1][1] > timed[0][2] - timed[0][1]  # longer word, more time


@pytest.mark.parametrize("text, message", [
    ("", "empty transcript"),
    ("{not json", "malformed"),
    ('{"words": []}', "empty"),
    ('{"text": "hi"}', '"words" list'),
    ('{"words": [{"word": "hi", "start": 1.0}]}', '"end" of word #0'),
    ('{"words": [{"word": "hi", "start": 2.0, "end": 1.0}]}', "ends"),
    ('{"words": [{"word": "", "start": 1.0, "end": 2.0}]}', "no text"),
    ('{"words": [{"word": "hi", "start": 1, "end": 2}], "clock": "wall"}', "clock"),
    ('{"words": [{"word": "hi", "start": NaN, "end": 2}]}', "finite"),
])
def test_malformed_transcripts_are_named(text, message):
    with pytest.raises(TranscriptError, match=message):
        parse_transcript(text)


def test_vad_detects_speech_pauses_and_silence():
    vad = EnergyVAD(VadConfig(threshold_db=-40.0, hangover_s=0.5))
    silence, speech, pause = np.zeros(RATE, np.float32), tone(1.0), np.zeros(RATE // 5, np.float32)
    assert not vad.update(silence)
    assert vad.update(speech[:8000])  # chunk sizes do not matter
    assert vad.update(speech[8000:])
    assert vad.segment_start == pytest.approx(1.0, abs=0.02)
    assert vad.update(pause)  # 0.2 s pause < hangover: still speaking
    assert vad.update(speech)
    assert not vad.update(silence)  # a full second of silence ends the segment
    assert vad.speaking_at(0.5) is False and vad.speaking_at(1.5) is True and vad.speaking_at(3.9) is False


def test_trajectory_message_passes_controller_checks():
    names = ["a", "b"]
    times = 100.0 + np.arange(6) / 15
    positions = np.stack([np.linspace(0, 0.2, 6), np.linspace(0, -0.1, 6)], 1)
    msg = build_trajectory(names, np.round(times * 1e9), positions, np.zeros_like(positions))
    assert validate_trajectory(msg, names, [-1, -1], [1, 1], [4.0, 4.0], now_s=99.0) == []
    assert msg.points[0].time_from_start.sec == 0 and msg.points[0].time_from_start.nanosec == 0
    assert list(msg.points[-1].velocities) == [0.0, 0.0]
    # what the controller and our limits would reject, each named
    problems = validate_trajectory(msg, names, [-1, -1], [0.1, 1], [0.5, 4.0], now_s=200.0)
    assert any("ends in the past" in p for p in problems)
    assert any(p.startswith("Position of joint a at point #5 is 0.2") for p in problems)
    assert any(p.startswith("Velocity of joint a between points #0 and #1") for p in problems)
    msg.points[2].time_from_start = msg.points[1].time_from_start
    msg.points[3].positions = [0.0]
    problems = validate_trajectory(msg, names)
    assert "Mismatch between joint_names size (2) and positions (1) at point #3" in problems
    assert any(p.startswith("Time between points #1 and #2 is not strictly increasing") for p in problems)
    assert validate_trajectory(msg, ["a", "c"])[0].startswith("Joint names")


def test_check_limits_is_exact_at_the_limit():
    times = np.arange(3) / 15
    q = np.array([[0.0], [0.1], [0.2]])
    assert check_limits(["j"], times, q, [-1], [0.2], [1.5]) == []
    assert check_limits(["j"], times, q, [-1], [0.2], [1.4])


def test_timeline_keeps_order_and_interpolates():
    timeline = Timeline()
    for i in range(5):
        timeline.append(10 + i / 15, np.full(2, float(i)))
    with pytest.raises(ValueError, match="not after"):
        timeline.append(10.0, np.zeros(2))
    np.testing.assert_allclose(timeline.at(10 + 1.5 / 15), [1.5, 1.5])
    times, positions = timeline.after(10 + 2.5 / 15)
    assert len(times) == 2 and positions[0, 0] == 3
    timeline.truncate_from(10 + 4 / 15)
    timeline.forget_before(10 + 2.5 / 15, keep=1)
    assert timeline.times == pytest.approx([10 + 2 / 15, 10 + 3 / 15])


def test_to_json_is_parseable_text():
    assert json.loads(to_json([("a", 0.0, 0.5)]))["clock"] == "stream"


def test_played_motion_follows_takeover_and_splines():
    from ha2g_ros.trajectory import PlayedMotion

    names = ["a"]
    t0 = 1_800_000_000.0  # a realistic ROS time: float seconds would blur nanoseconds here
    at = lambda seconds: 1_800_000_000 * 10**9 + np.round(np.asarray(seconds) * 1e9).astype(np.int64)  # noqa: E731
    # knots of the parabola p = t^2 (velocity 2t): the controller's cubic Hermite reproduces it exactly
    knots = np.arange(4) / 15
    first = build_trajectory(names, at(knots), (knots ** 2)[:, None], np.r_[2 * knots[:-1], 0.0][:, None])
    played = PlayedMotion(names, [0.0], start_s=t0 - 1.0)
    played.receive(first, t0 - 0.5)
    for t in np.linspace(0, knots[2], 7)[:-1]:  # the last segment ends at rest: not the parabola
        p, v, a = played.state(t0 + t)
        np.testing.assert_allclose([p[0], v[0], a[0]], [t ** 2, 2 * t, 2.0], atol=1e-6)
    # a second message arrives between the first's points and takes over: from the state the controller is in at
    # arrival to its first point, then its own points; after its last point the controller holds it
    arrival = t0 + 1.5 / 15
    entry = played.state(arrival)
    second = build_trajectory(names, at(np.arange(2, 5) / 15), np.array([[0.15], [0.1], [0.05]]), np.zeros((3, 1)))
    played.receive(second, arrival)
    np.testing.assert_allclose(played.state(arrival)[0], entry[0])
    np.testing.assert_allclose(played.state(arrival)[1], entry[1])
    np.testing.assert_allclose(played.state(t0 + 2 / 15)[0], [0.15])
    np.testing.assert_allclose(played.state(t0 + 10.0)[0], [0.05])
    with pytest.raises(ValueError, match="order of arrival"):
        played.receive(second, arrival - 1.0)
