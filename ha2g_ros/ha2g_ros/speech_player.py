"""The speech player node: plays `speech_audio` (ha2g_interfaces/SpeechAudio) so that every sample is heard at the
ROS time its message's stamp says, which is the time the gestures made for it play (docs/speech.md, Speech player).

One core, `SpeechTimeline`, holds the speech on a sample grid of the ROS clock (output sample k is heard at ROS time
k / sample_rate): each message, resampled and channel-mixed to the output format (`render`), is placed at its stamp,
overlapping messages add up (clipped), and what arrives for a moment already played is cut and counted as late.
Two outputs read the timeline as time passes:
  sounddevice: a PortAudio stream; each buffer is read at the ROS time its first sample will be heard (PortAudio's
               DAC time of the buffer, plus latency_compensation_s for the amplifier or radio link after the DAC);
  wav:         a WAV file of what would play, sample 0 heard at the ROS time its sidecar JSON records, written as
               the ROS clock passes (so use_sim_time runs it at any speed).
"""
from __future__ import annotations

import json
import math
import os
import threading
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from ha2g_interfaces.msg import SpeechAudio
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.qos_overriding_options import QoSOverridingOptions

from ha2g_ros.audio_messages import (MAX_CHANNELS, MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, AudioMessageError, check_format,
                                     pcm_frames)

OUTPUTS = ("sounddevice", "wav")
TICK_S = 0.1  # ROS time between WAV writes (and diagnostics checks)
DIAGNOSTICS_PERIOD_S = 1.0
WAV_INFO_PERIOD_S = 1.0  # the sidecar JSON is rewritten this often, so a killed process leaves current counts
# A device buffer whose DAC time maps within this of where the last buffer ended continues seamlessly; beyond it the
# stream jumps to the right place (a click, but in time). Covers the jitter of host APIs' DAC time estimates.
RESYNC_TOLERANCE_S = 0.002
CLOCK_JUMP_BACK_S = 0.5  # the ROS clock going back more than this (a restarted simulation): start the timeline anew
MAX_AHEAD_S = 60.0  # speech stamped further ahead than this is a clock mismatch, not a plan
MAX_BUFFERED_S = 300.0  # speech held for the future, in total (300 s of 48 kHz mono float32 = 58 MB)
STOP_FADE_S = 0.005  # a stopped utterance fades out over this, from its stop stamp on
LATE_HINT_S = 10.0  # later than this is no transport delay: the stamp is probably on another clock or unset
RESAMPLER_PAD = 128  # zeros (at the lower of the two rates) resampled with each message on both sides
SPEECH_QUEUE = 50  # messages held for the node: 5 s of 100 ms chunks
LOG_THROTTLE_S = 5.0
# Counters whose growth since the last report makes /diagnostics say WARN, and what they count
DIAGNOSED = {"late_messages": "messages (partly) too late for their stamp", "refused_messages": "refused messages",
             "underflows": "output underflows", "resyncs": "output resyncs", "clock_jumps": "ROS clock jumps back"}


class SpeechPlayerError(RuntimeError):
    """The output cannot start; the text says why and what to do instead."""


class TimelineFull(ValueError):
    """Placing a sound would hold more future speech than the timeline keeps."""


# --- messages -> sounds on the output grid --------------------------------------------------------------------------

def speech_samples(msg: SpeechAudio) -> np.ndarray:
    """A SpeechAudio message's samples as float32 (frames, channels); AudioMessageError names what is wrong."""
    check_format(msg.sample_rate, msg.channels)
    if not len(msg.samples):
        raise AudioMessageError("empty speech message: no samples (an empty message stops an utterance only "
                                "when it names the utterance_id)")
    return pcm_frames(msg.samples, msg.channels)


def match_channels(frames: np.ndarray, channels: int) -> np.ndarray:
    """(n, c) -> (n, channels): kept when the counts agree, else mixed to mono (and copied to every channel)."""
    if frames.shape[1] == channels:
        return frames
    mono = frames.mean(axis=1, keepdims=True, dtype=np.float32)
    return np.repeat(mono, channels, axis=1) if channels > 1 else mono


def resampler_pad(rate: int, out_rate: int) -> int:
    """Input zeros resampled with a message on both sides, so the resampler's ringing before and after the message
    is kept: by linearity, consecutive messages then add up to their stream resampled in one piece (no clicks at
    chunk boundaries). Rounded to a whole resampling period where that is short, so the pad is a whole number of
    output samples and chunk after chunk keeps the same filter phase."""
    pad = math.ceil(RESAMPLER_PAD * max(1.0, rate / out_rate))
    period = rate // math.gcd(rate, out_rate)  # input samples per whole number of output samples
    return math.ceil(pad / period) * period if period <= 4 * pad else pad


@dataclass(frozen=True)
class Sound:
    """A message's audio on the output grid (sample index k = ROS time k / output rate)."""
    start: int  # index of audio[0]
    audio: np.ndarray  # (n, channels) float32: the message, with the resampler's ringing on either side
    first: int  # index of the message's first sample: its stamp
    end: int  # index after its last sample
    utterance: str = ""  # the message's utterance_id: what a stop message names

    @property
    def stop(self) -> int:
        return self.start + len(self.audio)


def span(stamp_ns: int, frames: int, rate: int, out_rate: int) -> tuple[int, int]:
    """Output indices [first, end) of a message of `frames` samples at `rate` stamped `stamp_ns`: the stamp to the
    nearest output sample."""
    first = round(stamp_ns * out_rate / 1e9)
    return first, first + round(frames * out_rate / rate)


def render(frames: np.ndarray, rate: int, stamp_ns: int, out_rate: int, out_channels: int,
           utterance: str = "") -> Sound:
    """Message samples (frames, channels) at `rate`, to be heard from ROS time `stamp_ns` on, as a Sound at
    `out_rate` with `out_channels` (soxr, high quality)."""
    mixed = match_channels(frames, out_channels)
    first, end = span(stamp_ns, len(frames), rate, out_rate)
    if rate == out_rate:
        return Sound(first, np.ascontiguousarray(mixed, dtype=np.float32), first, end, utterance)
    pad = resampler_pad(rate, out_rate)
    audio = soxr.resample(np.pad(mixed, ((pad, pad), (0, 0))), rate, out_rate)
    # the padded audio starts `pad` input samples before the stamp, placed from the exact (unrounded) stamp
    return Sound(round(stamp_ns * out_rate / 1e9 - pad * out_rate / rate), audio.astype(np.float32, copy=False),
                 first, end, utterance)


# --- the timeline ----------------------------------------------------------------------------------------------------

class SpeechTimeline:
    """Sounds on one sample grid of the ROS clock, read once, in order, by an output.

    The cursor is the index of the next sample the output will take; everything before it is played. Thread safe:
    ROS callbacks add while a device's audio thread reads.
    """

    def __init__(self, rate: int, channels: int, cursor: int | None = None, max_buffered_s: float = MAX_BUFFERED_S):
        self.rate, self.channels = rate, channels
        self.cursor = cursor  # None: set by the first add or read_at
        self.max_buffered = int(max_buffered_s * rate)
        self.resyncs = 0  # reads that jumped (device timing moved more than the tolerance)
        self.clock_jumps = 0  # reads far behind the cursor: the timeline started anew there
        self._sounds: list[Sound] = []
        self._device_started = False  # read_at was called
        self._lock = threading.Lock()

    def buffered_samples(self) -> int:
        with self._lock:
            return sum(len(s.audio) for s in self._sounds)

    def add(self, sound: Sound, now: int) -> tuple[int, int]:
        """Place `sound` (`now`: the index of the ROS time now, the cursor if nothing was placed or read yet).
        What lies before the cursor, already played, is cut. Returns (how many of the message's own samples were
        cut as late, the cursor). Raises TimelineFull, placing nothing, when that would hold more than
        max_buffered_s of audio."""
        with self._lock:
            if self.cursor is None:
                self.cursor = now
            late = min(max(self.cursor - sound.first, 0), sound.end - sound.first)
            cut = max(self.cursor - sound.start, 0)
            if cut < len(sound.audio) and sound.end > self.cursor:
                held = sum(len(s.audio) for s in self._sounds)
                if held + len(sound.audio) - cut > self.max_buffered:
                    raise TimelineFull(f"the player already holds {held / self.rate:.0f} s of future speech "
                                       f"(at most {self.max_buffered / self.rate:.0f} s)")
                self._sounds.append(Sound(sound.start + cut, sound.audio[cut:], sound.first, sound.end,
                                          sound.utterance))
            return late, self.cursor

    def stop(self, utterance: str, at: int) -> int:
        """Silence `utterance` from index `at` on (from the cursor where `at` has played), fading out over
        STOP_FADE_S so the cut does not click. Returns how many of its samples will not play."""
        fade = max(1, round(STOP_FADE_S * self.rate))
        with self._lock:
            at = max(at, self.cursor if self.cursor is not None else at)
            kept, dropped = [], 0
            for sound in self._sounds:
                if sound.utterance != utterance or sound.stop <= at:
                    kept.append(sound)
                    continue
                keep = max(at - sound.start, 0)
                tail = sound.audio[keep:keep + fade] * np.linspace(1.0, 0.0, fade, dtype=np.float32)[
                    :len(sound.audio) - keep, None]
                audio = np.concatenate([sound.audio[:keep], tail])
                dropped += len(sound.audio) - keep
                if len(audio):
                    kept.append(Sound(sound.start, audio, sound.first, min(sound.end, sound.start + len(audio)),
                                      utterance))
            self._sounds = kept
            return dropped

    def read(self, frames: int) -> np.ndarray:
        """The next `frames` samples from the cursor, (frames, channels) float32, mixed and clipped."""
        with self._lock:
            return self._read(self.cursor, frames)

    def read_at(self, wanted: int, frames: int, tolerance: int) -> np.ndarray:
        """`frames` samples for an output buffer whose first sample is heard at index `wanted`: continuing from
        the cursor when `wanted` is within `tolerance` of it (no click for jitter), else from `wanted` (what lies
        between is skipped, or silence where `wanted` is before the cursor: those samples have played)."""
        with self._lock:
            if not self._device_started:  # the first buffer places the stream: no jump to count
                self._device_started, self.cursor = True, wanted
            offset = wanted - self.cursor
            if abs(offset) <= tolerance:
                wanted = self.cursor
            elif offset < -CLOCK_JUMP_BACK_S * self.rate:
                self.clock_jumps += 1
                self._sounds.clear()  # stamped on the clock before the jump: meaningless now
                self.cursor = wanted
            else:
                self.resyncs += 1
            return self._read(wanted, frames)

    def _read(self, start: int, frames: int) -> np.ndarray:
        """Samples [start, start + frames); those before the cursor are silence. Moves the cursor past them and
        forgets what ended before it. Holds the lock."""
        out = np.zeros((frames, self.channels), np.float32)
        end, played = start + frames, max(start, self.cursor)
        kept = []
        for sound in self._sounds:
            low, high = max(played, sound.start), min(end, sound.stop)
            if low < high:
                out[low - start:high - start] += sound.audio[low - sound.start:high - sound.start]
            if sound.stop > end:
                kept.append(sound)
        self._sounds = kept
        self.cursor = max(self.cursor, end)
        return np.clip(out, -1.0, 1.0, out=out)


# --- outputs ---------------------------------------------------------------------------------------------------------

def heard_index(ros_now_ns: int, dac_ahead_s: float, compensation_s: float, rate: int) -> int:
    """Timeline index of a device buffer's first sample: heard `dac_ahead_s` (PortAudio: DAC time minus the
    callback's current time) after now, plus the audio path's delay after the DAC, `compensation_s`."""
    return round((ros_now_ns * 1e-9 + dac_ahead_s + compensation_s) * rate)


def find_output_device(device: str):
    """The sounddevice output device for `device` ('' = default, a number = index, else a name substring)."""
    try:
        import sounddevice
    except OSError as error:  # the Python package is there but libportaudio2 is not
        raise SpeechPlayerError(f"PortAudio is missing ({error}); install libportaudio2, or write the speech to a "
                                "file instead: output:=wav wav_file:=<speech.wav>") from None
    outputs = [d for d in sounddevice.query_devices() if d["max_output_channels"] > 0]
    if not outputs:
        raise SpeechPlayerError("no audio output device found (sounddevice lists none with output channels); plug "
                                "in a sound card, or write the speech to a file: output:=wav wav_file:=<speech.wav>")
    if device == "":
        return None  # PortAudio's default output
    if device.isdigit():
        return int(device)
    matches = [d["name"] for d in outputs if device.lower() in d["name"].lower()]
    if not matches:
        raise SpeechPlayerError(f"no output device matches {device!r}; outputs: "
                                f"{', '.join(d['name'] for d in outputs)}")
    return matches[0]


class WavRecorder:
    """What would play, as 16-bit PCM WAV: sample i is heard at ROS time (first + i) / rate.

    The header is brought up to date with every write and the file flushed (Python's wave module patches the sizes
    after each write), so a killed process leaves a valid WAV of everything written so far.
    """

    def __init__(self, path: Path, rate: int, channels: int):
        self.path, self.rate, self.channels = path, rate, channels
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "wb")
        self._wav = wave.open(self._file, "wb")
        self._wav.setnchannels(channels)
        self._wav.setsampwidth(2)
        self._wav.setframerate(rate)
        self._wav.writeframes(b"")  # the header now: a process killed before any speech still leaves a WAV
        self._file.flush()
        self.first: int | None = None  # timeline index of sample 0
        self.written = 0

    def write(self, audio: np.ndarray) -> None:
        pcm = np.round(np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2")
        self._wav.writeframes(pcm.tobytes())
        self._file.flush()
        self.written += len(audio)

    def close(self) -> None:
        self._wav.close()
        self._file.close()


# --- the node --------------------------------------------------------------------------------------------------------

class SpeechPlayer(Node):
    def __init__(self, **kwargs):
        super().__init__("speech_player", **kwargs)
        # First: destroy_node runs for a half-built node too (the context destroys its nodes at shutdown).
        self.stream = self.recorder = None
        declare = self.declare_parameter
        declare("output", "sounddevice", ParameterDescriptor(
            description="sounddevice (a sound card, through PortAudio) or wav (a WAV file of what would play, with "
                        "a JSON sidecar giving its ROS time; for machines without a sound card).", read_only=True))
        declare("device", "", ParameterDescriptor(
            description="sounddevice output: name substring or index; empty = the system default.", read_only=True))
        declare("output_rate", 48000, ParameterDescriptor(
            description="Output rate (Hz); messages at other rates are resampled (soxr).", read_only=True,
            integer_range=[IntegerRange(from_value=MIN_SAMPLE_RATE, to_value=MAX_SAMPLE_RATE, step=1)]))
        declare("output_channels", 1, ParameterDescriptor(
            description="Output channels; messages with another count are mixed to mono (and copied to each).",
            read_only=True, integer_range=[IntegerRange(from_value=1, to_value=MAX_CHANNELS, step=1)]))
        declare("latency_compensation_s", 0.0, ParameterDescriptor(
            description="sounddevice output: delay of the audio path after the DAC time PortAudio reports (an "
                        "amplifier, a Bluetooth link); samples go out that much earlier. Measure it: docs/speech.md.",
            floating_point_range=[FloatingPointRange(from_value=-0.5, to_value=2.0, step=0.0)]))
        declare("wav_file", "", ParameterDescriptor(
            description="wav output: the WAV file written; its ROS time and counters go to <wav_file>.json.",
            read_only=True))
        get = lambda name: self.get_parameter(name).value  # noqa: E731

        self.output, self.rate, self.channels = get("output"), get("output_rate"), get("output_channels")
        if self.output not in OUTPUTS:
            raise SpeechPlayerError(f"output must be one of {OUTPUTS}, got {self.output!r}")
        if self.output == "wav" and not get("wav_file"):
            raise SpeechPlayerError("output: wav needs the `wav_file` parameter (the WAV path to write)")
        self.compensation_s = get("latency_compensation_s")
        self.add_on_set_parameters_callback(self.on_set_parameters)
        self.timeline = SpeechTimeline(self.rate, self.channels)
        self.stats = {"messages": 0, "played_messages": 0, "late_messages": 0, "late_samples": 0,
                      "refused_messages": 0, "stopped_utterances": 0, "underflows": 0}
        self._diagnosed_at, self._diagnosed_counters = -math.inf, self.counters()
        self._wav_info_at = -math.inf
        self._clock_went_back = False  # wav output: the ROS clock is behind what the file holds

        # Whole utterances arrive once, ahead of time, and must not be lost: reliable (so the publisher must be
        # reliable too); deep enough for a burst of 100 ms chunks. Overridable from a params file
        # (qos_overrides./speech_audio.subscription.reliability / .depth).
        qos = QoSProfile(depth=SPEECH_QUEUE, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.VOLATILE)
        self.speech_sub = self.create_subscription(SpeechAudio, "speech_audio", self.on_speech, qos,
                                                   qos_overriding_options=QoSOverridingOptions.with_default_policies())
        # Standard diagnostics (rqt_robot_monitor, the diagnostic aggregator): the absolute topic, as every node's.
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(TICK_S, self.on_tick)
        if self.output == "wav":
            self.recorder = WavRecorder(Path(get("wav_file")), self.rate, self.channels)
            self.hardware_id = str(self.recorder.path)
            self.get_logger().info(f"writing {self.speech_sub.topic_name} to {self.recorder.path} ({self.rate} Hz "
                                   f"x{self.channels}); its ROS time goes to {self.recorder.path}.json")
        else:
            self._start_device(find_output_device(get("device")))

    def _start_device(self, device) -> None:
        import sounddevice

        self.output_latency_s = 0.0  # the stream's, once open: stands in where a host API reports no DAC time

        def on_buffer(outdata, frames, time_info, status):  # PortAudio's thread: no ROS calls but the clock
            if status.output_underflow:
                self.stats["underflows"] += 1
            now_ns = self.get_clock().now().nanoseconds
            if now_ns == 0:  # use_sim_time before the first /clock: nothing is due yet
                outdata.fill(0.0)
                return
            # time_info.currentTime is the stream time (stream.time) when PortAudio called us, on the clock of
            # outputBufferDacTime; host APIs that cannot tell the DAC time leave it 0
            ahead_s = time_info.outputBufferDacTime - time_info.currentTime \
                if time_info.outputBufferDacTime > 0 else self.output_latency_s
            wanted = heard_index(now_ns, ahead_s, self.compensation_s, self.rate)
            outdata[:] = self.timeline.read_at(wanted, frames, round(RESYNC_TOLERANCE_S * self.rate))

        try:
            # High latency (PortAudio's robust setting) costs nothing here: speech is scheduled ahead of time
            self.stream = sounddevice.OutputStream(device=device, channels=self.channels, samplerate=self.rate,
                                                   dtype="float32", latency="high", callback=on_buffer)
            self.output_latency_s = self.stream.latency
            self.stream.start()
        except Exception as error:  # noqa: BLE001 - PortAudio raises several types for "this device cannot"
            raise SpeechPlayerError(f"cannot play {self.channels} channel(s) at {self.rate} Hz on output device "
                                    f"{device if device is not None else '(default)'}: {error}; or write the "
                                    "speech to a file: output:=wav wav_file:=<speech.wav>") from None
        self.hardware_id = str(sounddevice.query_devices(self.stream.device)["name"])
        self.get_logger().info(
            f"playing {self.speech_sub.topic_name} on {self.hardware_id} at {self.rate} Hz x{self.channels}; output "
            f"latency {self.stream.latency * 1e3:.0f} ms (speech must arrive that long before its stamp), latency "
            f"compensation {self.compensation_s * 1e3:.0f} ms")

    def on_set_parameters(self, params) -> SetParametersResult:
        for param in params:  # ranges are checked by rclpy before this runs
            if param.name == "latency_compensation_s":
                self.compensation_s = param.value
        return SetParametersResult(successful=True)

    def now_index(self) -> int | None:
        """The timeline index of the ROS time now; None while the ROS clock has no time (sim time, no /clock)."""
        now_ns = self.get_clock().now().nanoseconds
        return round(now_ns * self.rate / 1e9) if now_ns else None

    # --- speech in ---
    def on_speech(self, msg: SpeechAudio) -> None:
        self.stats["messages"] += 1
        now = self.now_index()
        try:
            if now is None:
                raise AudioMessageError("the ROS clock has no time yet (use_sim_time and no /clock)")
            self._record_until(now)  # the WAV's cursor is now: what is stamped before it is late, as on a speaker
            stamp_ns = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
            if len(msg.samples) == 0 and msg.utterance_id:
                self._stop_utterance(msg.utterance_id, stamp_ns)
                return
            frames = speech_samples(msg)
            ahead_s = stamp_ns * 1e-9 - now / self.rate
            if ahead_s > MAX_AHEAD_S:
                raise AudioMessageError(f"stamped {ahead_s:.1f} s ahead (at most {MAX_AHEAD_S:g} s): publisher and "
                                        "player on different clocks (use_sim_time)?")
            first, end = span(stamp_ns, len(frames), msg.sample_rate, self.rate)
            cursor = self.timeline.cursor
            if cursor is not None and end <= cursor:  # all of it played already: nothing to resample
                sound = Sound(first, np.zeros((0, self.channels), np.float32), first, end)
            else:
                sound = render(frames, msg.sample_rate, stamp_ns, self.rate, self.channels, msg.utterance_id)
            late, cursor = self.timeline.add(sound, now)
        except (AudioMessageError, TimelineFull) as error:
            self.stats["refused_messages"] += 1
            self.get_logger().warning(f"refused a speech message (utterance {msg.utterance_id!r}): {error}; "
                                      "nothing of it is played", throttle_duration_sec=LOG_THROTTLE_S)
            return
        length = sound.end - sound.first
        if late < length:
            self.stats["played_messages"] += 1
        if late:
            self.stats["late_messages"] += 1
            self.stats["late_samples"] += late
            late_s = (cursor - sound.first) / self.rate
            hint = " (is header.stamp set, on this node's clock?)" if late_s > LATE_HINT_S else ""
            self.get_logger().warning(
                f"speech came {late_s * 1e3:.0f} ms too late for its stamp{hint}: the first {late / self.rate:.3f} s "
                f"of {length / self.rate:.3f} s were skipped (utterance {msg.utterance_id!r}, stamp "
                f"{stamp_ns * 1e-9:.3f} s, output already at {cursor / self.rate:.3f} s)",
                throttle_duration_sec=LOG_THROTTLE_S)

    def _stop_utterance(self, utterance: str, stamp_ns: int) -> None:
        """An empty message naming an utterance: the rest of it, from the stamp on, is not to be played (the
        gesture node sends one when a speak goal is canceled or preempted)."""
        dropped = self.timeline.stop(utterance, round(stamp_ns * self.rate / 1e9))
        self.stats["stopped_utterances"] += 1
        self.get_logger().info(f"utterance {utterance!r} stopped at {stamp_ns * 1e-9:.3f} s: "
                               f"{dropped / self.rate:.3f} s of it will not play")

    def counters(self) -> dict:
        """What happened so far: messages, late and refused ones, and the output's troubles."""
        return {**self.stats, "resyncs": self.timeline.resyncs, "clock_jumps": self.timeline.clock_jumps}

    # --- time passing ---
    def on_tick(self) -> None:
        now = self.now_index()
        if now is None:
            return
        self._record_until(now)
        self._publish_diagnostics(now / self.rate)
        if self.recorder is not None and not 0 <= now / self.rate - self._wav_info_at < WAV_INFO_PERIOD_S:
            self._wav_info_at = now / self.rate
            self._write_wav_info()

    def _record_until(self, now: int) -> None:
        """WAV output: write what plays up to index `now` (in pieces of at most a second: a jump of the clock is
        silence, not one huge array)."""
        recorder = self.recorder
        if recorder is None:
            return
        if recorder.first is None:
            recorder.first = self.timeline.cursor = now
        behind = now < self.timeline.cursor - CLOCK_JUMP_BACK_S * self.rate
        if behind and not self._clock_went_back:  # the file cannot go back in time: it resumes when the clock does
            self.timeline.clock_jumps += 1
            self.get_logger().warning(
                f"the ROS clock went back {(self.timeline.cursor - now) / self.rate:.3f} s; {recorder.path} "
                "continues when it is past the time written last", throttle_duration_sec=LOG_THROTTLE_S)
        self._clock_went_back = behind
        while self.timeline.cursor < now:
            recorder.write(self.timeline.read(min(now - self.timeline.cursor, self.rate)))

    def _write_wav_info(self) -> None:
        """<wav_file>.json: when the WAV's sample 0 is heard (ROS time) and what was late or refused. Replaced in
        one step, so a reader never sees half a file."""
        recorder = self.recorder
        info = {"wav": recorder.path.name, "sample_rate": self.rate, "channels": self.channels,
                "start_sample_index": recorder.first,
                "start_s": None if recorder.first is None else recorder.first / self.rate,
                "samples": recorder.written, "clock": "sim" if self.get_parameter("use_sim_time").value else "ros",
                **{k: v for k, v in self.counters().items() if k not in ("underflows", "resyncs")}}
        path = recorder.path.with_name(recorder.path.name + ".json")
        partial = path.with_name(path.name + ".partial")
        partial.write_text(json.dumps(info, indent=1) + "\n")
        os.replace(partial, path)

    def _publish_diagnostics(self, now_s: float) -> None:
        """Once a second (ROS time) on /diagnostics: WARN when speech was late or refused, the output underflowed
        or resynced, or the clock jumped back since the last report, else OK."""
        if 0 <= now_s - self._diagnosed_at < DIAGNOSTICS_PERIOD_S:  # (a clock that jumped back reports at once)
            return
        counters = self.counters()
        since = {k: v - self._diagnosed_counters[k] for k, v in counters.items()}
        self._diagnosed_at, self._diagnosed_counters = now_s, counters
        problems = [f"{since[k]} {what}" for k, what in DIAGNOSED.items() if since[k] > 0]
        values = {"output": self.output, "sample_rate": self.rate, "channels": self.channels,
                  "latency_compensation_s": self.compensation_s,
                  "buffered_s": round(self.timeline.buffered_samples() / self.rate, 3), **counters}
        status = DiagnosticStatus(
            level=DiagnosticStatus.WARN if problems else DiagnosticStatus.OK,
            name=f"{self.get_fully_qualified_name()}: speech",
            message="; ".join(problems) + " in the last second" if problems else "playing speech at its stamps",
            hardware_id=self.hardware_id, values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        self.diagnostics_pub.publish(msg)

    def destroy_node(self):
        if self.stream is not None:
            self.stream.close()
        if self.recorder is not None:
            now = self.now_index()
            if now is not None:
                self._record_until(now)
            self._write_wav_info()
            self.recorder.close()
        super().destroy_node()


def main(args=None):
    from ha2g_ros.bringup import run_node

    run_node(SpeechPlayer, "speech_player", args, node_errors=(SpeechPlayerError,))


if __name__ == "__main__":
    main()
