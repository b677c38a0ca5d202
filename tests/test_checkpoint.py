"""Our checkpoint format: safetensors + config.json + vocab.json round trip, no pickle, clear errors."""
import json
import pickle

import pytest
import torch
from safetensors.torch import load_file, save_file

from ha2g_model.checkpoint import WEIGHTS, load_checkpoint, save_checkpoint, update_meta
from ha2g_model.config import HA2GConfig
from ha2g_model.model import HA2G
from ha2g_model.text import Vocab

from test_model import make_inputs


def tiny(name="tiny_expressive", **changes):
    torch.manual_seed(0)
    vocab = Vocab([f"w{i}" for i in range(16)])
    return HA2G(HA2GConfig.preset(name, n_words=len(vocab), **changes)).eval(), vocab


@pytest.fixture
def saved(tmp_path):
    model, vocab = tiny()
    save_checkpoint(tmp_path / "ckpt", model, vocab, {"command": "train.py --preset tiny", "metrics": {"fgd": 1.5}})
    return tmp_path / "ckpt", model, vocab


def test_round_trip_is_exact(saved, monkeypatch):
    path, model, vocab = saved
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "model.safetensors", "vocab.json"]

    def no_pickle(*args, **kwargs):
        raise AssertionError("loading our checkpoint must not unpickle anything")

    monkeypatch.setattr(pickle, "loads", no_pickle)
    monkeypatch.setattr(pickle, "load", no_pickle)
    monkeypatch.setattr(torch, "load", no_pickle)
    loaded, loaded_vocab, meta = load_checkpoint(path)
    assert not loaded.training and loaded.config == model.config and loaded_vocab == vocab
    assert meta["command"] == "train.py --preset tiny" and meta["metrics"] == {"fgd": 1.5}
    assert (meta["skeleton"], meta["pose_dim"], meta["n_levels"]) == ("ted_expressive", 126, 6)
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    inputs = make_inputs(model.config)
    noise = torch.randn(2, 6, 16)
    with torch.no_grad():
        assert torch.equal(loaded.generate_window(*inputs, noise=noise), model.generate_window(*inputs, noise=noise))


def test_compact_preset_checkpoint_size(tmp_path):
    vocab = Vocab([f"w{i}" for i in range(2996)])  # 3000 words with the special tokens
    model = HA2G(HA2GConfig.preset("compact_expressive", n_words=len(vocab)))
    save_checkpoint(tmp_path / "compact", model, vocab, {})
    size = (tmp_path / "compact" / WEIGHTS).stat().st_size
    assert size < 25e6, f"compact checkpoint is {size / 1e6:.1f} MB"
    assert load_checkpoint(tmp_path / "compact")[0].config.shared_word_embedding


@pytest.mark.parametrize("identical", [True, False])
def test_checkpoints_with_a_table_per_text_encoder(tmp_path, identical):
    """Checkpoints written with one word table per text encoder still load: identical tables as the one shared
    table (same outputs, 1/7 of the memory), tables that differ kept per encoder (merging would change the model)."""
    model, vocab = tiny(shared_word_embedding=False)
    with torch.no_grad():
        for k, table in enumerate(model.word_embeddings):
            table.weight.copy_(model.word_embeddings[0].weight + (0 if identical else 0.1 * k))
    save_checkpoint(tmp_path / "ckpt", model, vocab, {})
    loaded = load_checkpoint(tmp_path / "ckpt")[0]
    assert loaded.config.shared_word_embedding == identical
    assert len(loaded.word_embeddings) == (1 if identical else model.config.n_levels + 1)
    inputs = make_inputs(model.config)
    with torch.no_grad():
        assert torch.equal(loaded.generate_window(*inputs), model.generate_window(*inputs))


def test_missing_directory_and_files(saved, tmp_path):
    path, _, _ = saved
    with pytest.raises(FileNotFoundError, match="not found"):
        load_checkpoint(tmp_path / "nowhere")
    for name in ("vocab.json", "model.safetensors", "config.json"):
        (path / name).rename(tmp_path / name)
        with pytest.raises(FileNotFoundError, match=name):
            load_checkpoint(path)
        (tmp_path / name).rename(path / name)


def rewrite_config(path, **changes):
    described = json.loads((path / "config.json").read_text())
    described["config"].update(changes)
    (path / "config.json").write_text(json.dumps(described))


def test_wrong_pose_dim_is_refused(saved):
    path, _, _ = saved  # expressive weights, config claims TED Gesture
    rewrite_config(path, skeleton="ted_gesture", official_head_copy_bug=False)
    with pytest.raises(ValueError, match="levels|pose_dim"):
        load_checkpoint(path)


def test_wrong_level_count_is_refused(tmp_path):
    model, vocab = tiny("tiny_gesture")
    save_checkpoint(tmp_path / "g", model, vocab, {})
    rewrite_config(tmp_path / "g", skeleton="ted_expressive", shared_word_embedding=True)
    with pytest.raises(ValueError, match="3 generator levels but the config describes ted_expressive with 6"):
        load_checkpoint(tmp_path / "g")


def test_missing_unexpected_and_misshapen_keys_are_named(saved):
    path, _, _ = saved
    original = load_file(str(path / WEIGHTS))
    state = dict(original)
    del state["audio_encoder.fc2.bias"]
    state["extra.weight"] = torch.zeros(3)
    save_file(state, str(path / WEIGHTS))
    with pytest.raises(ValueError, match=r"missing keys .*audio_encoder.fc2.bias.*unexpected keys .*extra.weight"):
        load_checkpoint(path)
    state = dict(original)
    state["audio_encoder.fc2.bias"] = torch.zeros(7)
    save_file(state, str(path / WEIGHTS))
    with pytest.raises(ValueError, match=r"shape mismatches .*audio_encoder.fc2.bias: file \(7,\) vs model \(18,\)"):
        load_checkpoint(path)
    (path / WEIGHTS).write_bytes(b"not safetensors")
    with pytest.raises(ValueError, match="not a readable safetensors"):
        load_checkpoint(path)


def test_nan_and_inf_weights_are_refused(saved):
    """A diverged or damaged file fails at load, by name: at run time some backends would hide the NaN."""
    path, _, _ = saved
    state = dict(load_file(str(path / WEIGHTS)))
    state["audio_encoder.fc2.bias"] = state["audio_encoder.fc2.bias"].clone()
    state["audio_encoder.fc2.bias"][3] = float("nan")
    state["generator.levels.0.speaker_embedding.0.weight"] = torch.full_like(
        state["generator.levels.0.speaker_embedding.0.weight"], float("inf"))
    save_file(state, str(path / WEIGHTS))
    with pytest.raises(ValueError, match=r"2 tensors with NaN/Inf values .*audio_encoder.fc2.bias \(1 of 18\)"):
        load_checkpoint(path)


def test_config_and_vocab_problems(saved):
    path, _, _ = saved
    (path / "vocab.json").write_text(json.dumps({"words": ["<PAD>", "<SOS>", "<EOS>", "<UNK>", "a"]}))
    with pytest.raises(ValueError, match="5 words but .* n_words=20"):
        load_checkpoint(path)
    (path / "config.json").write_text("{broken")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_checkpoint(path)
    (path / "config.json").write_text(json.dumps({"config": {}}))
    with pytest.raises(ValueError, match="not a ha2g_ros.checkpoint"):
        load_checkpoint(path)


def test_save_refuses_mismatched_vocab_and_unserialisable_meta(tmp_path):
    model, vocab = tiny()
    with pytest.raises(ValueError, match="vocabulary has 5 words"):
        save_checkpoint(tmp_path / "x", model, Vocab(["a"]), {})
    with pytest.raises(ValueError, match="JSON-serialisable"):
        save_checkpoint(tmp_path / "x", model, vocab, {"tensor": torch.zeros(1)})


def test_update_meta_changes_only_the_meta(saved, tmp_path):
    path, model, vocab = saved
    weights = (path / WEIGHTS).read_bytes()
    update_meta(path, posture_offsets={"ann": [0.0] * 126}, command="replaced")
    loaded, loaded_vocab, meta = load_checkpoint(path)
    assert meta["posture_offsets"] == {"ann": [0.0] * 126} and meta["command"] == "replaced"
    assert meta["metrics"] == {"fgd": 1.5} and loaded_vocab == vocab  # the rest is kept
    assert (path / WEIGHTS).read_bytes() == weights
    (tmp_path / "not_ours").mkdir()
    (tmp_path / "not_ours" / "config.json").write_text(json.dumps({"hidden_size": 4}))
    with pytest.raises(ValueError, match="is not a"):
        update_meta(tmp_path / "not_ours", posture_offsets={})
