"""ha2g-generate end to end on a real speech file with a tiny random checkpoint, and the word-timing readers."""
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from ha2g_model.checkpoint import save_checkpoint
from ha2g_model.config import HA2GConfig
from ha2g_model.generate_cli import main
from ha2g_model.model import HA2G
from ha2g_model.render import find_ffmpeg
from ha2g_model.text import Vocab
from ha2g_model.words import read_words, words_from_text

WORDS = ["we", "move", "our", "hands", "when", "we", "speak"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = HA2G(HA2GConfig.preset("tiny_expressive"))
    vocab = Vocab(sorted(set(WORDS)))
    vocab = Vocab(sorted(set(WORDS)) + [f"x{i}" for i in range(model.config.n_words - len(vocab))])
    return save_checkpoint(tmp_path_factory.mktemp("ckpt"), model, vocab)


@pytest.fixture(scope="module")
def speech_file(tmp_path_factory, ted_culture_clips):
    """A real clip written as a 22.05 kHz stereo WAV, so resampling and down-mixing are exercised too."""
    from ha2g_model.audio import resample

    audio = ted_culture_clips[0]["audio"][:16000 * 4].astype(np.float32) / 32768
    audio = resample(audio, 16000, 22050)
    path = tmp_path_factory.mktemp("audio") / "speech.wav"
    soundfile.write(path, np.stack((audio, 0.5 * audio), axis=1), 22050)
    return path


def test_generate_writes_sequence_json_and_video(tmp_path, checkpoint, speech_file, capsys):
    words = tmp_path / "words.json"
    words.write_text(json.dumps([{"word": w, "start": 0.5 * i, "end": 0.5 * i + 0.4} for i, w in enumerate(WORDS)]))
    video = "mp4" if find_ffmpeg() else "gif"
    out = tmp_path / "out"
    assert main([str(speech_file), "--words", str(words), "--out", str(out), "--checkpoint", str(checkpoint),
                 "--backend", "torch", "--video", video]) == 0
    with np.load(out / "gestures.npz") as result:
        directions = result["directions"]
        assert directions.shape == (60, 42, 3)  # 4 s at 15 fps
        assert str(result["skeleton"]) == "ted_expressive" and int(result["fps"]) == 15
    np.testing.assert_allclose(np.linalg.norm(directions, axis=-1), 1.0, atol=1e-5)
    meta = json.loads((out / "gestures.json").read_text())
    assert meta["n_frames"] == 60 and len(meta["joint_names"]) == 43 and len(meta["words"]) == len(WORDS)
    np.testing.assert_allclose(np.array(meta["directions"]), directions, atol=1e-5)
    assert (out / f"gestures.{video}").stat().st_size > 10_000
    if video == "mp4":
        import imageio.v2 as imageio

        reader = imageio.get_reader(out / "gestures.mp4")
        assert reader.count_frames() == 60
        probe = __import__("subprocess").run([find_ffmpeg(), "-i", str(out / "gestures.mp4")],
                                             capture_output=True, text=True).stderr
        assert "Audio:" in probe  # the speech is muxed in


def test_text_without_timings_and_no_video(tmp_path, checkpoint, speech_file):
    out = tmp_path / "out"
    # the module runs with one torch thread (fixture, which restores the count afterwards): ask for two
    assert main([str(speech_file), "--text", "we move our hands", "--out", str(out), "--checkpoint",
                 str(checkpoint), "--backend", "torch", "--video", "none", "--seed", "1", "--threads", "2"]) == 0
    assert torch.get_num_threads() == 2  # --threads reached the backend
    assert sorted(p.name for p in out.iterdir()) == ["gestures.json", "gestures.npz"]


@pytest.mark.parametrize("content, message", [(b"this is not audio", "cannot read audio file"),
                                              (None, "does not exist")])
def test_unreadable_audio_is_a_clear_error(tmp_path, checkpoint, capsys, content, message):
    path = tmp_path / "speech.wav"
    if content is not None:
        path.write_bytes(content)
    assert main([str(path), "--out", str(tmp_path / "out"), "--checkpoint", str(checkpoint)]) == 2
    assert message in capsys.readouterr().err


def test_missing_checkpoint_is_a_clear_error(tmp_path, speech_file, capsys):
    assert main([str(speech_file), "--out", str(tmp_path), "--checkpoint", str(tmp_path / "nothing")]) == 2
    assert "no HA2G checkpoint" in capsys.readouterr().err


def test_a_gif_longer_than_its_limit_is_refused_before_generating(tmp_path, checkpoint, speech_file, capsys,
                                                                  monkeypatch):
    from ha2g_model import render

    monkeypatch.setattr(render, "MAX_GIF_FRAMES", 30)  # the 4 s file has 60 frames
    assert main([str(speech_file), "--out", str(tmp_path / "out"), "--checkpoint", str(checkpoint),
                 "--video", "gif"]) == 2
    assert "a GIF holds every frame in memory" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def long_speech(ted_culture_clips):
    """~50 s of real speech (the clips one after another), 16 kHz mono float32."""
    audio = np.concatenate([clip["audio"].astype(np.float32) / 32768 for clip in ted_culture_clips])
    return audio[:16000 * 50]


def test_long_files_are_generated_in_overlapping_segments(tmp_path, checkpoint, long_speech, monkeypatch):
    """With 20 s segments (5 minutes in use), 50 s of 44.1 kHz stereo: the first segment's frames are exactly the
    whole-utterance frames of its audio (read and resampled in blocks, nothing shifted), the segments join into
    round(50 * 15) unit-length frames, and a silent stretch of a long file is the rest pose, not an error."""
    from ha2g_model import generate_cli
    from ha2g_model.audio import resample
    from ha2g_model.engine import GestureEngine

    monkeypatch.setattr(generate_cli, "SEGMENT_S", 20)
    audio = long_speech.copy()
    audio[16000 * 21:16000 * 31] = 0.0  # the second segment (12-32 s) ends in silence, the third (24-44 s) too
    audio[16000 * 24:16000 * 44] = 0.0
    stereo = resample(audio, 16000, 44100)
    path = tmp_path / "long.wav"
    soundfile.write(path, np.stack((stereo, 0.5 * stereo), axis=1), 44100, subtype="FLOAT")
    out = tmp_path / "out"
    assert main([str(path), "--out", str(out), "--checkpoint", str(checkpoint), "--backend", "torch",
                 "--video", "none", "--no-fade"]) == 0
    with np.load(out / "gestures.npz") as result:
        directions = result["directions"]
    assert directions.shape == (750, 42, 3)
    np.testing.assert_allclose(np.linalg.norm(directions, axis=-1), 1.0, atol=1e-5)
    engine = GestureEngine.from_checkpoint(checkpoint, backend="torch")
    mono = resample(0.75 * stereo, 44100)
    first = engine.generate_utterance(mono[:16000 * 20], fade_to_rest=False)
    np.testing.assert_allclose(directions[:240], first[:240], atol=1e-4)  # before the cross-fade (16-20 s)
    rest = engine.skeleton.rest_directions()
    np.testing.assert_allclose(directions[32 * 15:36 * 15], np.broadcast_to(rest, (60, 42, 3)), atol=1e-5)
    assert not np.allclose(directions[45 * 15:], rest, atol=1e-3)  # the speech after the silence moves again


@pytest.mark.slow
def test_an_hour_of_audio_takes_no_more_memory_than_ten_minutes(tmp_path):
    """ha2g-generate (shipped checkpoint, no video) in a fresh process: its peak resident memory (VmHWM, read until
    it exits) for 60 minutes of audio is within 100 MB of that for 10 minutes (the whole-file path grew by gigabytes
    per hour). What remains is the output itself: 27 MB of frames per hour."""
    import subprocess
    import sys
    import time

    t = np.arange(16000 * 60) / 16000  # a minute of a modulated tone, repeated
    minute = (0.3 * np.sin(2 * np.pi * 180 * t * (1 + 0.2 * np.sin(2 * np.pi * 0.5 * t)))
              * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    peaks = {}
    for minutes in (10, 60):
        path = tmp_path / f"{minutes}.wav"
        with soundfile.SoundFile(path, "w", 16000, 1, "PCM_16") as f:
            for _ in range(minutes):
                f.write(minute)
        log = tmp_path / f"{minutes}.log"
        with open(log, "w") as output:
            process = subprocess.Popen([sys.executable, "-m", "ha2g_model.generate_cli", str(path), "--out",
                                        str(tmp_path / f"out{minutes}"), "--video", "none"],
                                       stdout=output, stderr=subprocess.STDOUT)
            peak = 0
            while process.poll() is None:  # wait4's ru_maxrss would include what pytest had when it forked
                status = (Path("/proc") / str(process.pid) / "status").read_text()
                peak = max([peak] + [int(line.split()[1]) for line in status.splitlines()
                                     if line.startswith("VmHWM:")])
                time.sleep(0.02)
        assert process.returncode == 0, log.read_text()[-2000:]
        peaks[minutes] = peak / 1024  # MB
    assert peaks[60] - peaks[10] < 100, peaks


# --- word timing files -----------------------------------------------------------------------------------------------

TEXTGRID_LONG = '''File type = "ooTextFile"
Object class = "TextGrid"

xmin = 0
xmax = 2.5
tiers? <exists>
size = 2
item []:
    item [1]:
        class = "IntervalTier"
        name = "phones"
        xmin = 0
        xmax = 2.5
        intervals: size = 1
        intervals [1]:
            xmin = 0
            xmax = 2.5
            text = "x"
    item [2]:
        class = "IntervalTier"
        name = "words"
        xmin = 0
        xmax = 2.5
        intervals: size = 4
        intervals [1]:
            xmin = 0
            xmax = 0.3
            text = ""
        intervals [2]:
            xmin = 0.3
            xmax = 1.1
            text = "hello"
        intervals [3]:
            xmin = 1.1
            xmax = 1.6
            text = "sil"
        intervals [4]:
            xmin = 1.6
            xmax = 2.5
            text = "a ""quoted"" word"
'''

TEXTGRID_SHORT = '''File type = "ooTextFile"
Object class = "TextGrid"

0
2.5
<exists>
1
"IntervalTier"
"words"
0
2.5
2
0.3
1.1
"hello"
1.6
2.5
"world"
'''


def test_textgrid_long_and_short(tmp_path):
    long_path = tmp_path / "long.TextGrid"
    long_path.write_text(TEXTGRID_LONG, encoding="utf-16")  # Praat writes UTF-16 for non-ASCII text
    assert read_words(long_path) == [("hello", 0.3, 1.1), ('a "quoted" word', 1.6, 2.5)]
    short_path = tmp_path / "short.TextGrid"
    short_path.write_text(TEXTGRID_SHORT)
    assert read_words(short_path) == [("hello", 0.3, 1.1), ("world", 1.6, 2.5)]
    broken = tmp_path / "broken.TextGrid"
    broken.write_text(TEXTGRID_SHORT[:TEXTGRID_SHORT.index('"hello"')])
    with pytest.raises(ValueError, match="ends early"):
        read_words(broken)


def test_tsv_json_and_errors(tmp_path):
    tsv = tmp_path / "words.tsv"
    tsv.write_text("word\tstart\tend\n# a comment\nhello\t0.5\t0.9\nworld\t1.0\t1.4\n")
    assert read_words(tsv) == [("hello", 0.5, 0.9), ("world", 1.0, 1.4)]
    audacity = tmp_path / "labels.txt"
    audacity.write_text("1.0\t1.4\tworld\n0.5\t0.9\thello\n")
    assert read_words(audacity) == [("hello", 0.5, 0.9), ("world", 1.0, 1.4)]
    whisper = tmp_path / "whisper.json"
    whisper.write_text(json.dumps({"segments": [{"words": [{"word": " hi", "start": 0.1, "end": 0.3}]}]}))
    assert read_words(whisper) == [("hi", 0.1, 0.3)]
    pairs = tmp_path / "pairs.json"
    pairs.write_text(json.dumps([["b", 1, 2], ["a", 0, 1]]))
    assert read_words(pairs) == [("a", 0.0, 1.0), ("b", 1.0, 2.0)]
    bad = tmp_path / "bad.tsv"
    bad.write_text("hello\t0.5\t0.9\nworld\t1.4\t1.0\n")
    with pytest.raises(ValueError, match="bad.tsv:2.*ends before it starts"):
        read_words(bad)
    subtitles = tmp_path / "words.srt"
    subtitles.write_text("1\n00:00:00,000 --> 00:00:01,000\nhello\n")
    with pytest.raises(ValueError, match="unknown word timing format"):
        read_words(subtitles)
    with pytest.raises(FileNotFoundError):
        read_words(tmp_path / "missing.json")


def test_words_from_text_cover_the_duration():
    words = words_from_text("one two three", 3.0)
    assert [w for w, _, _ in words] == ["one", "two", "three"]
    assert words[0][1] == 0.0 and words[-1][2] == pytest.approx(3.0)
    assert all(a[2] == pytest.approx(b[1]) for a, b in zip(words, words[1:]))
    with pytest.raises(ValueError, match="empty"):
        words_from_text("   ", 3.0)
