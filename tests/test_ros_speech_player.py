"""The speech player: every sample of `speech_audio` comes out at its stamp's ROS time.

The node runs here for real (wav output, simulated ROS time published on /clock by a peer node, real espeak-ng
speech); what it wrote is compared with the speech resampled by soxr and placed at `stamp - start` of the WAV's
sidecar. The timeline core and the device's time mapping are checked directly too.
"""
import json
import os
import time
import wave

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
soxr = pytest.importorskip("soxr")

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from ha2g_interfaces.msg import SpeechAudio  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from rosgraph_msgs.msg import Clock  # noqa: E402

from ha2g_ros.audio_messages import AudioMessageError  # noqa: E402
from ha2g_ros.speech_player import (Sound, SpeechPlayer, SpeechPlayerError, SpeechTimeline,  # noqa: E402
                                    TimelineFull, WavRecorder, heard_index, render, speech_samples)
from ha2g_ros.trajectory import to_time  # noqa: E402
from ros_harness import interrupt_when  # noqa: E402

PLAYER = "ha2g_ros.speech_player"  # the node's module, as `ros2 run` starts it
T0 = 1000.0  # simulated ROS time when the player starts: far from the wall clock, so sim time must be honoured
SPEECH_RATE = 16_000
# Sample comparison with the reference: 16-bit PCM in the WAV (3e-5) plus the resampler's edge ringing that the
# player keeps and a one-piece reference cuts (< 1e-5 on this speech); a sample off in time differs by > 0.05.
TOLERANCE = 2e-3
RINGING_S = 0.01  # the resampler's filter rings this long around a sound: silence is checked outside it


@pytest.fixture(scope="module")
def voice(speech):
    """Two seconds of real speech at 16 kHz (espeak-ng) from just before its first word, faded out over its last
    20 ms: a sound that starts and ends quietly, as an utterance does, so a reference resampled in one piece has no
    edge of its own to differ at."""
    audio = speech[0]
    onset = int(np.argmax(np.abs(audio) > 0.05)) - SPEECH_RATE // 20
    voice = audio[onset:onset + 2 * SPEECH_RATE].astype(np.float32)
    fade = SPEECH_RATE // 50
    voice[-fade:] *= np.cos(np.linspace(0, np.pi / 2, fade)) ** 2
    return voice


def resampled(audio, rate, out_rate):
    return audio if rate == out_rate else soxr.resample(audio, rate, out_rate)


def speech_message(samples, rate, stamp_s, channels=1, utterance_id=""):
    msg = SpeechAudio(sample_rate=rate, channels=channels, utterance_id=utterance_id)
    msg.header.stamp = to_time(stamp_s)
    msg.samples = np.asarray(samples, np.float32).reshape(-1)
    return msg


class Player:
    """The speech player (wav output, use_sim_time) and a peer node publishing /clock and speech, in one executor."""

    STEP = 0.05  # s of simulated time per clock tick

    def __init__(self, context, wav, **params):
        overrides = {"output": "wav", "wav_file": str(wav), "use_sim_time": True, **params}
        self.wav = wav
        self.node = SpeechPlayer(context=context,
                                 parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()])
        self.peer = rclpy.create_node("speaker", context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.executor.add_node(self.peer)
        self.clock_pub = self.peer.create_publisher(Clock, "/clock", 10)
        self.speech_pub = self.peer.create_publisher(SpeechAudio, "speech_audio",
                                                     QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE))
        self.diagnostics = []
        diagnostics_sub = self.peer.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, 10)
        deadline = time.monotonic() + 20
        while not (self.clock_pub.get_subscription_count() and self.speech_pub.get_subscription_count()
                   and diagnostics_sub.get_publisher_count()):
            assert time.monotonic() < deadline, "discovery did not match the speech player's topics within 20 s"
            self.executor.spin_once(timeout_sec=0.05)
        self.t = T0
        self.tick(0.0)

    def tick(self, dt):
        """Advance simulated time by `dt` and let the player handle what became due."""
        self.t = round(self.t + dt, 9)
        self.clock_pub.publish(Clock(clock=to_time(self.t)))
        deadline = time.monotonic() + 5
        while self.node.get_clock().now().nanoseconds < round(self.t * 1e9) and time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.01)
        for _ in range(4):  # the timer now due
            self.executor.spin_once(timeout_sec=0.002)

    def advance(self, seconds):
        for _ in range(int(round(seconds / self.STEP))):
            self.tick(self.STEP)

    def publish(self, msg):
        """Publish one speech message and wait until the player has taken it."""
        taken = self.node.stats["messages"] + 1
        self.speech_pub.publish(msg)
        deadline = time.monotonic() + 5
        while self.node.stats["messages"] < taken:
            assert time.monotonic() < deadline, "the speech player did not receive the message within 5 s"
            self.executor.spin_once(timeout_sec=0.01)

    def levels(self):
        return [s.level for m in self.diagnostics for s in m.status]

    def close(self):
        """Stop the player; (what it wrote as float (n, channels), its sidecar JSON)."""
        self.executor.shutdown()
        self.node.destroy_node()
        self.peer.destroy_node()
        return read_wav(self.wav), json.loads(self.wav.with_name(self.wav.name + ".json").read_text())


def read_wav(path):
    with wave.open(str(path), "rb") as f:
        pcm = np.frombuffer(f.readframes(f.getnframes()), "<i2").reshape(-1, f.getnchannels())
    return pcm.astype(np.float32) / 32767.0


def at_stamp(info, stamp_s):
    """Index in the WAV of the sample heard at ROS time `stamp_s`."""
    return round(stamp_s * info["sample_rate"]) - info["start_sample_index"]


def lag_of(played, reference):
    """Where `reference` sits in `played` by cross-correlation, in samples."""
    from scipy.signal import correlate

    return int(np.argmax(correlate(played, reference, mode="valid", method="fft")))


# --- the node, end to end ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("rate, out_rate", [(16_000, 48_000), (48_000, 48_000), (16_000, 44_100)])
def test_future_speech_lands_at_its_stamp(rclpy_context, tmp_path, voice, rate, out_rate):
    """A whole utterance handed over ahead of time starts exactly at its stamp, resampled to the output rate."""
    source = resampled(voice, SPEECH_RATE, rate)
    player = Player(rclpy_context, tmp_path / "out.wav", output_rate=out_rate)
    stamp = T0 + 0.3137  # not on any sample grid of the source
    player.publish(speech_message(source, rate, stamp, utterance_id="goal-1"))
    player.advance(2.5)
    wav, info = player.close()

    assert info["start_s"] == pytest.approx(T0) and info["clock"] == "sim"
    assert (info["sample_rate"], info["channels"], info["samples"]) == (out_rate, 1, len(wav))
    assert (info["played_messages"], info["late_messages"], info["refused_messages"]) == (1, 0, 0)
    reference = resampled(source, rate, out_rate)
    where = at_stamp(info, stamp)
    assert abs(lag_of(wav[:, 0], reference) - where) <= 0.001 * out_rate  # the brief's 1 ms; in fact 0 samples
    assert np.abs(wav[where:where + len(reference), 0] - reference).max() < TOLERANCE
    margin = round(RINGING_S * out_rate)
    assert np.abs(wav[:where - margin]).max() == 0 and np.abs(wav[where + len(reference) + margin:]).max() == 0
    assert player.levels() and set(player.levels()) == {DiagnosticStatus.OK}


def test_relayed_voice_chunks_play_contiguously(rclpy_context, tmp_path, voice):
    """Live voice in 100 ms chunks, each stamped where the previous one ends: one seamless stream comes out, the
    same as the whole voice resampled in one piece (no gap, overlap or click at a chunk boundary)."""
    player = Player(rclpy_context, tmp_path / "out.wav")
    chunk, first_stamp = SPEECH_RATE // 10, T0 + 0.5
    for k, start in enumerate(range(0, len(voice), chunk)):
        player.publish(speech_message(voice[start:start + chunk], SPEECH_RATE, first_stamp + start / SPEECH_RATE))
        player.advance(0.1)  # chunk k arrives 0.5 s before it plays, as a relay with a playback delay sends it
    player.advance(1.0)
    wav, info = player.close()

    assert info["played_messages"] == len(voice) // chunk and info["late_messages"] == 0
    reference = resampled(voice, SPEECH_RATE, 48_000)
    where = at_stamp(info, first_stamp)
    assert np.abs(wav[where:where + len(reference), 0] - reference).max() < TOLERANCE


def test_late_speech_loses_exactly_its_past_part(rclpy_context, tmp_path, voice):
    player = Player(rclpy_context, tmp_path / "out.wav")
    player.advance(1.0)
    stamp = player.t - 0.3  # 0.3 s of it should already have been heard
    player.publish(speech_message(voice, SPEECH_RATE, stamp))
    player.advance(2.5)
    wav, info = player.close()

    assert (info["late_messages"], info["late_samples"], info["played_messages"]) == (1, round(0.3 * 48_000), 1)
    reference = resampled(voice, SPEECH_RATE, 48_000)
    now = at_stamp(info, stamp + 0.3)
    late = round(0.3 * 48_000)
    assert np.abs(wav[:now]).max() == 0  # nothing of it before the moment it arrived
    assert np.abs(wav[now:now + len(reference) - late, 0] - reference[late:]).max() < TOLERANCE
    assert DiagnosticStatus.WARN in player.levels()
    warning = next(s for m in player.diagnostics for s in m.status if s.level == DiagnosticStatus.WARN)
    assert "too late" in warning.message


@pytest.mark.parametrize("in_channels, out_channels", [(2, 1), (1, 2)])
def test_channels_are_mixed_to_the_output(rclpy_context, tmp_path, voice, in_channels, out_channels):
    """Stereo in, mono out: the channels' mean. Mono in, stereo out: the same voice on both."""
    half = len(voice) // 2
    source = np.stack([voice[:half], 0.5 * voice[half:2 * half]], axis=1) if in_channels == 2 else voice[:half, None]
    player = Player(rclpy_context, tmp_path / "out.wav", output_channels=out_channels)
    stamp = T0 + 0.2
    player.publish(speech_message(source, SPEECH_RATE, stamp, channels=in_channels))
    player.advance(1.5)
    wav, info = player.close()

    assert wav.shape[1] == info["channels"] == out_channels
    mono = resampled(source.mean(axis=1), SPEECH_RATE, 48_000)
    where = at_stamp(info, stamp)
    for channel in range(out_channels):
        assert np.abs(wav[where:where + len(mono), channel] - mono).max() < TOLERANCE


def test_bad_messages_are_refused_and_the_next_good_one_plays(rclpy_context, tmp_path, voice):
    player = Player(rclpy_context, tmp_path / "out.wav")
    good = voice[:SPEECH_RATE]
    nan, inf, loud = good.copy(), good.copy(), good.copy()
    nan[100], inf[200], loud[300] = np.nan, np.inf, 2.0
    bad = [speech_message(nan, SPEECH_RATE, T0 + 0.3), speech_message(inf, SPEECH_RATE, T0 + 0.3),
           speech_message(loud, SPEECH_RATE, T0 + 0.3), speech_message(good, 0, T0 + 0.3),
           speech_message(good, 10_000_000, T0 + 0.3), speech_message(good, SPEECH_RATE, T0 + 0.3, channels=0),
           speech_message(good[:-1], SPEECH_RATE, T0 + 0.3, channels=2), speech_message([], SPEECH_RATE, T0 + 0.3),
           speech_message(good, SPEECH_RATE, T0 + 3600.0)]  # stamped an hour ahead: another clock
    for msg in bad:
        player.publish(msg)
    stamp = T0 + 1.5
    player.publish(speech_message(good, SPEECH_RATE, stamp))
    player.advance(3.0)
    wav, info = player.close()

    assert (info["refused_messages"], info["played_messages"], info["messages"]) == (len(bad), 1, len(bad) + 1)
    reference = resampled(good, SPEECH_RATE, 48_000)
    where = at_stamp(info, stamp)
    assert np.abs(wav[:where - round(RINGING_S * 48_000)]).max() == 0  # nothing of the refused ones
    assert np.abs(wav[where:where + len(reference), 0] - reference).max() < TOLERANCE
    warning = next(s for m in player.diagnostics for s in m.status if s.level == DiagnosticStatus.WARN)
    assert "refused" in warning.message


def test_an_empty_message_stops_its_utterance(rclpy_context, tmp_path, voice):
    """A canceled speak goal: the gesture node sends an empty message with the utterance's id, stamped where it is
    cut. That utterance falls silent there; other speech (relayed voice) plays on."""
    player = Player(rclpy_context, tmp_path / "out.wav")
    start, cut, relayed = T0 + 0.3, T0 + 0.8, T0 + 1.6
    player.publish(speech_message(voice, SPEECH_RATE, start, utterance_id="goal-1"))
    player.publish(speech_message(voice[:SPEECH_RATE // 2], SPEECH_RATE, relayed))
    player.advance(0.3)
    player.publish(speech_message([], SPEECH_RATE, cut, utterance_id="goal-1"))
    player.advance(2.0)
    wav, info = player.close()

    assert (info["stopped_utterances"], info["refused_messages"], info["played_messages"]) == (1, 0, 2)
    reference = resampled(voice, SPEECH_RATE, 48_000)
    begin, end, other = at_stamp(info, start), at_stamp(info, cut), at_stamp(info, relayed)
    assert np.abs(wav[begin:end, 0] - reference[:end - begin]).max() < TOLERANCE  # played up to the cut
    fade, ringing = round(0.005 * 48_000), round(RINGING_S * 48_000)
    assert np.abs(wav[end + fade:other - ringing]).max() == 0  # silent from the cut (and its fade) on
    second = resampled(voice[:SPEECH_RATE // 2], SPEECH_RATE, 48_000)
    assert np.abs(wav[other:other + len(second), 0] - second).max() < TOLERANCE


def test_ctrl_c_stops_the_command_cleanly_and_leaves_the_wav(tmp_path):
    wav = tmp_path / "out.wav"
    info_path = wav.with_name(wav.name + ".json")
    def written(_output):
        return info_path.exists() and json.loads(info_path.read_text())["samples"] > 0

    code, output = interrupt_when(PLAYER, written, "-p", "output:=wav", "-p", f"wav_file:={wav}")
    assert code == 0 and "Traceback" not in output, output
    info = json.loads(info_path.read_text())
    assert info["clock"] == "ros" and info["samples"] == len(read_wav(wav)) > 0


def test_sounddevice_output_runs_on_alsas_null_device(tmp_path):
    """The PortAudio stream and its callback, on ALSA's null device (an ALSA configuration of the test's own, so no
    sound card is needed; it takes samples as fast as they come, so only that it runs is checked, not timing)."""
    sounddevice = pytest.importorskip("sounddevice")
    if "ALSA" not in [api["name"] for api in sounddevice.query_hostapis()]:
        pytest.skip("PortAudio has no ALSA host API here: its null device is not available")
    (tmp_path / ".asoundrc").write_text('pcm.!default { type plug slave.pcm "discard" }\npcm.discard { type null }\n')
    env = {**os.environ, "HOME": str(tmp_path)}
    code, output = interrupt_when(PLAYER, lambda output: "playing /speech_audio on default" in output, env=env)
    assert code == 0 and "Traceback" not in output, output


def test_without_a_sound_card_the_error_names_the_wav_output(rclpy_context):
    sounddevice = pytest.importorskip("sounddevice")
    if any(d["max_output_channels"] > 0 for d in sounddevice.query_devices()):
        pytest.skip("this machine has an audio output device: the no-sound-card error cannot happen here")
    with pytest.raises(SpeechPlayerError, match="output:=wav"):
        SpeechPlayer(context=rclpy_context)


def test_sound_card_plays_the_speech(rclpy_context, voice):
    """The sounddevice output takes the speech from the timeline as the device asks for it."""
    sounddevice = pytest.importorskip("sounddevice")
    if not any(d["max_output_channels"] > 0 for d in sounddevice.query_devices()):
        pytest.skip("no audio output device (sounddevice lists none): the wav output (output:=wav) is tested instead")
    node = SpeechPlayer(context=rclpy_context)
    executor = SingleThreadedExecutor(context=rclpy_context)
    executor.add_node(node)
    try:
        stamp = node.get_clock().now().nanoseconds * 1e-9 + 0.5
        node.on_speech(speech_message(voice[:SPEECH_RATE // 2], SPEECH_RATE, stamp))
        deadline = time.monotonic() + 5
        while node.timeline.buffered_samples() and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        assert node.stats["played_messages"] == 1 and node.timeline.buffered_samples() == 0
    finally:
        executor.shutdown()
        node.destroy_node()


# --- the core, directly ------------------------------------------------------------------------------------------

def constant(start, n, value, channels=1):
    return Sound(start, np.full((n, channels), value, np.float32), start, start + n)


def test_timeline_places_mixes_and_clips():
    timeline = SpeechTimeline(rate=1000, channels=1)
    assert timeline.add(constant(110, 20, 0.25), now=100) == (0, 100)
    assert timeline.add(constant(120, 20, 0.875), now=100) == (0, 100)
    out = np.concatenate([timeline.read(7) for _ in range(7)])[:, 0]  # odd pieces: placement is not per read
    assert np.all(out[:10] == 0) and np.all(out[10:20] == 0.25)
    assert np.all(out[20:30] == 1.0)  # 0.25 + 0.875, clipped
    assert np.all(out[30:40] == 0.875) and np.all(out[40:] == 0)
    assert timeline.cursor == 149 and timeline.buffered_samples() == 0  # played sounds are forgotten


def test_timeline_cuts_the_past_part_of_a_late_sound():
    timeline = SpeechTimeline(rate=1000, channels=1, cursor=0)
    timeline.read(50)
    ramp = Sound(20, np.arange(60, dtype=np.float32)[:, None] / 100, 20, 80)
    assert timeline.add(ramp, now=50) == (30, 50)  # samples 20..49 were due before the cursor
    assert np.array_equal(timeline.read(30)[:, 0], np.arange(30, 60, dtype=np.float32) / 100)
    assert timeline.add(constant(10, 20, 0.5), now=80) == (20, 80)  # all of it late: nothing placed
    assert timeline.buffered_samples() == 0


def test_device_reads_follow_the_dac_time():
    timeline = SpeechTimeline(rate=1000, channels=1)
    timeline.add(constant(1000, 100, 0.5), now=900)
    assert np.all(timeline.read_at(990, 10, tolerance=2) == 0)
    # jitter within the tolerance continues where the last buffer ended: the sound starts exactly at 1000
    first = timeline.read_at(1001, 10, tolerance=2)
    assert np.all(first == 0.5) and timeline.cursor == 1010 and timeline.resyncs == 0
    # the device asks for 1030: 1010..1029 are skipped, the stream is back in time
    assert np.all(timeline.read_at(1030, 10, tolerance=2) == 0.5) and timeline.resyncs == 1
    # behind the cursor: what was handed out already is not repeated (silence until the cursor)
    behind = timeline.read_at(1035, 10, tolerance=2)[:, 0]
    assert np.all(behind[:5] == 0) and np.all(behind[5:] == 0.5) and timeline.resyncs == 2
    # far behind (the ROS clock went back): the timeline starts anew there, the old speech is dropped
    assert np.all(timeline.read_at(100, 10, tolerance=2) == 0) and timeline.clock_jumps == 1
    assert timeline.cursor == 110 and timeline.buffered_samples() == 0


def test_timeline_stops_an_utterance_with_a_fade():
    timeline = SpeechTimeline(rate=1000, channels=1, cursor=0)
    timeline.add(Sound(10, np.ones((100, 1), np.float32), 10, 110, "a"), now=0)
    timeline.add(Sound(10, np.full((100, 1), 0.5, np.float32), 10, 110, "b"), now=0)
    assert timeline.stop("a", 50) == 60
    out = timeline.read(120)[:, 0]
    assert np.all(out[10:50] == 1.0)  # 1 + 0.5, clipped
    assert np.array_equal(out[50:55], np.minimum(0.5 + np.linspace(1, 0, 5, dtype=np.float32), 1))  # 5 ms fade
    assert np.all(out[55:110] == 0.5) and np.all(out[110:] == 0)  # the other utterance plays on
    assert timeline.stop("b", 0) == 0  # played already: nothing left to stop


def test_timeline_refuses_more_than_it_may_hold():
    timeline = SpeechTimeline(rate=1000, channels=1, max_buffered_s=1.0)
    timeline.add(constant(0, 800, 0.1), now=0)
    with pytest.raises(TimelineFull, match="at most 1 s"):
        timeline.add(constant(800, 300, 0.1), now=0)
    assert timeline.buffered_samples() == 800


def test_a_buffer_is_read_where_it_will_be_heard():
    # heard 50 ms after now by PortAudio's DAC time, 120 ms more through a Bluetooth speaker
    assert heard_index(1_000_000_000_000, 0.05, 0.12, 48_000) == round(1000.17 * 48_000)
    assert heard_index(1_000_000_000_000, 0.05, 0.0, 48_000) == round(1000.05 * 48_000)


def test_chunks_rendered_one_by_one_add_up_to_the_whole(voice):
    """Each message keeps its resampler ringing: by linearity the chunks sum to the voice resampled in one piece."""
    for rate, out_rate in [(16_000, 48_000), (48_000, 16_000)]:
        source = resampled(voice, SPEECH_RATE, rate)
        timeline = SpeechTimeline(out_rate, 1)
        stamp_ns, chunk = 10**12, rate // 10
        for start in range(0, len(source), chunk):
            timeline.add(render(source[start:start + chunk, None], rate, stamp_ns + start * 10**9 // rate,
                                out_rate, 1), now=stamp_ns * out_rate // 10**9)
        whole = resampled(source, rate, out_rate)
        assert np.abs(timeline.read(len(whole))[:, 0] - whole).max() < 1e-4


def test_bad_samples_are_named():
    cases = [(dict(samples=[0.1, np.nan]), "NaN/Inf"), (dict(sample_rate=0), "sample rate 0 Hz"),
             (dict(sample_rate=500_000), "outside"), (dict(channels=0), "channel count 0"),
             (dict(channels=2, samples=[0.1, 0.2, 0.3]), "do not split"), (dict(samples=[]), "empty"),
             (dict(samples=[0.5, -1.5]), "peak is 1.5")]
    for fields, message in cases:
        msg = SpeechAudio(sample_rate=16_000, channels=1, samples=[0.1, 0.2])
        for key, value in fields.items():
            setattr(msg, key, value)
        with pytest.raises(AudioMessageError, match=message):
            speech_samples(msg)


def test_a_killed_recorder_leaves_a_readable_wav(tmp_path):
    """Every write leaves a complete WAV on disk: what a killed process leaves is what it wrote."""
    recorder = WavRecorder(tmp_path / "out.wav", 16_000, 2)
    assert len(read_wav(recorder.path)) == 0
    audio = np.stack([np.linspace(-1, 1, 1000), np.linspace(1, -1, 1000)], axis=1).astype(np.float32)
    recorder.write(audio)
    recorder.write(audio[:10])
    written = read_wav(recorder.path)  # read before close(): the file as a killed process leaves it
    assert written.shape == (1010, 2) and np.abs(written[:1000] - audio).max() < 1e-4
    recorder.close()
