"""ha2g-generate end to end on a real speech file with a tiny random checkpoint, and the word-timing readers."""
import json

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
