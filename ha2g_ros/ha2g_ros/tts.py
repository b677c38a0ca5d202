"""Text to speech with word timings, offline: espeak-ng (the demo's voice, ha2g-say's default, the tests' speech).
No ROS: training/ uses it too.

espeak-ng's command line gives audio only; each word's end is measured from the voiced length of the sentence's
prefix ending with that word (synthesize_sentence).
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from ha2g_ros.voice_activity import frame_levels_db

SAMPLE_RATE = 16_000
ESPEAK_RATE = 22_050  # espeak-ng's output rate
SENTENCE_GAP_S = 0.35
SILENCE_DB = -50.0
# The demo's speech (also in the English vocabulary and the espeak-ng coupling checks of training/): two paragraphs
# with a long pause between them, so the robot gestures, comes to rest in the silence and resumes.
SPEECH = (
    ("Hello, and welcome to this little demonstration.",
     "I am a robot, and I move my arms while I speak, the way people do.",
     "A wide gesture for something big, and a small one for a detail."),
    ("After a short silence, my arms come to rest.",
     "Then I start again, and the gestures come back smoothly."),
)
DEMO_PARAGRAPH_GAP_S = 3.0  # longer than the VAD hangover + fade-out: the robot reaches its rest pose


def espeak(text: str, voice: str = "en-us", speed: int = 150) -> np.ndarray:
    """espeak-ng speech for `text` as float32 at 22.05 kHz, without the final sentence pause (-z)."""
    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is not installed (apt install espeak-ng): it synthesises the robot's speech")
    import soundfile

    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-z", "-w", str(wav), text], check=True,
                       capture_output=True)
        audio, rate = soundfile.read(wav, dtype="float32")
    if rate != ESPEAK_RATE:
        raise RuntimeError(f"espeak-ng wrote {rate} Hz audio, expected {ESPEAK_RATE}")
    return audio


def voiced_span(audio: np.ndarray, rate: int) -> tuple[int, int]:
    """First and one-past-last sample of the part louder than SILENCE_DB (10 ms frames)."""
    hop = rate // 100
    loud = np.flatnonzero(frame_levels_db(audio, hop) > SILENCE_DB)
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

    audio = espeak(sentence)
    start, end = voiced_span(audio, ESPEAK_RATE)
    words = sentence.split()
    ends = []
    for k in range(1, len(words)):
        _, prefix_end = voiced_span(espeak(" ".join(words[:k])), ESPEAK_RATE)
        ends.append(min(max(prefix_end - start, 0), end - start) / ESPEAK_RATE)
    ends.append((end - start) / ESPEAK_RATE)
    ends = np.maximum.accumulate(ends)
    timed, t = [], 0.0
    for word, word_end in zip(words, ends):
        timed.append((word.strip(".,:;!?"), t, float(max(word_end, t + 0.05))))
        t = timed[-1][2]
    speech = resample_poly(audio[start:end], 320, 441).astype(np.float32)  # 22.05 kHz -> 16 kHz
    return speech, timed


def synthesize_paragraphs(paragraphs, lead_s: float = 0.5,
                          paragraph_gap_s: float = 1.0) -> tuple[np.ndarray, list[tuple[str, float, float]]]:
    """Speech for paragraphs of sentences (16 kHz mono, peak 0.8, `lead_s` of silence first) and its word timings:
    SENTENCE_GAP_S between sentences, paragraph_gap_s between paragraphs."""
    pieces, words, t = [np.zeros(int(lead_s * SAMPLE_RATE), np.float32)], [], lead_s
    for p, paragraph in enumerate(paragraphs):
        for s, sentence in enumerate(paragraph):
            speech, timed = synthesize_sentence(sentence)
            words += [(w, t + a, t + b) for w, a, b in timed]
            last = s == len(paragraph) - 1
            gap = 0.0 if last and p == len(paragraphs) - 1 else paragraph_gap_s if last else SENTENCE_GAP_S
            pieces += [speech, np.zeros(int(gap * SAMPLE_RATE), np.float32)]
            t += (len(speech) + len(pieces[-1])) / SAMPLE_RATE
    audio = np.concatenate(pieces)
    return (0.8 * audio / max(1e-6, np.abs(audio).max())).astype(np.float32), words
