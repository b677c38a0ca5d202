"""The numpy log-mel front-end against librosa (the shipped checkpoint was trained on librosa's features), and the
robot runtime without librosa: the gesture node's inference path must not import it (nor torch).

The numpy front-end sums each mel filter's products in another order than librosa's BLAS matrix product: the mel
power differs by a few float32 ulps (measured < 5e-7 relative), which can move a stored float16 dB value by one step
in a rare bin (none in the 390,144 bins of the 12 TED clips; 3 of 384 for a single sample, whose flat spectrum
puts many bins at the same level).
"""
import subprocess
import sys
import textwrap
import warnings

import librosa
import numpy as np
import pytest
import scipy.signal

from ha2g_model import audio as A

FLOAT16_STEP_AT_80_DB = 0.0625


def librosa_mel_power(audio):
    return librosa.feature.melspectrogram(y=audio, sr=A.SAMPLE_RATE, n_fft=A.N_FFT, hop_length=A.HOP_LENGTH,
                                          power=2.0, n_mels=A.N_MELS)


def librosa_log_mel(audio, ref=None):
    """ha2g_model.audio.log_mel as it was written with librosa."""
    db = librosa.power_to_db(librosa_mel_power(audio), ref=np.max if ref is None else ref, top_db=A.TOP_DB)
    return db.astype(np.float16).astype(np.float32)


def assert_matches_librosa(audio, ref=None):
    power = A.mel_power(audio)
    np.testing.assert_allclose(power, librosa_mel_power(audio), rtol=1e-5, atol=0)
    spec, reference = A.log_mel(audio, ref=ref), librosa_log_mel(audio, ref=ref)
    assert spec.shape == reference.shape == (A.N_MELS, 1 + len(audio) // A.HOP_LENGTH)
    assert spec.dtype == np.float32
    np.testing.assert_allclose(spec, reference, rtol=0, atol=FLOAT16_STEP_AT_80_DB)
    return spec, reference


def test_window_and_mel_basis_are_librosas():
    np.testing.assert_array_equal(A.hann_window(), scipy.signal.get_window("hann", A.N_FFT))
    basis = A.mel_basis()
    np.testing.assert_array_equal(basis, librosa.filters.mel(sr=A.SAMPLE_RATE, n_fft=A.N_FFT, n_mels=A.N_MELS))
    assert A.mel_basis() is basis  # built once per process, not per call
    bins, weights, starts = A.mel_bands()
    sparse = np.zeros_like(basis)
    sparse[np.repeat(np.arange(A.N_MELS), np.diff(starts, append=len(bins))), bins] = weights
    np.testing.assert_array_equal(sparse, basis)


def test_real_speech_matches_librosa(ted_culture_clips):
    for clip in ted_culture_clips[:4]:
        audio = clip["audio"].astype(np.float32) / 32767
        spec, reference = assert_matches_librosa(audio)
        assert np.mean(spec == reference) > 0.9999  # a float16 step apart in a rare bin at most
        assert spec.max() == 0.0 and spec.min() >= -A.TOP_DB
        # the engine's streaming path: one window at a fixed reference
        assert_matches_librosa(audio[16000:16000 + A.WINDOW_SAMPLES], ref=1.0)


def test_espeak_speech_matches_librosa(speech):
    audio = speech[0]
    assert_matches_librosa(audio)
    assert_matches_librosa(audio[:A.WINDOW_SAMPLES], ref=1.0)


@pytest.mark.parametrize("case", ["one sample", "shorter than a frame", "one hop", "silence", "clipping",
                                  "dc offset", "noise"])
def test_edge_cases_match_librosa(case):
    rng = np.random.default_rng(0)
    audio = {"one sample": np.float32([0.5]),
             "shorter than a frame": rng.uniform(-0.5, 0.5, 700).astype(np.float32),
             "one hop": rng.uniform(-0.5, 0.5, A.HOP_LENGTH).astype(np.float32),
             "silence": np.zeros(A.WINDOW_SAMPLES, np.float32),
             "clipping": np.clip(4 * np.sin(np.arange(A.WINDOW_SAMPLES) / 3), -1, 1).astype(np.float32),
             "dc offset": np.full(5000, 0.8, np.float32),
             "noise": (0.1 * rng.standard_normal(A.WINDOW_SAMPLES)).astype(np.float32)}[case]
    with warnings.catch_warnings():  # librosa warns that n_fft exceeds the shortest inputs
        warnings.simplefilter("ignore", UserWarning)
        assert_matches_librosa(audio, ref=1.0)
        if case != "silence":
            assert_matches_librosa(audio)
    if case == "silence":
        assert np.all(A.log_mel(audio, ref=1.0) == 10 * np.log10(A.AMIN))  # the power floor, -100 dB


RUNTIME = """
import sys

import numpy as np

import ha2g_ros.gesture_node  # noqa: F401
import ha2g_ros.retargeting  # noqa: F401

assert "librosa" not in sys.modules, "importing the gesture node imported librosa"
from ha2g_model.engine import GestureEngine

engine = GestureEngine.from_checkpoint(None, backend="onnxruntime")
t = np.arange(3 * 16000) / 16000
speech = (0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)
engine.push_audio(speech)
_, frames = engine.pull_frames()
assert len(frames), "no window was generated"
whole = engine.generate_utterance(speech)
heavy = ("librosa", "numba", "torch")
print(engine.backend.name, len(frames), len(whole), *[name for name in heavy if name in sys.modules])
"""


def test_robot_runtime_imports_neither_librosa_nor_torch():
    pytest.importorskip("rclpy")
    pytest.importorskip("onnxruntime")
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(RUNTIME)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    backend, streamed, whole, *imported = done.stdout.split()
    assert backend == "onnxruntime" and int(streamed) > 0 and int(whole) > 0
    assert imported == [], f"the robot runtime imported {imported}"
