"""Speak with gestures: whole utterances on the gesture node's `speak` action (ha2g_interfaces/SpeakWithGestures),
through a real rclpy action client, on simulated ROS time with the simulated controllers of tests/ros_harness.py.

What is checked is what a person would see and hear: the speech goes out on speech_audio stamped with the start
time, and the arms, as the controllers play them, move with it (their speed matches the generated motion placed at
that start, within one gesture frame), inside every limit; bad goals get a clear result and the node keeps going.
"""
import time

import numpy as np
import pytest
from action_msgs.msg import GoalStatus
from rclpy.action import ActionClient
from rclpy.parameter import Parameter
from rclpy.time import Time

from ha2g_interfaces.action import SpeakWithGestures
from ha2g_interfaces.msg import SpeechAudio
from ros_harness import RATE, Harness, played_problems

pytestmark = pytest.mark.ros
FRAME_DT = 1 / 15


def seconds(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def goal_of(audio, rate=RATE, channels=1, words=(), text="", start_s=None):
    goal = SpeakWithGestures.Goal(sample_rate=rate, channels=channels, text=text)
    goal.samples.frombytes(np.asarray(audio, np.float32).tobytes())
    goal.words = [w for w, _, _ in words]
    goal.word_start_s = [float(s) for _, s, _ in words]
    goal.word_end_s = [float(e) for _, _, e in words]
    if start_s is not None:
        goal.start_time = Time(seconds=start_s).to_msg()
    return goal


class Speaker:
    """The robot's speech pipeline: an action client on the speak action, and an ear on speech_audio."""

    def __init__(self, harness):
        self.h = harness
        self.client = ActionClient(harness.robot, SpeakWithGestures, "speak")
        self.heard = []
        harness.robot.create_subscription(SpeechAudio, "speech_audio", self.heard.append, 50)
        self.wait(lambda: self.client.server_is_ready(), "the speak action server")

    def wait(self, condition, what, timeout_s=120.0):
        """Let the nodes work, ROS time going on in ticks, until `condition()` (real-time timeout)."""
        deadline = time.monotonic() + timeout_s
        while not condition():
            assert time.monotonic() < deadline, f"waited {timeout_s} s for {what}"
            self.h.tick(self.h.STEP)

    def send(self, goal):
        """Send a goal; returns (goal handle, feedback list, result future) once it is accepted."""
        feedback = []
        sent = self.client.send_goal_async(goal, feedback_callback=lambda msg: feedback.append(msg.feedback))
        self.wait(sent.done, "the goal response")
        handle = sent.result()
        assert handle.accepted
        return handle, feedback, handle.get_result_async()

    def scheduled(self, feedback):
        self.wait(lambda: any(f.stage >= SpeakWithGestures.Feedback.SCHEDULED for f in feedback), "the gestures")
        return next(seconds(f.start_time) for f in feedback if f.stage >= SpeakWithGestures.Feedback.SCHEDULED)

    def finish(self, result_future, within_s):
        deadline = self.h.now() + within_s
        while not result_future.done() and self.h.now() < deadline:
            self.h.tick(self.h.STEP)
        self.wait(result_future.done, "the result", 30.0)
        return result_future.result().status, result_future.result().result


def played_speed(h, begin, end, rate=100.0):
    times = np.arange(begin, end, 1 / rate)
    positions = np.array([h.played_state(t) for t in times])
    return times, np.linalg.norm(np.gradient(positions, times, axis=0), axis=1)


@pytest.fixture
def harness(rclpy_context, checkpoint):
    h = Harness(rclpy_context, checkpoint)
    yield h
    h.close()


def test_an_utterance_plays_with_its_speech(harness, speech):
    """The speech is published stamped with the chosen start time, and the played arm motion is the generated
    motion placed at that start: the lag of its speed profile is within one gesture frame. Every limit holds."""
    from ha2g_ros.retargeting import Retargeter, load_profile
    from ha2g_ros.speech_sync import lag_s
    from ha2g_ros.trajectory import blend
    from ha2g_ros.utterance import gesture_weights

    h, (audio, words, _, _) = harness, speech
    h.gesture.engine.reconfigure(style_per_utterance=False)  # one style: the motion is regenerated below
    speaker = Speaker(h)
    requested = h.now()
    handle, feedback, result_future = speaker.send(goal_of(audio, words=words))
    start = speaker.scheduled(feedback)
    assert start >= requested + h.gesture.get_parameter("start_margin_s").value - 1e-6
    status, result = speaker.finish(result_future, within_s=len(audio) / RATE + 5)
    assert status == GoalStatus.STATUS_SUCCEEDED, result.message
    assert seconds(result.start_time) == pytest.approx(start, abs=1e-6)
    assert result.duration_s == pytest.approx(len(audio) / RATE)
    assert result.frames == round(len(audio) / RATE * 15)
    assert [f.stage for f in feedback][-1] == SpeakWithGestures.Feedback.PLAYING
    speech_out, = [m for m in speaker.heard if m.utterance_id]
    assert seconds(speech_out.header.stamp) == pytest.approx(start, abs=1e-6)
    assert np.array_equal(np.frombuffer(speech_out.samples, np.float32), audio.astype(np.float32))

    # the generated motion as it was meant to play: frame i at start + i / 15 (same model, same solver start)
    retargeter = Retargeter(load_profile("pepper"))
    retargeter.reset(h.gesture.rest)
    began = time.thread_time()
    directions = h.gesture.engine.generate_utterance(audio, words, fade_to_rest=True)
    meant = np.array([retargeter.solve(d, dt=FRAME_DT) for d in directions])
    # the node's CPU account has the worker's generation under `utterances` (the same work, in CPU time)
    assert h.gesture.cpu.seconds["utterances"] > 0.5 * (time.thread_time() - began)
    weights = gesture_weights(audio, RATE, len(meant), *(h.gesture.get_parameter(name).value for name in (
        "vad_threshold_db", "vad_hangover_s", "fade_in_s", "fade_out_s")))
    meant = np.array([blend(h.gesture.rest, q, w) for q, w in zip(meant, weights)])
    meant_t = start + np.arange(len(meant)) * FRAME_DT
    played_t, played = played_speed(h, start - 1.0, meant_t[-1] + 1.0)
    lag, correlation = lag_s(meant_t, np.linalg.norm(np.gradient(meant, meant_t, axis=0), axis=1),
                             played_t, played, max_lag_s=0.5)
    assert abs(lag) <= FRAME_DT, f"the arms play {lag * 1e3:.0f} ms after the speech's gestures"
    assert correlation > 0.6
    # in the 3 s pause between the paragraphs the robot comes to rest, as it does with live speech
    starts, ends = np.array([s for _, s, _ in words]), np.array([e for _, _, e in words])
    gap = int(np.argmax(starts[1:] - ends[:-1]))  # 3 s: hangover 0.6 + fade-out 1.0, rest, fade-in 0.5
    assert np.abs(h.played_state(start + ends[gap] + 1.9) - h.gesture.rest).max() < 1e-3
    for group in h.groups:
        assert played_problems(h, group, requested, h.now()) == []
    # planned and sent a little at a time, as live speech is: no tick plans the whole utterance (on a real clock,
    # planning 12 s of knots in one tick would send the message after its commit lead)
    ahead = h.gesture.commit_lead + h.gesture.get_parameter("playback_delay_s").value
    spans = [seconds(m.points[-1].time_from_start) for m in h.received["left_arm"]]
    assert len(spans) > 10 and max(spans) < ahead + 1.5  # + the braking tail


def test_bad_goals_get_a_clear_result_and_the_node_keeps_speaking(harness, speech):
    h, audio = harness, speech[0]
    h.gesture.set_parameters([Parameter("max_utterance_s", value=10.0)])
    speaker = Speaker(h)
    short = audio[:3 * RATE]
    cases = {
        "NaN": goal_of(np.where(np.arange(len(short)) == 100, np.nan, short)),
        "no audio samples": goal_of([]),
        "sample rate 100 Hz": goal_of(short, rate=100),
        "do not split into 2": goal_of(short[:-1], channels=2),
        "scaled to [-1, 1]": goal_of(short * 30000),
        "outside the audio": goal_of(short, words=[("hello", 0.2, 0.5), ("late", 4.0, 4.5)]),
        "differ in length": goal_of(short, words=[("a", 0.0, 0.1), ("b", 0.1, 0.2)]),
        "in the past": goal_of(short, start_s=h.now() - 10.0),
        "max_utterance_s": goal_of(audio),  # 12 s
    }
    cases["differ in length"].word_start_s = [0.0]
    for expected, goal in cases.items():
        _, _, result_future = speaker.send(goal)
        status, result = speaker.finish(result_future, within_s=1.0)
        assert status == GoalStatus.STATUS_ABORTED, expected
        assert expected in result.message, (expected, result.message)
    assert not [m for m in speaker.heard if m.utterance_id]  # nothing refused was voiced
    _, feedback, result_future = speaker.send(goal_of(short, text="hello and welcome"))
    status, result = speaker.finish(result_future, within_s=6.0)
    assert status == GoalStatus.STATUS_SUCCEEDED, result.message


def test_cancel_fades_to_rest_within_limits_and_stops_the_speech(harness, speech):
    h, (audio, words, _, _) = harness, speech
    speaker = Speaker(h)
    requested = h.now()
    handle, feedback, result_future = speaker.send(goal_of(audio, words=words))
    start = speaker.scheduled(feedback)
    h.spin(start - h.now() + 2.0)  # two seconds into the speech
    canceling = handle.cancel_goal_async()
    speaker.wait(canceling.done, "the cancel response")
    canceled_at = h.now()
    status, result = speaker.finish(result_future, within_s=2.0)
    assert status == GoalStatus.STATUS_CANCELED, result.message
    stop, = [m for m in speaker.heard if m.utterance_id and not len(m.samples)]
    lead = h.gesture.get_parameter("commit_lead_s").value
    assert canceled_at < seconds(stop.header.stamp) <= h.now() + lead
    h.spin(h.gesture.get_parameter("fade_out_s").value + 2.0)
    assert np.abs(h.played_state() - h.gesture.rest).max() < 1e-6
    assert h.now() < start + len(audio) / RATE  # at rest before the speech would have ended
    for group in h.groups:
        assert played_problems(h, group, requested, h.now()) == []


@pytest.mark.parametrize("policy", ["queue", "preempt"])
def test_a_second_utterance_queues_or_preempts(rclpy_context, checkpoint, speech, policy):
    h = Harness(rclpy_context, checkpoint, utterance_policy=policy)
    try:
        audio = speech[0]
        first, second = audio[:4 * RATE], audio[8 * RATE:]
        speaker = Speaker(h)
        _, feedback1, result1 = speaker.send(goal_of(first, text="hello and welcome to this little demonstration"))
        start1 = speaker.scheduled(feedback1)
        _, feedback2, result2 = speaker.send(goal_of(second, text="then I start again"))
        start2 = speaker.scheduled(feedback2)
        status1, outcome1 = speaker.finish(result1, within_s=6.0)
        status2, outcome2 = speaker.finish(result2, within_s=start2 - h.now() + len(second) / RATE + 2.0)
        assert status2 == GoalStatus.STATUS_SUCCEEDED, outcome2.message
        if policy == "queue":
            assert status1 == GoalStatus.STATUS_SUCCEEDED, outcome1.message
            assert start2 == pytest.approx(start1 + len(first) / RATE, abs=1e-6)  # gapless
        else:
            assert status1 == GoalStatus.STATUS_ABORTED and "preempted" in outcome1.message
            assert start2 < start1 + len(first) / RATE
            stop, = [m for m in speaker.heard if m.utterance_id and not len(m.samples)]
            assert seconds(stop.header.stamp) <= start2
        for group in h.groups:
            assert played_problems(h, group, start1 - 1.0, h.now()) == []
    finally:
        h.close()


@pytest.mark.parametrize("latency", [{}, {"hop_frames": 2, "lookahead_frames": 1, "playback_delay_s": 0.55}],
                         ids=["defaults", "low-lag setting of docs/speech.md"])
def test_live_voice_is_relayed_stamped_to_meet_its_gestures(rclpy_context, checkpoint, speech, latency):
    h, audio = Harness(rclpy_context, checkpoint, **latency), speech[0]
    try:
        relayed_voice_meets_its_gestures(h, audio)
    finally:
        h.close()


def relayed_voice_meets_its_gestures(h, audio):
    heard = []
    h.robot.create_subscription(SpeechAudio, "speech_audio", heard.append, 100)
    h.spin(0.2)  # discovery of the new subscription
    began = h.now()
    h.play(audio[:3 * RATE])
    assert len(heard) >= 25
    delay = h.gesture.get_parameter("playback_delay_s").value
    stamps = np.array([seconds(m.header.stamp) for m in heard])
    durations = np.array([len(m.samples) / m.sample_rate for m in heard])
    assert all(not m.utterance_id for m in heard)
    assert stamps[0] == pytest.approx(began + delay, abs=0.11)  # the first chunk arrived 100 ms after it began
    assert np.allclose(stamps[1:], stamps[:-1] + durations[:-1], atol=2e-3)  # contiguous, as spoken
    relayed = np.concatenate([np.frombuffer(m.samples, np.float32) for m in heard])
    assert np.allclose(relayed, audio[:len(relayed)], atol=1e-4)
    assert h.gesture.stats["late_frames"] == 0 and all(h.received.values())  # its gestures came in time


def test_stereo_speech_at_48_khz_is_spoken_and_republished_as_it_came(harness, speech):
    """Any rate, interleaved channels: the gestures follow the mono mix, speech_audio carries the original."""
    from scipy.signal import resample_poly

    h, audio = harness, speech[0][:5 * RATE]
    left = resample_poly(audio, 3, 1).astype(np.float32)  # 48 kHz
    stereo = np.stack([left, 0.5 * left], axis=1).reshape(-1)
    speaker = Speaker(h)
    _, feedback, result_future = speaker.send(goal_of(stereo, rate=48_000, channels=2, text="hello and welcome"))
    status, result = speaker.finish(result_future, within_s=10.0)
    assert status == GoalStatus.STATUS_SUCCEEDED, result.message
    assert result.duration_s == pytest.approx(5.0) and result.frames == 75
    speech_out, = [m for m in speaker.heard if m.utterance_id]
    assert (speech_out.sample_rate, speech_out.channels) == (48_000, 2)
    assert np.array_equal(np.frombuffer(speech_out.samples, np.float32), stereo)
    assert sum(len(m) for m in h.received.values()) > 0


def test_a_clock_jump_back_ends_the_utterance_and_the_node_speaks_again(harness, speech):
    """A restarted simulation: the utterance's start and end lie on the old time line; it ends at once (aborted,
    saying why) instead of holding the robot for as long as the clock went back."""
    h, (audio, words, _, _) = harness, speech
    speaker = Speaker(h)
    _, feedback, result_future = speaker.send(goal_of(audio, words=words))
    start = speaker.scheduled(feedback)
    h.spin(start - h.now() + 1.0)
    pose = h.played_state()
    h.t -= 900.0  # the simulation restarts its clock (and its controllers, holding the pose they had)
    h.set_pose(pose)
    status, result = speaker.finish(result_future, within_s=1.0)
    assert status == GoalStatus.STATUS_ABORTED and "clock jumped back" in result.message
    _, _, again = speaker.send(goal_of(audio[:3 * RATE], text="hello and welcome"))
    status, result = speaker.finish(again, within_s=6.0)
    assert status == GoalStatus.STATUS_SUCCEEDED, result.message


def test_voiced_times_are_exact_at_rates_where_20_ms_is_not_whole_samples():
    """At 11,025 Hz a voice-activity frame is 220 samples (19.95 ms), not 20 ms: speech that starts at 20 s must be
    found there, not 50 ms later."""
    from ha2g_ros.utterance import gesture_weights, voiced_span

    rate = 11_025
    t = np.arange(30 * rate) / rate
    audio = np.where((t >= 20.0) & (t < 25.0), 0.3 * np.sin(2 * np.pi * 220 * t), 0.0).astype(np.float32)
    begin, end = voiced_span(audio, rate, -40.0)
    assert begin == pytest.approx(20.0, abs=220 / rate) and end == pytest.approx(25.0, abs=220 / rate)
    weights = gesture_weights(audio, rate, 30 * 15, -40.0, hangover_s=0.5, fade_in_s=0.3, fade_out_s=0.3)
    assert weights[round(20.0 * 15)] == 1.0 and weights[round(19.6 * 15)] < 1.0  # full from the speech's start
    assert weights[round(25.45 * 15)] == 1.0 and weights[round(26.0 * 15)] < 1.0  # until the hangover ends
