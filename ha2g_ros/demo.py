"""The main job: a robot gesturing to speech, end to end through ROS 2, checked and filmed. `ha2g-demo`

1. Synthesises the bundled speech sample with espeak-ng (offline), with word timings.
2. Runs the bringup (microphone node as a `file` source + gesture node, one params file) on the default robot,
   and a recorder node that keeps every published trajectory, the preview joint states and the timing reports.
3. Checks each trajectory as joint_trajectory_controller would, and the executed motion against the URDF limits.
4. Writes demo.mp4 / demo.gif (the robot beside the human skeleton it imitates, with the speech where ffmpeg is
   available), a summary JSON and the recorded trajectories (NPZ).

ROS traffic stays on this machine: the demo forces ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST and, unless set, a
ROS_DOMAIN_ID of its own.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16_000
ESPEAK_RATE = 22_050  # espeak-ng's output rate
# Two paragraphs with a long pause between them: the robot gestures, comes to rest in the silence, resumes.
SPEECH = (
    ("Hello, and welcome to this little demonstration.",
     "I am a robot, and I move my arms while I speak, the way people do.",
     "A wide gesture for something big, and a small one for a detail."),
    ("After a short silence, my arms come to rest.",
     "Then I start again, and the gestures come back smoothly."),
)
SENTENCE_GAP_S = 0.35
PARAGRAPH_GAP_S = 3.0  # longer than the VAD hangover + fade-out: the robot reaches its rest pose
SILENCE_DB = -50.0


def _espeak(text: str, voice: str = "en-us", speed: int = 150) -> np.ndarray:
    """espeak-ng speech for `text` as float32 at 22.05 kHz, without the final sentence pause (-z)."""
    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is not installed (apt install espeak-ng): it synthesises the demo's speech")
    import soundfile

    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-z", "-w", str(wav), text], check=True,
                       capture_output=True)
        audio, rate = soundfile.read(wav, dtype="float32")
    if rate != ESPEAK_RATE:
        raise RuntimeError(f"espeak-ng wrote {rate} Hz audio, expected {ESPEAK_RATE}")
    return audio


def _voiced_span(audio: np.ndarray, rate: int) -> tuple[int, int]:
    """First and one-past-last sample of the part louder than SILENCE_DB (10 ms frames)."""
    hop = rate // 100
    n = len(audio) // hop
    level = 10 * np.log10(np.mean(audio[: n * hop].reshape(n, hop) ** 2, axis=1) + 1e-12)
    loud = np.flatnonzero(level > SILENCE_DB)
    if not len(loud):
        return 0, 0
    return loud[0] * hop, (loud[-1] + 1) * hop


def synthesize_sentence(sentence: str) -> tuple[np.ndarray, list[tuple[str, float, float]]]:
    """One sentence at 16 kHz (silence trimmed) and its word timings.

    espeak-ng's command line reports no word timings, so each word's end is measured as the voiced length of the
    sentence's prefix ending with that word (same voice, same speed, no final pause): prosody within a sentence
    barely depends on what follows, so prefix ends land within a few tens of milliseconds of the true boundaries.
    """
    from scipy.signal import resample_poly

    audio = _espeak(sentence)
    start, end = _voiced_span(audio, ESPEAK_RATE)
    words = sentence.split()
    ends = []
    for k in range(1, len(words)):
        _, prefix_end = _voiced_span(_espeak(" ".join(words[:k])), ESPEAK_RATE)
        ends.append(min(max(prefix_end - start, 0), end - start) / ESPEAK_RATE)
    ends.append((end - start) / ESPEAK_RATE)
    ends = np.maximum.accumulate(ends)
    timed, t = [], 0.0
    for word, word_end in zip(words, ends):
        timed.append((word.strip(".,:;!?"), t, float(max(word_end, t + 0.05))))
        t = timed[-1][2]
    speech = resample_poly(audio[start:end], 320, 441).astype(np.float32)  # 22.05 kHz -> 16 kHz
    return speech, timed


def synthesize_speech(out_dir: Path, paragraphs=SPEECH) -> tuple[Path, Path]:
    """The speech sample (speech.wav, 16 kHz mono) and its word timings (speech.json, transcript JSON form)."""
    import soundfile

    from ha2g_ros.transcript import to_json

    out_dir.mkdir(parents=True, exist_ok=True)
    pieces, words, t = [np.zeros(int(0.5 * SAMPLE_RATE), np.float32)], [], 0.5
    for p, paragraph in enumerate(paragraphs):
        for s, sentence in enumerate(paragraph):
            speech, timed = synthesize_sentence(sentence)
            words += [(w, t + a, t + b) for w, a, b in timed]
            gap = PARAGRAPH_GAP_S if s == len(paragraph) - 1 and p < len(paragraphs) - 1 else SENTENCE_GAP_S
            pieces += [speech, np.zeros(int(gap * SAMPLE_RATE), np.float32)]
            t += (len(speech) + len(pieces[-1])) / SAMPLE_RATE
    audio = np.concatenate(pieces)
    wav, transcript = out_dir / "speech.wav", out_dir / "speech.json"
    soundfile.write(wav, 0.8 * audio / max(1e-6, np.abs(audio).max()), SAMPLE_RATE, subtype="PCM_16")
    transcript.write_text(to_json(words))
    return wav, transcript
