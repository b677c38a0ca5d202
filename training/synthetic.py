"""A SYNTHETIC speech-gesture corpus: espeak-ng speech with exact word timings and procedural gestures.

This is not real data and is never presented as such (its windows carry source="synthetic"). It exists to test the
pipeline end to end and to add volume where real data is scarce: its gestures obey, by construction, the speech-motion
relations a model should pick up from real talks:
  * beats: every audio onset (librosa onset detection on the synthesised speech) triggers a stroke of one or both
    arms whose apex lies on the onset;
  * amplitude follows loudness: stroke size and the slow movement scale with the RMS loudness around the onset
    (loudness itself is varied per word, like emphasis);
  * silence is rest: arms drift back toward the speaker's rest pose between phrases.
Word timings come from espeak-ng's own word events (libespeak-ng via ctypes, synchronous mode), so they are exact.
Each synthetic speaker has a voice (variant, pitch, rate) and a gesture style (handedness, amplitude, rest pose).

    python -m training.synthetic --out data/synthetic_windows --sequences 300 --seed 0
"""
from __future__ import annotations

import argparse
import ctypes
import ctypes.util
from dataclasses import dataclass

import librosa
import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.signal import resample_poly
from tqdm import tqdm

from ha2g_model.skeleton import FPS, TED_EXPRESSIVE, Skeleton
from training.metrics import loudness
from training.windows import SAMPLE_RATE, Sequence, write_dataset

# --- espeak-ng through its C API: the CLI does not report word timings -------------------------------------------

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_EVENT_LIST_TERMINATED, _EVENT_WORD = 0, 1


class _Event(ctypes.Structure):  # espeak_EVENT of speak_lib.h
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", ctypes.c_char * 8)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


class Espeak:
    """Synthesises text to 16 kHz audio and returns the word timings espeak-ng reports while speaking."""

    def __init__(self):
        name = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
        try:
            self._lib = ctypes.CDLL(name)
        except OSError as e:
            raise RuntimeError("libespeak-ng not found: install espeak-ng (apt-get install espeak-ng)") from e
        self.native_rate = self._lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, None, 0)
        if self.native_rate <= 0:
            raise RuntimeError("espeak_Initialize failed (is espeak-ng-data installed?)")
        self._chunks: list[np.ndarray] = []
        self._words: list[tuple[int, int, int]] = []  # (text position, length, audio ms)
        self._callback = _CALLBACK(self._on_audio)  # keep a reference: espeak calls it from C
        self._lib.espeak_SetSynthCallback(self._callback)

    def _on_audio(self, wav, n, events) -> int:
        if n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            if events[i].type == _EVENT_WORD:
                self._words.append((events[i].text_position, events[i].length, events[i].audio_position))
            i += 1
        return 0

    def synthesize(self, text: str, voice: str = "en-us", rate: int = 170, pitch: int = 50
                   ) -> tuple[np.ndarray, list[tuple[str, float, float]]]:
        """(audio float32 16 kHz, [(word, start_s, end_s)]). Word ends are trimmed to the end of their sound."""
        if not text.strip():
            raise ValueError("cannot synthesise empty text")
        if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"espeak-ng has no voice {voice!r} (see `espeak-ng --voices`)")
        self._lib.espeak_SetParameter(1, int(rate), 0)  # espeakRATE, words per minute
        self._lib.espeak_SetParameter(3, int(pitch), 0)  # espeakPITCH, 0..100
        self._chunks, self._words = [], []
        data = text.encode("utf-8")
        if self._lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, 0, None, None) != 0:
            raise RuntimeError(f"espeak_Synth failed for {text!r}")
        audio = np.concatenate(self._chunks).astype(np.float32) / 32768.0
        audio = resample_poly(audio, SAMPLE_RATE, self.native_rate).astype(np.float32)
        return audio, self._timed_words(data, audio)

    def _timed_words(self, data: bytes, audio: np.ndarray) -> list[tuple[str, float, float]]:
        starts = [ms / 1000.0 for _, _, ms in self._words]
        ends = starts[1:] + [len(audio) / SAMPLE_RATE]
        hop = SAMPLE_RATE // 100  # 10 ms
        loud = librosa.feature.rms(y=audio, frame_length=2 * hop, hop_length=hop, center=False)[0]
        voiced = loud > 0.02 * max(loud.max(), 1e-6)
        words = []
        for (pos, length, _), start, end in zip(self._words, starts, ends):
            word = data[pos - 1:pos - 1 + length].decode("utf-8", "replace").strip(".,;:!?\"' ")
            # a word's sound ends at the last voiced 10 ms before the next word starts (pauses are not words)
            frames = np.nonzero(voiced[int(start * 100):int(end * 100)])[0]
            if word and len(frames):
                words.append((word.lower(), start, max(start + 0.01, start + (int(frames[-1]) + 1) / 100)))
        return words


# --- text --------------------------------------------------------------------------------------------------------

_SUBJECTS = ("we", "people", "my friends", "the students", "everyone", "scientists", "the city", "our team",
             "my grandmother", "this idea", "the world", "a small company", "nobody", "you")
_VERBS = ("changed", "discovered", "built", "imagined", "forgot", "needed", "explained", "found", "loved",
          "measured", "questioned", "shared", "started", "believed in", "tried")
_OBJECTS = ("a better way", "the future", "something new", "every single day", "the whole problem",
            "a simple machine", "this moment", "the numbers", "a story", "the answer", "their own voice",
            "an entire generation", "the ocean", "small things")
_TAILS = ("", "", "and it worked", "but nobody listened", "because it mattered", "again and again",
          "right here", "in just one year", "and that is the point", "for the very first time")
_OPENERS = ("", "", "so", "and", "now", "you know,", "honestly,", "but", "in fact,", "imagine:")


def random_sentence(rng: np.random.Generator) -> str:
    parts = [rng.choice(_OPENERS), rng.choice(_SUBJECTS), rng.choice(_VERBS), rng.choice(_OBJECTS),
             rng.choice(_TAILS)]
    text = " ".join(p for p in parts if p)
    return text[0].upper() + text[1:] + rng.choice([".", ".", "!", "?"])


# --- gestures ----------------------------------------------------------------------------------------------------

VOICES = ("en-us", "en", "en-gb-scotland", "en-029", "en-gb-x-rp", "en-us+f3", "en+m3", "en-us+f2")


@dataclass
class GestureStyle:
    """A synthetic speaker's way of moving (angles in radians)."""

    amplitude: float  # overall stroke size
    left_share: float  # 0 = right-handed only, 1 = left-handed only, 0.5 = both arms
    lift: float  # resting forward lift of the upper arms
    spread: float  # resting sideways spread of the upper arms
    flex: float  # resting elbow flexion
    drift: float  # size of the slow, loudness-scaled wandering
    voice: str
    rate: int
    pitch: int

    @staticmethod
    def sample(rng: np.random.Generator) -> "GestureStyle":
        return GestureStyle(amplitude=float(rng.uniform(0.6, 1.4)), left_share=float(rng.uniform(0.15, 0.85)),
                            lift=float(rng.uniform(-0.1, 0.3)), spread=float(rng.uniform(-0.05, 0.2)),
                            flex=float(rng.uniform(0.0, 0.5)), drift=float(rng.uniform(0.1, 0.3)),
                            voice=str(rng.choice(VOICES)),
                            rate=int(rng.integers(140, 200)), pitch=int(rng.integers(25, 75)))


def _rot_x(a: np.ndarray) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([o, z, z], -1), np.stack([z, c, -s], -1), np.stack([z, s, c], -1)], -2)


def _rot_z(a: np.ndarray) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, -s, z], -1), np.stack([s, c, z], -1), np.stack([z, z, o], -1)], -2)


def gesture_for_speech(audio: np.ndarray, style: GestureStyle, rng: np.random.Generator) -> np.ndarray:
    """(T, 42, 3) TED Expressive unit directions at 15 fps whose beats and amplitude follow the speech.

    Built by rotating the mean pose's arm chains, in the TED Expressive frame (x = left, y = down, z = back).
    """
    skeleton = TED_EXPRESSIVE
    n = int(len(audio) / SAMPLE_RATE * FPS)
    t = np.arange(n) / FPS
    db = loudness(audio, n)
    level = np.clip((db + 45.0) / 35.0, 0.0, 1.0)  # 0 = silence (-45 dB), 1 = loud speech (-10 dB)
    onsets = librosa.onset.onset_detect(y=audio, sr=SAMPLE_RATE, units="time", backtrack=False)

    # strokes: a raised-cosine excursion (0.5 s) peaking on each onset, per arm, size ~ loudness there
    strokes = np.zeros((2, 3, n))  # arm (left, right) x (lift, spread, flex)
    for onset in onsets:
        frame = min(int(round(onset * FPS)), n - 1)
        size = style.amplitude * level[frame] * rng.uniform(0.6, 1.2)
        if size < 0.05:
            continue
        arms = [0] if rng.random() < style.left_share else [1]
        if rng.random() < 0.3:
            arms = [0, 1]
        shape = np.where(np.abs(t - onset) < 0.25, 0.5 * (1 + np.cos(np.pi * (t - onset) / 0.25)), 0.0)
        for arm in arms:
            strokes[arm] += np.outer(size * np.array([0.35, 0.12, 0.55]) * rng.uniform(0.5, 1.0, 3), shape)
    # slow wandering that grows with loudness and fades in silence
    envelope = gaussian_filter1d(level, 4.0)
    wander = gaussian_filter1d(rng.standard_normal((2, 3, n)), 8.0, axis=-1) * 4.0 * style.drift * envelope
    angles = np.clip(strokes + wander, -0.6, 1.4)

    rest = skeleton.rest_directions()
    out = np.repeat(rest[None], n, axis=0).astype(np.float64)
    names = skeleton.joint_names
    for arm, side, sign in ((0, "left", -1.0), (1, "right", 1.0)):
        lift = style.lift + angles[arm, 0]
        spread = style.spread + angles[arm, 1]
        flex = style.flex + angles[arm, 2]
        shoulder_rot = _rot_z(sign * spread) @ _rot_x(-lift)  # spread: away from the body; lift: forward (-z)
        elbow_rot = shoulder_rot @ _rot_x(-flex)
        upper = skeleton.bone_index(f"{side}_shoulder", f"{side}_elbow")
        out[:, upper] = np.einsum("tij,j->ti", shoulder_rot, rest[upper])
        wrist = names.index(f"{side}_wrist")
        below_elbow = [i for i, (p, c) in enumerate(skeleton.bones)
                       if i != upper and (c == wrist or _descends_from(skeleton, p, wrist))]
        # fingers curl a little more on strokes, as a hand closing on a beat
        curl = 0.3 * angles[arm, 2]
        for bone in below_elbow:
            rot = elbow_rot
            if skeleton.bones[bone][0] != names.index(f"{side}_elbow") and skeleton.bones[bone][0] != wrist:
                rot = elbow_rot @ _rot_x(-curl)
            out[:, bone] = np.einsum("tij,j->ti", rot, rest[bone])
    # head: a small nod on loud stretches
    nod = 0.15 * gaussian_filter1d(strokes.sum(axis=(0, 1)), 1.5)
    head = _head_joints(skeleton)
    for bone in [i for i, (_, c) in enumerate(skeleton.bones) if c in head]:
        out[:, bone] = np.einsum("tij,j->ti", _rot_x(nod), rest[bone])
    out /= np.linalg.norm(out, axis=-1, keepdims=True)
    return out.astype(np.float32)


def _descends_from(skeleton: Skeleton, joint: int, ancestor: int) -> bool:
    parent_of = {c: p for p, c in skeleton.bones}
    while joint in parent_of:
        if joint == ancestor:
            return True
        joint = parent_of[joint]
    return joint == ancestor


def _head_joints(skeleton: Skeleton) -> set[int]:
    """The nose and every joint below it (eyes, ears, head top)."""
    nose = skeleton.joint_names.index("nose")
    return {j for j in range(skeleton.n_joints) if _descends_from(skeleton, j, nose)}


# --- corpus ------------------------------------------------------------------------------------------------------

def make_sequence(espeak: Espeak, name: str, speaker: str, style: GestureStyle, rng: np.random.Generator,
                  seconds: float = 15.0) -> Sequence:
    """Sentences with pauses until about `seconds` of audio, per-word emphasis, and the gestures that follow it."""
    pieces, words, offset = [], [], 0.0
    while offset < seconds:
        audio, timed = espeak.synthesize(random_sentence(rng), style.voice, style.rate, style.pitch)
        gain = np.ones_like(audio)
        for _, start, end in timed:  # emphasis: random per-word loudness, smoothed so it does not click
            gain[int(start * SAMPLE_RATE):int(end * SAMPLE_RATE)] = rng.choice([0.35, 0.6, 1.0, 1.0, 1.6])
        gain = gaussian_filter1d(gain, SAMPLE_RATE * 0.01)
        audio = audio * gain
        pause = np.zeros(int(rng.uniform(0.2, 0.9) * SAMPLE_RATE), dtype=np.float32)
        pieces += [audio, pause]
        words += [(w, s + offset, e + offset) for w, s, e in timed]
        offset += (len(audio) + len(pause)) / SAMPLE_RATE
    audio = np.concatenate(pieces).astype(np.float32)
    audio *= 0.9 / max(np.abs(audio).max(), 1e-6)
    directions = gesture_for_speech(audio, style, rng)
    return Sequence(name=name, speaker=speaker, directions=directions, audio=audio, words=words, source="synthetic")


def make_corpus(n_sequences: int, n_speakers: int = 24, seed: int = 0, seconds: float = 15.0) -> list[Sequence]:
    """`n_sequences` TED Expressive sequences of about `seconds` each, spread over `n_speakers` synthetic speakers."""
    rng = np.random.default_rng(seed)
    styles = [GestureStyle.sample(rng) for _ in range(n_speakers)]
    espeak = Espeak()
    sequences = []
    for i in tqdm(range(n_sequences), desc="synthetic corpus", unit="seq"):
        k = i % n_speakers
        sequences.append(make_sequence(espeak, f"synth_{i:05d}", f"synth_speaker{k:03d}", styles[k], rng, seconds))
    return sequences


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="output directory of the windows data set")
    parser.add_argument("--sequences", type=int, default=300, help="number of sequences (about 15 s each)")
    parser.add_argument("--speakers", type=int, default=24)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    index = write_dataset(make_corpus(args.sequences, args.speakers, args.seed, args.seconds), args.out,
                          "ted_expressive")
    print(f"{args.out}: windows {index['windows']}, rejected {index['rejected']}")


if __name__ == "__main__":
    main()
