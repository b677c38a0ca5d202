"""Official HA2G checkpoints: restricted loading, key mapping, and the official forward reproduced to 1e-5."""
import pickle
import re
import zipfile

import numpy as np
import pytest
import torch

from ha2g_model.checkpoint import checkpoint_graphs, load_checkpoint, load_state_checked, share_identical_word_tables
from ha2g_model.config import HA2GConfig
from ha2g_model.model import HA2G
from ha2g_model.official import (config_from_official, load_official_checkpoint, main, official_state_to_ours,
                                 read_official_file)

SKELETONS = ("ted_gesture", "ted_expressive")


def fixture_paths(directory, skeleton, small=True):
    stem = directory / f"ha2g_{skeleton}_official_random{'_small' if small else ''}"
    return stem.with_name(stem.name + ".bin"), stem.with_name(stem.name + "_io.npz"), \
        stem.with_name(stem.name + "_keys.txt")


def run_like_official(model: HA2G, io: dict) -> dict:
    """Our model on the fixture inputs, with the recorded eps; results under the fixture's array names."""
    t = {k: torch.from_numpy(v) for k, v in io.items()}
    n = model.config.n_levels
    noise = torch.stack([t[f"z_eps_{k + 1}"] for k in range(n)], dim=1)
    captured = {}

    def capture(name, pick):
        def hook(module, inputs, output):  # returns None: the output is left unchanged
            captured.setdefault(name, pick(output))
        return hook

    hooks = [model.discriminator.pre_conv.register_forward_hook(capture("pre", lambda o: o)),
             model.discriminator.gru.register_forward_hook(capture("gru", lambda o: o[0]))]
    with torch.no_grad():
        out = model(t["in_spec"], t["in_text_padded"], t["target"][:, :4], t["vid_indices"], noise)
        res = {"audio_weight": out.audio_weight, "audio_feat_low": out.audio_low, "audio_feat_mid": out.audio_mid,
               "audio_feat_high": out.audio_high, "text_encoder_out": out.text_feat, "out_dir_vec": out.pose,
               "audio_speaker_emb": model.audio_encoder.speaker_embedding(t["vid_indices"]),
               "dis_out": model.discriminate(out.pose)}
        for hook in hooks:
            hook.remove()
        res["dis_preconv_out"], res["dis_gru_out"] = captured["pre"], captured["gru"]
        res["dis_on_target"] = model.discriminate(t["target"])
        res["dis_on_probe"] = model.discriminate(t["dis_probe_in"])
        for k in range(n):
            res.update({f"audio_blend_{k + 1}": out.audio_blends[k], f"pre_seq_{k + 1}": out.pre_seqs[k],
                        f"out_dir_vec_{k + 1}": out.poses[k], f"z_context_{k + 1}": out.z[k],
                        f"z_mu_{k + 1}": out.z_mu[k], f"z_logvar_{k + 1}": out.z_logvar[k],
                        f"gen_text_feat_{k + 1}": out.level_text_feats[k]})
        assert torch.equal(model.generate_window(t["in_spec"], t["in_text_padded"], t["target"][:, :4],
                                                 t["vid_indices"], noise), out.pose)
    return {k: v.numpy() for k, v in res.items()}


@pytest.fixture(scope="module", params=SKELETONS)
def official(request, official_fixtures_dir):
    bin_path, io_path, _ = fixture_paths(official_fixtures_dir, request.param)
    model, vocab, meta = load_official_checkpoint(bin_path)
    with np.load(io_path) as data:
        io = {k: data[k] for k in data.files}
    return request.param, model, vocab, meta, io


def test_every_recorded_output_matches(official):
    skeleton, model, _, _, io = official
    ours = run_like_official(model, io)
    inputs = {"in_spec", "in_text_padded", "target", "vid_indices", "dis_probe_in"}
    recorded = {k for k in io if k not in inputs and not re.fullmatch(r"(target|z_eps)_\d+", k)}
    assert recorded == set(ours), recorded ^ set(ours)
    for name in sorted(recorded):
        assert ours[name].shape == io[name].shape, name
        np.testing.assert_allclose(ours[name], io[name], atol=1e-5, rtol=0, err_msg=f"{skeleton}: {name}")
    # the recorded per-level targets are the seed subsets our pre_seq uses
    for k in range(model.config.n_levels):
        np.testing.assert_array_equal(ours[f"pre_seq_{k + 1}"][:, :4, :-1], io[f"target_{k + 1}"][:, :4])


def test_meta_and_vocab(official):
    skeleton, model, vocab, meta, _ = official
    assert model.config.skeleton == meta["skeleton"] == skeleton and not model.training
    assert model.config.hidden_size == 64 and model.config.n_layers == 2
    assert len(vocab) == 50 and vocab.index("word07") == 11 and vocab.index("never-seen") == 3
    assert meta["speakers"][0] is None and meta["speakers"][3] == "fakeVid0002" and len(meta["speakers"]) == 8
    assert meta["official_args"]["hidden_size"] == 64 and meta["epoch"] == 42
    assert model.config.official_head_copy_bug == (skeleton == "ted_expressive")


def test_expressive_needs_the_official_head_copy(official_fixtures_dir):
    bin_path, io_path, _ = fixture_paths(official_fixtures_dir, "ted_expressive")
    model = load_official_checkpoint(bin_path)[0]
    with np.load(io_path) as data:
        io = {k: data[k] for k in data.files}
    fixed = HA2G(model.config.replace(official_head_copy_bug=False)).eval()
    fixed.load_state_dict(model.state_dict())
    ours = run_like_official(fixed, io)
    assert np.abs(ours["pre_seq_2"] - io["pre_seq_2"]).max() > 1e-3  # without the bug the official numbers differ
    np.testing.assert_allclose(ours["out_dir_vec_1"], io["out_dir_vec_1"], atol=1e-5)  # level 1 has no copy


def parse_keys(path):
    layout = {}
    for line in path.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, shape, dtype = line.split()
        dict_name, key = name.split(".", 1)
        dims = () if shape == "()" else tuple(int(d) for d in shape.split("x"))
        layout.setdefault(dict_name, {})[key] = torch.zeros(dims, dtype=getattr(torch, dtype))
    return layout


@pytest.mark.parametrize("skeleton", SKELETONS)
@pytest.mark.parametrize("small", [False, True])
def test_key_and_shape_lists_map_onto_our_model(official_fixtures_dir, skeleton, small):
    layout = parse_keys(fixture_paths(official_fixtures_dir, skeleton, small)[2])
    config = HA2GConfig.preset(skeleton, n_words=50, n_speakers=8, shared_word_embedding=False,
                               **({"hidden_size": 64, "n_layers": 2} if small else {}))
    load_state_checked(HA2G(config), official_state_to_ours(layout, config), f"{skeleton} key list")
    # the layout's tables are identical (zeros): they become the preset's one shared table
    state, shared = share_identical_word_tables(official_state_to_ours(layout, config), config)
    assert shared == config.replace(shared_word_embedding=True)
    load_state_checked(HA2G(shared), state, f"{skeleton} key list, one table")


def test_official_tables_are_one_shared_table(official):
    """Official training leaves the N+1 tables identical (they alias one FastText array): loaded as one table, with
    the recorded outputs unchanged (test_matches_the_official_forward)."""
    _, model, _, _, _ = official
    assert model.config.shared_word_embedding and len(model.word_embeddings) == 1


def test_wrong_level_count_is_refused(official_fixtures_dir):
    layout = parse_keys(fixture_paths(official_fixtures_dir, "ted_gesture", True)[2])
    config = HA2GConfig.preset("ted_expressive", n_words=50, n_speakers=8, hidden_size=64, n_layers=2,
                               shared_word_embedding=False)
    layout.update({f"gen_dict_{k}": layout["gen_dict_3"] for k in (4, 5, 6)})
    with pytest.raises(ValueError, match="pose_dim|levels"):
        load_state_checked(HA2G(config), official_state_to_ours(layout, config), "gesture weights")


def test_generator_count_must_fit_pose_dim(official_fixtures_dir):
    state = read_official_file(fixture_paths(official_fixtures_dir, "ted_gesture")[0])
    del state["gen_dict_3"]
    with pytest.raises(ValueError, match=r"pose_dim 27 \(ted_gesture, 3 levels\) but 2 generators"):
        config_from_official(state)
    state["pose_dim"] = 100
    with pytest.raises(ValueError, match="no skeleton has pose_dim 100"):
        config_from_official(state)


def test_converter_round_trip(official, official_fixtures_dir, tmp_path):
    skeleton, model, vocab, _, _ = official
    bin_path = fixture_paths(official_fixtures_dir, skeleton)[0]
    assert main([str(bin_path), str(tmp_path / "ours")]) == 0
    assert set(checkpoint_graphs(tmp_path / "ours")) == {"encode", "decode"}  # runnable without torch
    converted, converted_vocab, meta = load_checkpoint(tmp_path / "ours")
    assert converted_vocab == vocab and meta["source"] == "official" and meta["speakers"][1] == "fakeVid0000"
    assert converted.config == model.config
    for key, value in model.state_dict().items():
        assert torch.equal(converted.state_dict()[key], value), key
    assert main([str(tmp_path / "missing.bin"), str(tmp_path / "x")]) == 1


class Exploit:
    def __reduce__(self):
        import os
        return (os.system, ("echo pwned > /dev/null",))


def test_malicious_pickle_is_refused(tmp_path):
    path = tmp_path / "evil.bin"
    torch.save({"args": Exploit()}, path)
    with pytest.raises(ValueError, match="os.system|posix.system|Unsupported global") as refused:
        read_official_file(path)
    message = str(refused.value)  # one line, and never torch's advice to load with weights_only=False
    assert "\n" not in message and len(message) < 300 and "weights_only" not in message
    raw = tmp_path / "evil_plain.pkl"  # a bare pickle (not a torch zip) is refused as well
    raw.write_bytes(pickle.dumps({"args": Exploit()}))
    with pytest.raises(ValueError):
        read_official_file(raw)


def test_not_a_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_official_checkpoint(tmp_path / "nope.bin")
    torch.save({"state": torch.zeros(2)}, tmp_path / "other.bin")
    with pytest.raises(ValueError, match="missing entries"):
        load_official_checkpoint(tmp_path / "other.bin")
    assert zipfile.is_zipfile(tmp_path / "other.bin")
