"""The microphone node: speech audio on `audio`, from a sound card (sounddevice) or from a file played in real time.

The `file` source stands in for a microphone in demos and tests: it plays a WAV/FLAC at its natural pace and, when
`transcript_file` is set, publishes that file's word timings on `transcript` as playback starts, restated on the
ROS clock, exactly what a TTS that knows its word timings would send.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from rcl_interfaces.msg import IntegerRange, ParameterDescriptor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from std_msgs.msg import String

from ha2g_ros.audio_messages import (AUDIO_TYPES, MAX_CHANNELS, MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, check_format,
                                     from_samples, message_class)
from ha2g_ros.transcript import parse_transcript, to_json

SOURCES = ("device", "file")


class MicrophoneError(RuntimeError):
    """The audio source cannot start; the text says why and what to do instead."""


def _int_range(low: int, high: int) -> list[IntegerRange]:
    return [IntegerRange(from_value=low, to_value=high, step=1)]


def load_audio_file(path: str, sample_rate: int, channels: int) -> np.ndarray:
    """A sound file as float32 (n, channels) at `sample_rate`: resampled and mixed/duplicated to fit the link."""
    from ha2g_model.audio import read_audio_file  # soundfile: only the file source needs it

    try:
        audio, rate = read_audio_file(path)
    except (FileNotFoundError, ValueError) as error:
        raise MicrophoneError(str(error)) from None
    if rate != sample_rate:
        from scipy.signal import resample_poly

        g = np.gcd(int(rate), int(sample_rate))
        audio = resample_poly(audio, sample_rate // g, rate // g, axis=0).astype(np.float32)
    if audio.shape[1] != channels:
        audio = np.repeat(audio.mean(axis=1, keepdims=True), channels, axis=1)
    return np.clip(audio, -1.0, 1.0)


def find_input_device(device: str):
    """The sounddevice input device for `device` ('' = default, a number = index, else a name substring)."""
    try:
        import sounddevice
    except OSError as error:  # the Python package is there but libportaudio2 is not
        raise MicrophoneError(f"PortAudio is missing ({error}); install libportaudio2, or use source: file") from None
    inputs = [d for d in sounddevice.query_devices() if d["max_input_channels"] > 0]
    if not inputs:
        raise MicrophoneError("no audio input device found (sounddevice lists none with input channels); plug in a "
                              "microphone, or play a file instead: source: file, file: <speech.wav>")
    if device == "":
        return None  # PortAudio's default input
    if device.isdigit():
        return int(device)
    matches = [d["name"] for d in inputs if device.lower() in d["name"].lower()]
    if not matches:
        raise MicrophoneError(f"no input device matches {device!r}; inputs: {', '.join(d['name'] for d in inputs)}")
    return matches[0]


class MicrophoneNode(Node):
    def __init__(self, **kwargs):
        super().__init__("microphone_node", **kwargs)
        # First: the context destroys its nodes at shutdown, a node whose constructor failed below included.
        self.stream = None
        declare = self.declare_parameter
        declare("source", "device", ParameterDescriptor(description="device (sound card) or file", read_only=True))
        declare("device", "", ParameterDescriptor(
            description="Input device: name substring or index; empty = the system default.", read_only=True))
        declare("file", "", ParameterDescriptor(description="Sound file played by the file source.", read_only=True))
        declare("transcript_file", "", ParameterDescriptor(
            description="Word timings JSON (times from the file's start) the file source publishes on `transcript` "
                        "when playback starts.", read_only=True))
        declare("audio_type", "std_msgs/msg/Int16MultiArray", ParameterDescriptor(
            description=f"Message type on `audio`. One of: {', '.join(AUDIO_TYPES)}.", read_only=True))
        declare("sample_rate", 16000, ParameterDescriptor(
            description="Capture / publish rate (Hz).", read_only=True,
            integer_range=_int_range(MIN_SAMPLE_RATE, MAX_SAMPLE_RATE)))
        declare("channels", 1, ParameterDescriptor(
            description="Channels captured and published (interleaved).", read_only=True,
            integer_range=_int_range(1, MAX_CHANNELS)))
        declare("chunk_size", 1600, ParameterDescriptor(
            description="Samples per channel in one message.", read_only=True, integer_range=_int_range(16, 96000)))
        declare("loop", False, ParameterDescriptor(description="File source: start over at the end.", read_only=True))
        get = lambda name: self.get_parameter(name).value  # noqa: E731

        self.audio_type, self.rate, self.channels = get("audio_type"), get("sample_rate"), get("channels")
        self.chunk = get("chunk_size")
        if get("source") not in SOURCES:
            raise MicrophoneError(f"source must be one of {SOURCES}, got {get('source')!r}")
        check_format(self.rate, self.channels)
        # Audio is a stream: best effort like any sensor, matching the gesture node's subscription.
        self.audio_pub = self.create_publisher(message_class(self.audio_type), "audio", qos_profile_sensor_data)
        self.finished = False  # the file source played its file to the end
        if get("source") == "file":
            if not get("file"):
                raise MicrophoneError("source: file needs the `file` parameter (a WAV/FLAC path)")
            self.audio = load_audio_file(get("file"), self.rate, self.channels)
            self.words = parse_transcript(Path(get("transcript_file")).read_text()).words \
                if get("transcript_file") else ()
            # The transcript is one message per playback; transient local keeps it for a late subscriber that
            # asks for it, reliable so it is not lost.
            self.transcript_pub = self.create_publisher(String, "transcript", QoSProfile(
                depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL))
            self.loop = get("loop")
            self.position = 0  # next sample of the file to publish
            self.start_monotonic = None
            # Polls for a subscriber every half chunk; once playing, it is re-timed to each chunk's due time.
            self.file_timer = self.create_timer(self.chunk / self.rate / 2, self.on_file_timer)
            self.get_logger().info(f"playing {get('file')} ({len(self.audio) / self.rate:.1f} s) in real time on "
                                   f"{self.audio_pub.topic_name} as {self.audio_type}, once a subscriber is there")
        else:
            self._start_device(find_input_device(get("device")))

    def _start_device(self, device) -> None:
        import sounddevice

        def on_block(block, frames, time_info, status):  # PortAudio's thread; rclpy publishers are thread safe
            if status:
                self.get_logger().warning(f"audio capture: {status}", throttle_duration_sec=5.0)
            self.audio_pub.publish(from_samples(block.copy(), self.audio_type, self.rate,
                                                stamp=self.get_clock().now().to_msg()))

        try:
            self.stream = sounddevice.InputStream(device=device, channels=self.channels, samplerate=self.rate,
                                                  blocksize=self.chunk, dtype="float32", callback=on_block)
            self.stream.start()
        except Exception as error:  # noqa: BLE001 - PortAudio raises several types for "this device cannot"
            raise MicrophoneError(f"cannot capture {self.channels} channel(s) at {self.rate} Hz from input device "
                                  f"{device if device is not None else '(default)'}: {error}") from None
        self.get_logger().info(f"capturing {self.stream.device} at {self.rate} Hz on {self.audio_pub.topic_name}")

    def on_file_timer(self) -> None:
        if self.finished:
            return
        if self.start_monotonic is None:
            if self.audio_pub.get_subscription_count() == 0:
                return  # nobody listens yet: starting now would play the first words to nobody
            self.start_monotonic = time.monotonic()
            if self.words:
                origin = self.get_clock().now().nanoseconds * 1e-9
                self.transcript_pub.publish(String(data=to_json(self.words, clock="ros", origin=origin)))
        # Publish every chunk that is due by the wall clock: no drift, whatever the timer jitter.
        due = int((time.monotonic() - self.start_monotonic) * self.rate)
        end = len(self.audio)
        while self.position < end and min(self.position + self.chunk, end) <= due:
            block = self.audio[self.position:self.position + self.chunk]
            self.audio_pub.publish(from_samples(block, self.audio_type, self.rate,
                                                stamp=self.get_clock().now().to_msg()))
            self.position += len(block)
        if self.position >= end:
            if self.loop:  # the next tick starts over, transcript included
                self.position, self.start_monotonic = 0, None
            else:
                self.finished = True
                self.file_timer.cancel()
                self.get_logger().info("finished playing the file")
                return
        # The next chunk goes out when its last sample is due, as a sound card delivers its blocks: a fixed timer
        # would send it up to a timer period late, and the listener would take that jitter for the link's.
        next_due = self.start_monotonic + min(self.position + self.chunk, end) / self.rate \
            if self.start_monotonic is not None else time.monotonic() + self.chunk / self.rate / 2
        self.file_timer.timer_period_ns = max(1_000_000, round((next_due - time.monotonic()) * 1e9))
        self.file_timer.reset()

    def destroy_node(self):
        if self.stream is not None:
            self.stream.close()
        super().destroy_node()


def main(args=None):
    from ha2g_ros.bringup import run_node

    run_node(MicrophoneNode, "microphone_node", args, node_errors=(MicrophoneError,))


if __name__ == "__main__":
    main()
