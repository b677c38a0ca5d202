"""Audio messages <-> numpy, for every message type the nodes accept. Pure functions, no node state.

Supported types (the `audio_type` parameter of both nodes):

| type | samples | rate / channels |
|---|---|---|
| `std_msgs/msg/Int16MultiArray` | int16, interleaved | parameters |
| `std_msgs/msg/Float32MultiArray` | float32 in [-1, 1], interleaved | parameters |
| `std_msgs/msg/UInt8MultiArray` | PCM S16LE bytes, interleaved | parameters |
| `audio_common_msgs/msg/AudioData` | ros-drivers (`uint8[] data`, S16LE) or mgonzs13 (typed arrays) | parameters |
| `audio_common_msgs/msg/AudioDataStamped` | ros-drivers: `header` + `AudioData audio` | parameters |
| `audio_common_msgs/msg/AudioStamped` | mgonzs13: `header` + `Audio audio` (`audio_data`, `info`) | from `info` |

`audio_common_msgs` is imported only when one of its types is asked for: it is optional.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass

import numpy as np

STD_TYPES = ("std_msgs/msg/Int16MultiArray", "std_msgs/msg/Float32MultiArray", "std_msgs/msg/UInt8MultiArray")
AUDIO_COMMON_TYPES = ("audio_common_msgs/msg/AudioData", "audio_common_msgs/msg/AudioDataStamped",
                      "audio_common_msgs/msg/AudioStamped")
AUDIO_TYPES = STD_TYPES + AUDIO_COMMON_TYPES

MIN_SAMPLE_RATE = 4_000  # below this, speech is unintelligible: a wrong parameter, not audio
MAX_SAMPLE_RATE = 192_000
MAX_CHANNELS = 32
INT16_SCALE = 32768.0
PEAK_TOLERANCE = 1e-3  # float samples may overshoot [-1, 1] by a rounding error, not more

# PortAudio sample formats, as carried by audio_common_msgs/AudioInfo.format (mgonzs13/audio_common).
_PA_FLOAT32, _PA_INT32, _PA_INT16, _PA_INT8, _PA_UINT8 = 1, 2, 8, 16, 32


class AudioMessageError(ValueError):
    """A message that cannot be turned into audio; the text says what is wrong with it."""


@dataclass(frozen=True)
class AudioChunk:
    samples: np.ndarray  # (n,) float32 mono in [-1, 1]
    sample_rate: int


def message_class(type_name: str) -> type:
    """The Python class of a supported audio message type, e.g. 'std_msgs/msg/Int16MultiArray'."""
    if type_name not in AUDIO_TYPES:
        raise ValueError(f"unsupported audio message type {type_name!r}; supported: {', '.join(AUDIO_TYPES)}")
    package, _, name = type_name.split("/")
    try:
        module = importlib.import_module(f"{package}.msg")
    except ImportError as error:
        raise ValueError(f"audio message type {type_name!r} needs the ROS package {package}, which is not "
                         f"installed ({error}); use one of {', '.join(STD_TYPES)}") from None
    try:
        return getattr(module, name)
    except AttributeError:
        raise ValueError(f"the installed {package} has no message {name} (a different audio_common flavour?)") \
            from None


def check_format(sample_rate: int, channels: int) -> None:
    """Raise AudioMessageError when the rate or channel count is not an integer or is absurd."""
    for name, value in (("sample rate", sample_rate), ("channel count", channels)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise AudioMessageError(f"{name} must be an integer, got {type(value).__name__} {str(value)[:20]}")
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise AudioMessageError(f"sample rate {sample_rate} Hz is outside [{MIN_SAMPLE_RATE}, {MAX_SAMPLE_RATE}]")
    if not 1 <= channels <= MAX_CHANNELS:
        raise AudioMessageError(f"channel count {channels} is outside [1, {MAX_CHANNELS}]")


def pcm_frames(interleaved, channels: int, peak_tolerance: float = PEAK_TOLERANCE) -> np.ndarray:
    """Interleaved float PCM -> float32 (frames, channels). AudioMessageError names what is wrong: no samples, a
    count that does not split into the channels, NaN/Inf, samples outside [-1, 1] (more than peak_tolerance)."""
    interleaved = np.asarray(interleaved, dtype=np.float32)
    if interleaved.size == 0:
        raise AudioMessageError("empty audio: no audio samples")
    if interleaved.size % channels:
        raise AudioMessageError(f"{interleaved.size} samples do not split into {channels} interleaved channels")
    finite = np.isfinite(interleaved)
    if not finite.all():
        raise AudioMessageError(f"audio contains {int((~finite).sum())} NaN/Inf samples")
    peak = float(np.abs(interleaved).max())
    if peak > 1.0 + peak_tolerance:
        raise AudioMessageError(f"samples must lie in [-1, 1], peak is {peak:.3g}: PCM must be scaled to [-1, 1] "
                                "(int16 divided by 32768)")
    return interleaved.reshape(-1, channels)


def _s16le_bytes_to_float(data) -> np.ndarray:
    raw = bytes(data)
    if len(raw) % 2:
        raise AudioMessageError(f"{len(raw)} bytes of PCM S16LE audio is an odd number: a sample is cut in half")
    return np.frombuffer(raw, dtype="<i2").astype(np.float32) / INT16_SCALE


def _mgonzs13_samples(audio_data, sample_format: int | None) -> np.ndarray:
    """Samples of an mgonzs13 AudioData (one typed array is filled), as float32 in [-1, 1]."""
    arrays = {_PA_FLOAT32: ("float32_data", 1.0), _PA_INT32: ("int32_data", 2.0 ** 31),
              _PA_INT16: ("int16_data", INT16_SCALE), _PA_INT8: ("int8_data", 128.0), _PA_UINT8: ("uint8_data", None)}
    candidates = [arrays[sample_format]] if sample_format in arrays else list(arrays.values())
    for field, scale in candidates:
        values = np.asarray(getattr(audio_data, field), dtype=np.float64)
        if values.size:
            if scale is None:  # unsigned 8 bit PCM is offset binary around 128
                return ((values - 128.0) / 128.0).astype(np.float32)
            return (values / scale).astype(np.float32)
    return np.zeros(0, np.float32)


def to_chunk(msg, sample_rate: int, channels: int) -> AudioChunk:
    """Any supported audio message -> mono float32 chunk. `sample_rate`/`channels` apply unless the message says.

    Raises AudioMessageError (naming the problem) for anything else: other objects, empty, odd-length, non-finite or
    out-of-range audio, rates or channel counts that are not sane integers.
    """
    kind = type(msg).__name__  # the message types are told apart by name: duck typing would take a numpy array
    if kind in ("AudioDataStamped", "AudioStamped"):  # the node times audio by its arrival, not by the header
        msg, kind = msg.audio, type(msg.audio).__name__
    if kind == "Audio" and hasattr(msg, "info"):  # mgonzs13 Audio: the format travels with the data
        info = msg.info
        sample_rate, channels = int(info.rate) or sample_rate, int(info.channels) or channels
        check_format(sample_rate, channels)
        interleaved = _mgonzs13_samples(msg.audio_data, int(info.format))
    elif kind == "AudioData" and hasattr(msg, "float32_data"):  # mgonzs13 AudioData without info
        check_format(sample_rate, channels)
        interleaved = _mgonzs13_samples(msg, None)
    elif kind in ("Int16MultiArray", "Float32MultiArray", "UInt8MultiArray"):  # rclpy: data is an array.array
        check_format(sample_rate, channels)
        if kind == "UInt8MultiArray":
            interleaved = _s16le_bytes_to_float(msg.data)
        elif kind == "Int16MultiArray":
            interleaved = np.asarray(msg.data, dtype=np.int16).astype(np.float32) / INT16_SCALE
        else:
            interleaved = np.asarray(msg.data, dtype=np.float32)
    elif kind == "AudioData" and hasattr(msg, "data"):  # ros-drivers AudioData: S16LE bytes
        check_format(sample_rate, channels)
        interleaved = _s16le_bytes_to_float(msg.data)
    else:
        raise AudioMessageError(f"{kind} is not an audio message this package understands")
    mono = pcm_frames(interleaved, int(channels)).mean(axis=1, dtype=np.float32)
    return AudioChunk(mono, int(sample_rate))


def from_samples(samples: np.ndarray, type_name: str, sample_rate: int, stamp=None):
    """float32 samples (n,) mono or (n, channels) in [-1, 1] -> a message of `type_name`.

    `stamp` (builtin_interfaces/Time) fills the header of stamped types. Rate and channels travel in the message
    only where its type has room for them (AudioStamped); otherwise the receiver's parameters must match.
    """
    samples = np.asarray(samples, dtype=np.float32)
    channels = 1 if samples.ndim == 1 else samples.shape[1]
    interleaved = np.clip(samples.reshape(-1), -1.0, 1.0)
    pcm16 = np.round(interleaved * (INT16_SCALE - 1)).astype(np.int16)
    cls = message_class(type_name)
    name = type_name.rsplit("/", 1)[1]
    msg = cls()
    if name == "Int16MultiArray":
        msg.data = pcm16
    elif name == "Float32MultiArray":
        msg.data = interleaved
    elif name == "UInt8MultiArray":
        msg.data = pcm16.astype("<i2").tobytes()
    elif name in ("AudioData", "AudioDataStamped"):
        target = msg.audio if name == "AudioDataStamped" else msg
        if hasattr(target, "int16_data"):
            target.int16_data = pcm16.tolist()
        else:
            target.data = pcm16.astype("<i2").tobytes()
    else:  # AudioStamped (mgonzs13): typed data plus its format
        msg.audio.audio_data.int16_data = pcm16.tolist()
        msg.audio.info.format, msg.audio.info.channels = _PA_INT16, channels
        msg.audio.info.rate, msg.audio.info.chunk = int(sample_rate), len(samples)
    if stamp is not None and hasattr(msg, "header"):
        msg.header.stamp = stamp
    return msg


class StreamResampler:
    """Chunk-by-chunk resampling of one continuous stream to 16 kHz, without clicks at chunk boundaries.

    Resampling each chunk on its own would restart the filters every chunk (an audible tick, and a bright line in
    the log-mel features every 50 ms); here the anti-alias filter state and the interpolation phase carry over.
    Anti-aliasing is an 8th-order Butterworth low-pass at 0.45 x the output rate (speech above 7.2 kHz barely
    matters to the 128-band mel front-end), then linear interpolation at the output instants.
    """

    def __init__(self, target_rate: int = 16_000):
        self.target_rate = target_rate
        self.rate = None

    def _start(self, rate: int) -> None:
        from scipy.signal import butter

        self.rate = rate
        self._sos = butter(8, 0.45 * self.target_rate, fs=rate, output="sos") if rate > self.target_rate else None
        self._zi = None if self._sos is None else np.zeros((self._sos.shape[0], 2))
        self._last = 0.0  # last filtered input sample of the previous chunk
        self._phase = 0.0  # position of the next output sample, in input samples after `_last`

    def __call__(self, samples: np.ndarray, rate: int) -> np.ndarray:
        """Resample the next chunk of the stream (float32 mono at `rate`); a new rate restarts the stream."""
        if rate == self.target_rate:
            return np.asarray(samples, np.float32)
        if rate != self.rate:
            self._start(rate)
        x = np.asarray(samples, np.float64)
        if self._sos is not None:
            from scipy.signal import sosfilt

            x, self._zi = sosfilt(self._sos, x, zi=self._zi)
        signal = np.concatenate([[self._last], x])  # index 0 is the previous chunk's last sample
        step = rate / self.target_rate
        positions = np.arange(self._phase, len(signal) - 1, step)
        out = np.interp(positions, np.arange(len(signal)), signal)
        self._phase = (positions[-1] + step - (len(signal) - 1)) if len(positions) else self._phase - len(x)
        self._last = signal[-1]
        return out.astype(np.float32)
