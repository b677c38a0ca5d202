"""GestureEngine: whole-utterance windowing, streaming (chunking, lag, continuity), validation, checkpoints.

A randomly initialised tiny model stands in for a trained one: the windowing logic does not depend on the weights,
and the real speech comes from the shared TED clips (or a synthetic harmonic signal where they are absent).
"""
import numpy as np
import pytest
import torch

from ha2g_model.audio import log_mel, window_spectrogram
from ha2g_model.checkpoint import save_checkpoint
from ha2g_model.config import HA2GConfig
from ha2g_model.engine import DEFAULT_CHECKPOINT, EngineConfig, GestureEngine
from ha2g_model.model import HA2G
from ha2g_model.skeleton import TED_EXPRESSIVE, denormalize_directions, normalize_directions, offset_posture
from ha2g_model.text import Vocab

WORDS = ["so", "we", "move", "our", "hands", "when", "we", "speak", "about", "big", "ideas"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make_model(preset="tiny_expressive", seed=0):
    torch.manual_seed(seed)
    return HA2G(HA2GConfig.preset(preset)).eval()


@pytest.fixture(scope="module")
def model():
    return make_model()


@pytest.fixture(scope="module")
def vocab(model):
    vocab = Vocab(sorted(set(WORDS)))
    assert len(vocab) <= model.config.n_words
    return vocab


@pytest.fixture(scope="module")
def speech(request):
    """About 7.5 s of speech-like audio: a real clip when the shared data is there, else a voiced synthetic one."""
    try:
        return request.getfixturevalue("ted_culture_clips")[0]["audio"].astype(np.float32) / 32768
    except pytest.skip.Exception:  # no shared data beside this checkout: the windowing tests still run
        pass
    t = np.arange(int(7.5 * 16000)) / 16000
    envelope = 0.5 * (1 + np.sin(2 * np.pi * 3 * t)) ** 2
    return (0.2 * envelope * sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((140, 280, 420), 1))).astype(
        np.float32)


def timed_words(duration):
    step = duration / len(WORDS)
    return [(w, i * step, (i + 0.8) * step) for i, w in enumerate(WORDS)]


def stream(engine, audio, chunk, words=None):
    """Push `audio` in chunks of `chunk` samples, pulling after each; -> times, directions."""
    engine.reset()
    if words:
        engine.push_words(words)
    times, frames = [], []
    for i in range(0, len(audio), chunk):
        engine.push_audio(audio[i:i + chunk])
        t, f = engine.pull_frames()
        times.append(t)
        frames.append(f)
    return np.concatenate(times), np.concatenate(frames)


def eager_window(model, spec, start, seed):
    """The model's own window at frame `start` of the utterance log-mel `spec`: no words, speaker 0, z = mu."""
    with torch.inference_mode():
        return model.generate_window(torch.as_tensor(window_spectrogram(spec, start)[None]),
                                     torch.zeros(1, 34, dtype=torch.int64), torch.as_tensor(seed[None]),
                                     torch.zeros(1, dtype=torch.int64))[0].numpy()


def rest_seed():
    """The seed of an utterance's first window: 4 frames of the (normalised) rest pose."""
    rest = normalize_directions(TED_EXPRESSIVE.rest_directions(), TED_EXPRESSIVE)
    return np.repeat(rest[None], 4, axis=0).astype(np.float32)


# --- whole utterance -------------------------------------------------------------------------------------------------

def test_utterance_shape_units_and_determinism(model, vocab, speech):
    engine = GestureEngine(model, vocab)
    words = timed_words(len(speech) / 16000)
    out = engine.generate_utterance(speech, words)
    assert out.shape == (round(len(speech) / 16000 * 15), TED_EXPRESSIVE.n_bones, 3)
    np.testing.assert_allclose(np.linalg.norm(out, axis=-1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(out, engine.generate_utterance(speech, words))


def test_utterance_seed_makes_style_reproducible_and_different(model, speech):
    base = GestureEngine(model).generate_utterance(speech)
    seeded = GestureEngine(model, seed=3).generate_utterance(speech)
    np.testing.assert_array_equal(seeded, GestureEngine(model, seed=3).generate_utterance(speech))
    assert np.abs(seeded - base).max() > 1e-3
    assert np.abs(GestureEngine(model, seed=4).generate_utterance(speech) - seeded).max() > 1e-3


def test_style_per_utterance_gives_each_utterance_its_own_reproducible_style(model, speech):
    varied = GestureEngine(model, seed=3, style_per_utterance=True)
    first, second = varied.generate_utterance(speech), varied.generate_utterance(speech)
    assert np.abs(first - second).max() > 1e-3  # the same speech, said twice, is not gestured twice alike
    again = GestureEngine(model, seed=3, style_per_utterance=True)
    np.testing.assert_array_equal(again.generate_utterance(speech), first)  # the sequence of styles is the seed's
    np.testing.assert_array_equal(again.generate_utterance(speech), second)
    again.reconfigure(seed=3)  # a reconfigured engine starts the sequence again
    np.testing.assert_array_equal(again.generate_utterance(speech), first)
    fixed = GestureEngine(model, seed=3)
    np.testing.assert_array_equal(fixed.generate_utterance(speech), fixed.generate_utterance(speech))


def test_new_style_changes_the_stream_only_with_style_per_utterance(model, speech):
    def streamed(engine, new_style_at):
        frames = []
        for i in range(0, len(speech), 1600):
            if i == new_style_at:
                engine.new_style()
            engine.push_audio(speech[i:i + 1600])
            frames.append(engine.pull_frames()[1])
        return np.concatenate(frames)

    half = (len(speech) // 2) // 1600 * 1600
    for per_utterance, changed in ((False, False), (True, True)):
        plain = streamed(GestureEngine(model, seed=3, style_per_utterance=per_utterance), None)
        restyled = streamed(GestureEngine(model, seed=3, style_per_utterance=per_utterance), half)
        assert len(plain) == len(restyled) > 30
        cut = len(plain) // 2 - 10  # frames well before the new style: computed with the old one
        np.testing.assert_array_equal(plain[:cut], restyled[:cut])
        assert (np.abs(plain - restyled).max() > 1e-3) == changed


def test_utterance_words_and_speaker_change_the_motion(model, vocab, speech):
    engine = GestureEngine(model, vocab)
    silent_text = engine.generate_utterance(speech)
    assert np.abs(engine.generate_utterance(speech, timed_words(len(speech) / 16000)) - silent_text).max() > 1e-4
    engine.set_speaker(2)
    assert engine.speaker == 2
    assert np.abs(engine.generate_utterance(speech) - silent_text).max() > 1e-4


def test_utterance_fades_to_rest_and_starts_from_rest(model, speech):
    engine = GestureEngine(model, fade_frames=6)
    rest = TED_EXPRESSIVE.rest_directions()
    faded = engine.generate_utterance(speech, fade_to_rest=True)
    free = engine.generate_utterance(speech, fade_to_rest=False)
    np.testing.assert_allclose(faded[-1], rest, atol=1e-5)
    np.testing.assert_array_equal(faded[:-6], free[:-6])  # only the last fade_frames are touched
    assert np.abs(free[-1] - rest).max() > 1e-3


def test_utterance_windows_chain_on_their_seeds(model, speech):
    """Re-running the windows by hand: window 0 from the rest pose, window 1 seeded with window 0's last 4 frames,
    their 4 shared frames cross-faded, reproduce the engine's output."""
    out = GestureEngine(model).generate_utterance(speech, fade_to_rest=False)
    spec = log_mel(speech)
    first = eager_window(model, spec, 0, rest_seed())
    second = eager_window(model, spec, 30, first[30:34])
    ramp = (np.arange(1, 5) / 5)[:, None]
    expected = np.concatenate((first[:30], (1 - ramp) * first[30:34] + ramp * second[:4], second[4:30]))
    # frames 60.. are shared with window 2
    np.testing.assert_allclose(out[:60], denormalize_directions(expected, TED_EXPRESSIVE), atol=1e-5)


class WholeWindows:
    """A backend with only `run` (as tensorrt): the engine then runs whole windows one after another."""

    def __init__(self, backend):
        self.backend = backend

    def run(self, *inputs):
        return self.backend.run(*inputs)


def test_utterance_split_encoders_match_whole_windows(model, vocab, speech):
    """The encoders of all windows run batched on a helper thread, the level chain window by window: same output
    as whole windows in sequence (words and sampled style included, so every input of the split is exercised)."""
    speech = np.tile(speech, 2)  # several encoder batches
    words = timed_words(len(speech) / 16000)
    split = GestureEngine(model, vocab=vocab, seed=3)
    whole = GestureEngine(model, vocab=vocab, seed=3)
    whole.backend = WholeWindows(whole.backend)
    out = split.generate_utterance(speech, words)
    np.testing.assert_allclose(out, whole.generate_utterance(speech, words), atol=1e-5)
    assert split.last_compute_s > 0


def test_utterance_with_a_shorter_stride_seeds_each_window_where_it_starts(model, speech):
    """stride 20: window k+1 starts at frame 20(k+1), so its seed is window k's frames 20..23 (not its last 4)."""
    out = GestureEngine(model, stride_frames=20).generate_utterance(speech, fade_to_rest=False)
    spec = log_mel(speech)
    first = eager_window(model, spec, 0, rest_seed())
    second = eager_window(model, spec, 20, first[20:24])
    # frames 34..39 come from the second window alone (the third starts at 40)
    np.testing.assert_allclose(out[34:40], denormalize_directions(second[14:20], TED_EXPRESSIVE), atol=1e-5)


def test_utterance_of_any_length_and_sample_rate(model):
    engine = GestureEngine(model)
    rng = np.random.default_rng(0)
    short = (0.1 * rng.standard_normal(3000)).astype(np.float32)  # 0.19 s: shorter than one window
    assert engine.generate_utterance(short).shape[0] == 3
    audio_48k = (0.1 * rng.standard_normal(48000 * 3)).astype(np.float32)
    assert engine.generate_utterance(audio_48k, sample_rate=48000).shape[0] == 45


@pytest.mark.parametrize("bad, message", [
    (np.zeros((2, 16000), np.float32), "mono"),
    (np.full(16000, np.nan, np.float32), "NaN"),
    ((np.ones(16000) * 20000).astype(np.int16), "floating point"),
    (np.zeros(16000, np.float32), "silence"),
])
def test_utterance_rejects_bad_audio(model, bad, message):
    with pytest.raises(ValueError, match=message):
        GestureEngine(model).generate_utterance(bad)


def test_bad_words_are_rejected(model, vocab, speech):
    engine = GestureEngine(model, vocab)
    with pytest.raises(ValueError, match="ends before it starts"):
        engine.generate_utterance(speech, [("hello", 2.0, 1.0)])
    with pytest.raises(ValueError, match="empty word"):
        engine.push_words([("  ", 0.0, 1.0)])


# --- streaming -------------------------------------------------------------------------------------------------------

def test_stream_does_not_depend_on_chunk_size(model, vocab, speech):
    engine = GestureEngine(model, vocab, hop_frames=6, lookahead_frames=4)
    words = timed_words(len(speech) / 16000)
    t1, f1 = stream(engine, speech, 160, words)
    t2, f2 = stream(engine, speech, 7919, words)
    t3, f3 = stream(engine, speech, len(speech), words)
    np.testing.assert_array_equal(t1, t2)
    np.testing.assert_array_equal(t1, t3)
    np.testing.assert_allclose(f1, f2, atol=1e-6)
    np.testing.assert_allclose(f1, f3, atol=1e-6)


@pytest.mark.parametrize("hop, lookahead", [(4, 0), (4, 10), (10, 8), (15, 15), (30, 0)])
def test_stream_emits_every_frame_once_lagging_by_lookahead(model, speech, hop, lookahead):
    engine = GestureEngine(model, hop_frames=hop, lookahead_frames=lookahead)
    engine.reset()
    emitted = []
    for i in range(0, len(speech), 1000):
        engine.push_audio(speech[i:i + 1000])
        times, frames = engine.pull_frames()
        now_frame = engine.stream_time_s * 15
        if len(times):
            # nothing later than now - lookahead, and not more than a hop (+ the partial frame) behind it
            assert times[-1] * 15 <= now_frame - lookahead - 1 + 1e-9
            assert times[-1] * 15 >= now_frame - lookahead - hop - 2
        emitted.append(times)
        np.testing.assert_allclose(np.linalg.norm(frames, axis=-1), 1.0, atol=1e-5)
    frames_idx = np.round(np.concatenate(emitted) * 15).astype(int)
    np.testing.assert_array_equal(frames_idx, np.arange(len(frames_idx)))  # consecutive, from 0, no repeats


def test_stream_joins_emissions_without_jumps(model, speech):
    """The frame-to-frame change across emission boundaries is of the size of the changes inside emissions."""
    hop, lookahead = 8, 4
    engine = GestureEngine(model, hop_frames=hop, lookahead_frames=lookahead)
    times, frames = stream(engine, speech, 1600)
    steps = np.linalg.norm(np.diff(frames, axis=0), axis=-1).mean(axis=-1)  # mean bone direction change
    index = np.round(times * 15).astype(int)
    boundary = (index[1:] - hop + lookahead) % hop == 0  # first frame of each emission (after the first)
    assert boundary.sum() >= 5
    assert steps[boundary].max() <= 2.0 * np.percentile(steps[~boundary], 95)


def test_stream_starts_from_rest_and_reset_restarts(model, speech):
    engine = GestureEngine(model, hop_frames=10, lookahead_frames=5)
    t1, f1 = stream(engine, speech, 4000)
    engine.push_audio(speech[:5000])  # stream continues ...
    engine.reset()  # ... and restarts from scratch
    t2, f2 = stream(engine, speech, 4000)
    np.testing.assert_array_equal(t1, t2)
    np.testing.assert_allclose(f1, f2, atol=1e-6)
    assert engine.stream_time_s == pytest.approx(len(speech) / 16000)
    # the first emitted frame is pulled toward the rest pose it continues from
    rest = TED_EXPRESSIVE.rest_directions()
    assert np.abs(f1[0] - rest).mean() < np.abs(f1[len(f1) // 2] - rest).mean() + 1e-6


def test_idle_windows_do_not_run_the_model_and_emit_the_rest_pose(model, speech):
    """What the node asks in silence while the robot rests: the frames come on time, as the rest pose, without the
    model; when it no longer says idle, the model runs again from the rest pose, as a fresh stream starts."""
    engine = GestureEngine(model, hop_frames=6, lookahead_frames=4)
    half = len(speech) // 2
    idle_spans = []
    engine.push_audio(speech[:half])
    t1, f1 = engine.pull_frames(idle=lambda begin, end: idle_spans.append((begin, end)) or True)
    assert engine.windows_run == 0 and len(t1) > 20
    np.testing.assert_allclose(f1, np.broadcast_to(TED_EXPRESSIVE.rest_directions(), f1.shape), atol=1e-6)
    begins = [begin for begin, _ in idle_spans]  # each window: from its first frame not emitted yet ...
    assert begins[0] == 0 and np.all(np.diff(begins) > 0)
    assert idle_spans[-1][1] == pytest.approx(t1[-1] + 1 / 15 + 4 / 15)  # ... to its end: + the lookahead
    engine.push_audio(speech[half:])
    t2, f2 = engine.pull_frames(idle=lambda begin, end: False)
    assert engine.windows_run > 0 and t2[0] == pytest.approx(t1[-1] + 1 / 15)  # no frame lost or repeated
    assert np.isfinite(f2).all() and np.abs(f2 - TED_EXPRESSIVE.rest_directions()).max() > 1e-3


def test_stream_follows_whole_utterance_with_full_context(model, speech):
    """With a long lookahead every emitted frame has seen the same audio as the whole-utterance windows, so the
    stream stays close to the offline result (a random model diverges more than a trained one)."""
    whole = GestureEngine(model).generate_utterance(speech, fade_to_rest=False)
    engine = GestureEngine(model, hop_frames=10, lookahead_frames=20)
    _, live = stream(engine, speech, 1600)
    error = np.abs(live - whole[:len(live)]).mean()
    rest_error = np.abs(TED_EXPRESSIVE.rest_directions() - whole[:len(live)]).mean()
    assert error < rest_error


def test_stream_push_and_pull_from_two_threads(model, speech):
    """An audio thread pushes while another pulls: the frames are those of a single-threaded run."""
    import threading

    engine = GestureEngine(model, hop_frames=6, lookahead_frames=4)
    _, expected = stream(engine, speech, 1000)
    engine.reset()

    def producer():
        for i in range(0, len(speech), 1000):
            engine.push_audio(speech[i:i + 1000])

    thread = threading.Thread(target=producer)
    thread.start()
    pulled = []
    while thread.is_alive():
        pulled.append(engine.pull_frames()[1])
    thread.join()
    pulled.append(engine.pull_frames()[1])
    np.testing.assert_allclose(np.concatenate(pulled), expected, atol=1e-6)


@pytest.mark.parametrize("hop, lookahead", [(6, 4), (10, 0), (4, 10)])
def test_finish_emits_the_rest_of_the_stream_and_resets(model, speech, hop, lookahead):
    engine = GestureEngine(model, hop_frames=hop, lookahead_frames=lookahead)
    times, frames = stream(engine, speech, 1600)
    pulled = len(times)
    rest_times, rest = engine.finish()
    all_times = np.concatenate((times, rest_times))
    n_frames = round(len(speech) / 16000 * 15)
    np.testing.assert_allclose(all_times * 15, np.arange(n_frames), atol=1e-6)  # every frame once, nothing beyond
    assert len(rest) == n_frames - pulled and np.isfinite(rest).all()
    assert engine.stream_time_s == 0 and engine.pull_frames()[0].size == 0  # a fresh stream
    t2, f2 = stream(engine, speech, 1600)
    np.testing.assert_array_equal(t2, times)
    np.testing.assert_allclose(f2, frames, atol=1e-6)


def test_reconfigure_restarts_the_stream_with_new_settings(model, speech):
    engine = GestureEngine(model, hop_frames=10, lookahead_frames=5)
    engine.push_audio(speech[:20000])
    engine.reconfigure(hop_frames=6, lookahead_frames=2)
    assert engine.stream_time_s == 0 and engine.config.hop_frames == 6
    t1, f1 = stream(engine, speech, 4000)
    t2, f2 = stream(GestureEngine(model, hop_frames=6, lookahead_frames=2), speech, 4000)
    np.testing.assert_array_equal(t1, t2)
    np.testing.assert_allclose(f1, f2, atol=1e-6)
    with pytest.raises(ValueError, match="lookahead"):
        engine.reconfigure(lookahead_frames=-1)
    assert engine.config.lookahead_frames == 2  # a refused change leaves the engine as it was


def test_stream_rejects_bad_chunks(model):
    engine = GestureEngine(model)
    with pytest.raises(ValueError, match="NaN"):
        engine.push_audio(np.array([0.0, np.nan], np.float32))
    with pytest.raises(ValueError, match="mono"):
        engine.push_audio(np.zeros((10, 2), np.float32))
    with pytest.raises(ValueError, match="mono"):
        engine.push_audio(np.float32(0.5))
    engine.push_audio(np.zeros(0, np.float32))  # an empty chunk is no error
    engine.push_audio(np.zeros(40000, np.float32))  # silence is allowed on a stream
    times, frames = engine.pull_frames()
    assert len(times) > 0 and np.isfinite(frames).all()


def test_speaker_and_config_validation(model):
    with pytest.raises(ValueError, match="speaker"):
        GestureEngine(model, speaker=model.config.n_speakers)
    engine = GestureEngine(model)
    with pytest.raises(ValueError, match="speaker"):
        engine.set_speaker(-1)
    with pytest.raises(ValueError, match="hop_frames \\+ lookahead_frames"):
        GestureEngine(model, hop_frames=20, lookahead_frames=15)
    with pytest.raises(ValueError, match="hop_frames"):
        GestureEngine(model, hop_frames=0)
    with pytest.raises(TypeError):
        GestureEngine(model, hop=5)  # not an EngineConfig field
    too_many = Vocab([f"w{i}" for i in range(model.config.n_words)])
    with pytest.raises(ValueError, match="vocabulary"):
        GestureEngine(model, too_many)
    assert EngineConfig().hop_frames + EngineConfig().lookahead_frames <= 30


# --- checkpoints and backends ----------------------------------------------------------------------------------------

def test_from_checkpoint(tmp_path, model, vocab, speech):
    save_checkpoint(tmp_path / "ckpt", model, Vocab(sorted(set(WORDS)) + ["pad%d" % i for i in range(
        model.config.n_words - len(vocab))]))
    engine = GestureEngine.from_checkpoint(tmp_path / "ckpt", hop_frames=5, lookahead_frames=3)
    assert engine.skeleton.name == "ted_expressive" and engine.config.hop_frames == 5
    np.testing.assert_allclose(engine.generate_utterance(speech), GestureEngine(model).generate_utterance(speech),
                               atol=1e-6)
    with pytest.raises(FileNotFoundError, match="no HA2G checkpoint"):
        GestureEngine.from_checkpoint(tmp_path / "missing")


def test_checkpoint_recommended_speaker_is_the_default(tmp_path, model):
    vocab = Vocab([f"w{i}" for i in range(model.config.n_words - 4)])
    save_checkpoint(tmp_path, model, vocab, {"speakers": ["ann", "bob", "cyd"], "default_speaker": {"name": "cyd"}})
    assert GestureEngine.from_checkpoint(tmp_path).speaker == 2
    assert GestureEngine.from_checkpoint(tmp_path, speaker=1).speaker == 1  # an explicit choice wins


def test_style_per_utterance_draws_a_real_speakers_posture_the_checkpoint_records(tmp_path, model, speech):
    """A checkpoint's posture_offsets: each utterance (and stream) takes one speaker's, on top of the style noise;
    one style (style_per_utterance false) keeps the model's own posture; a malformed table is a clear error."""
    vocab = Vocab([f"w{i}" for i in range(model.config.n_words - 4)])
    forearm = TED_EXPRESSIVE.bone_index("left_elbow", "left_wrist")
    offsets = np.zeros((2, 42, 3), np.float32)
    offsets[:, forearm, 0] = (0.6, -0.6)  # one speaker holds the left forearm one way, the other the other way
    save_checkpoint(tmp_path / "postures", model, vocab,
                    {"posture_offsets": {"ann": offsets[0].ravel().tolist(), "bob": offsets[1].ravel().tolist()}})

    def engines():
        """Two engines that draw the same styles: one with the speakers' postures, one with all-zero offsets."""
        posed, own = (GestureEngine.from_checkpoint(tmp_path / "postures", seed=3, style_per_utterance=True)
                      for _ in range(2))
        own.postures = np.zeros_like(own.postures)
        return posed, own

    def one_of_the_postures(posed_motion, own_motion, weight=1.0):
        gaps = [np.abs(posed_motion - offset_posture(own_motion, o * weight, TED_EXPRESSIVE)).max() for o in offsets]
        return min(gaps) < 1e-5 and max(gaps) > 0.1

    posed, own = engines()
    np.testing.assert_array_equal(posed.postures, offsets)
    fade = 1 - np.array([x * x * (3 - 2 * x) for x in np.arange(1, 11) / 10], np.float32)  # the fade to rest
    for _ in range(3):
        first, model_motion = posed.generate_utterance(speech), own.generate_utterance(speech)
        weight = np.concatenate((np.ones(len(first) - 10, np.float32), fade))[:, None, None]
        assert one_of_the_postures(first, model_motion, weight)
        np.testing.assert_allclose(first[-1], model_motion[-1], atol=1e-6)  # back at rest at the end
    drawn = [posed.generate_utterance(speech)[:-10, forearm, 0].mean() for _ in range(6)]
    assert max(drawn) - min(drawn) > 0.3  # utterances take both postures
    posed, own = engines()
    assert one_of_the_postures(stream(posed, speech, 1600)[1], stream(own, speech, 1600)[1])  # a stream takes one
    one_style = GestureEngine.from_checkpoint(tmp_path / "postures", seed=3)
    np.testing.assert_array_equal(one_style.generate_utterance(speech),
                                  GestureEngine(model, seed=3).generate_utterance(speech))  # the model's own posture
    save_checkpoint(tmp_path / "bad", model, vocab, {"posture_offsets": {"ann": [0.1, 0.2]}})
    with pytest.raises(ValueError, match="posture_offsets"):
        GestureEngine.from_checkpoint(tmp_path / "bad")


def test_default_checkpoint_missing_is_a_clear_error():
    if (DEFAULT_CHECKPOINT / "config.json").is_file():
        assert GestureEngine.from_checkpoint(None).skeleton is not None
    else:
        with pytest.raises(FileNotFoundError, match="default checkpoint"):
            GestureEngine.from_checkpoint(None)


def test_onnxruntime_engine_matches_torch(tmp_path, model, speech):
    pytest.importorskip("onnxruntime")
    ours = GestureEngine(model, backend="onnxruntime", backend_options={"cache_dir": tmp_path}, hop_frames=10,
                         lookahead_frames=5)
    reference = GestureEngine(model, backend="torch", hop_frames=10, lookahead_frames=5)
    np.testing.assert_allclose(ours.generate_utterance(speech), reference.generate_utterance(speech), atol=1e-4)
    _, f1 = stream(ours, speech, 3000)
    _, f2 = stream(reference, speech, 3000)
    np.testing.assert_allclose(f1, f2, atol=1e-4)
    assert ours.last_compute_s > 0


def test_ted_gesture_skeleton_and_official_checkpoint(official_fixtures_dir, speech):
    """The engine is skeleton-agnostic, and loads the authors' checkpoint format (.bin) directly."""
    engine = GestureEngine.from_checkpoint(official_fixtures_dir / "ha2g_ted_gesture_official_random_small.bin",
                                           hop_frames=10, lookahead_frames=5)
    assert engine.skeleton.name == "ted_gesture" and engine.vocab is not None
    out = engine.generate_utterance(speech[:16000 * 3], [("word00", 0.2, 0.6), ("unknownword", 1.0, 1.5)])
    assert out.shape == (45, 9, 3)
    np.testing.assert_allclose(np.linalg.norm(out, axis=-1), 1.0, atol=1e-5)
    _, frames = stream(engine, speech[:16000 * 3], 1600)
    assert frames.shape[1:] == (9, 3) and len(frames) == 40 - 5  # the last window that fits 3 s ends at frame 40
