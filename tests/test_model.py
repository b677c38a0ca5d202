"""HA2G model: shapes of every level, gradient flow, determinism, input errors, traceability."""
import numpy as np
import pytest
import torch

from ha2g_model.config import HA2GConfig
from ha2g_model.generator import previous_level_copy
from ha2g_model.model import HA2G


def make_inputs(config: HA2GConfig, batch: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, config.n_mels, config.spec_cols, generator=g) * 20 - 40,
            torch.randint(0, config.n_words, (batch, config.n_poses), generator=g),
            torch.randn(batch, config.n_pre_poses, config.pose_dim, generator=g) * 0.1,
            torch.randint(0, config.n_speakers, (batch,), generator=g))


@pytest.fixture(scope="module", params=["tiny_gesture", "tiny_expressive"])
def model(request):
    torch.manual_seed(0)
    return HA2G(HA2GConfig.preset(request.param)).eval()


def test_official_full_size_level_dims():
    assert HA2GConfig.preset("ted_gesture").level_dims == (15, 21, 27)
    assert HA2GConfig.preset("ted_expressive").level_dims == (24, 30, 36, 66, 96, 126)
    assert HA2GConfig.preset("ted_expressive").n_levels == 6


def test_shapes_of_every_level(model):
    c = model.config
    with torch.no_grad():
        out = model(*make_inputs(c, batch=3))
    assert [p.shape for p in out.poses] == [(3, 34, d) for d in c.level_dims]
    assert [p.shape for p in out.pre_seqs] == [(3, 34, d + 1) for d in c.level_dims]
    assert out.audio_weight.shape == (3, 3, c.n_levels)
    assert torch.allclose(out.audio_weight.sum(1), torch.ones(3, c.n_levels))
    for feat in (out.audio_low, out.audio_mid, out.audio_high, out.text_feat, *out.audio_blends,
                 *out.level_text_feats):
        assert feat.shape == (3, 34, c.feat_dim)
    assert all(z.shape == (3, c.z_dim) for z in out.z + out.z_mu + out.z_logvar)
    assert model.discriminate(out.pose).shape == (3, 1)
    assert model.generate_window(*make_inputs(c, batch=3)).shape == (3, 34, c.pose_dim)


def test_pre_seq_holds_seed_and_previous_level(model):
    c = model.config
    spec, words, seed, speaker = make_inputs(c)
    with torch.no_grad():
        out = model(spec, words, seed, speaker)
    bones0 = c.skeleton_def.levels[0]
    channels0 = [3 * b + i for b in bones0 for i in range(3)]
    assert torch.equal(out.pre_seqs[0][:, :4, :-1], seed[:, :, channels0])
    assert torch.all(out.pre_seqs[0][:, :4, -1] == 1) and torch.all(out.pre_seqs[0][:, 4:] == 0)
    for k in range(1, c.n_levels):  # every bone of level k-1 reappears in its slot of level k (frames 4..33)
        prev_bones, bones = c.skeleton_def.levels[k - 1], c.skeleton_def.levels[k]
        for i, b in enumerate(prev_bones):
            j = bones.index(b)
            assert torch.equal(out.pre_seqs[k][:, 4:, 3 * j:3 * j + 3], out.poses[k - 1][:, 4:, 3 * i:3 * i + 3])
        assert torch.all(out.pre_seqs[k][:, 4:, -1] == 0)  # corrected copy: the constraint bit stays 0


def test_official_head_copy_bug_is_off_by_one():
    config = HA2GConfig.preset("ted_expressive")
    src, mask = previous_level_copy(config, 1)  # level 2: 10 bones = 30 channels + bit
    assert mask[15] == 0.0  # first channel of the head block (bone 37.x) stays zero
    assert src[16:31] == list(range(9, 24)) and all(m == 1.0 for m in mask[16:31])  # shifted, bit included
    fixed_src, fixed_mask = previous_level_copy(config.replace(official_head_copy_bug=False), 1)
    assert fixed_src[15:30] == list(range(9, 24)) and fixed_mask[30] == 0.0
    with pytest.raises(ValueError, match="only in the official TED Expressive"):
        HA2GConfig(skeleton="ted_gesture", official_head_copy_bug=True)


def test_gradients_reach_every_level_and_encoder():
    torch.manual_seed(0)
    model = HA2G(HA2GConfig.preset("tiny_expressive")).train()
    out = model(*make_inputs(model.config))
    # only the last level's output: earlier levels must get gradient through the pre_seq chain
    (out.pose.square().mean() + out.text_feat.square().mean()).backward()
    for k, level in enumerate(model.generator.levels):
        assert level.gru.weight_ih_l0.grad is not None and level.gru.weight_ih_l0.grad.abs().sum() > 0, k
        assert level.out[0].weight.grad.abs().sum() > 0, k
    assert model.audio_encoder.conv1.weight.grad.abs().sum() > 0
    assert model.audio_encoder.fc2.weight.grad.abs().sum() > 0  # style blending weights
    assert model.text_encoder.decoder.weight.grad.abs().sum() > 0
    assert all(t.weight.grad is not None for t in model.word_embeddings)


def test_eval_is_deterministic_and_noise_is_used(model):
    inputs = make_inputs(model.config)
    with torch.no_grad():
        a, b = model.generate_window(*inputs), model.generate_window(*inputs)
        noise = torch.randn(2, model.config.n_levels, model.config.z_dim)
        c1, c2 = model.generate_window(*inputs, noise=noise), model.generate_window(*inputs, noise=noise)
        zero = model.generate_window(*inputs, noise=torch.zeros_like(noise))
    assert torch.equal(a, b) and torch.equal(c1, c2)
    assert torch.equal(zero, a)  # eps = 0 is z = mu
    assert not torch.allclose(a, c1)
    n1 = model.sample_noise(2, torch.Generator().manual_seed(3))
    assert n1.shape == noise.shape and torch.equal(n1, model.sample_noise(2, torch.Generator().manual_seed(3)))


def test_training_mode_samples_z():
    torch.manual_seed(0)
    model = HA2G(HA2GConfig.preset("tiny_gesture")).train()
    inputs = make_inputs(model.config)
    out1, out2 = model(*inputs), model(*inputs)
    assert not torch.allclose(out1.z[0], out2.z[0])
    assert not torch.allclose(out1.z[0], out1.z_mu[0])


@pytest.mark.parametrize("change, message", [
    (lambda s, w, p, k: (s[:, :, :60], w, p, k), "spec must have shape"),
    (lambda s, w, p, k: (s, w[:, :30], p, k), "words must have shape"),
    (lambda s, w, p, k: (s, w, p[..., :-3], k), "seed must have shape"),
    (lambda s, w, p, k: (s, w.float(), p, k), "words must be an integer"),
    (lambda s, w, p, k: (s, w + 1000, p, k), "word ids must be in"),
    (lambda s, w, p, k: (s, w, p, k + 100), "speaker ids must be in"),
    (lambda s, w, p, k: (s * float("nan"), w, p, k), "spec contains NaN"),
])
def test_bad_inputs_raise_clear_errors(model, change, message):
    with pytest.raises(ValueError, match=message):
        model.generate_window(*change(*make_inputs(model.config)))


def test_wrong_noise_shape_names_the_level_count(model):
    with pytest.raises(ValueError, match=f"{model.config.n_levels} levels"):
        model.generate_window(*make_inputs(model.config), noise=torch.zeros(2, 2, 16))


def test_generate_window_traces_with_dynamic_batch(model):
    inputs = make_inputs(model.config, batch=2)
    traced = torch.jit.trace_module(model, {"generate_window": inputs}, check_trace=False)
    other = make_inputs(model.config, batch=3, seed=1)
    with torch.no_grad():
        assert torch.allclose(traced.generate_window(*other), model.generate_window(*other), atol=1e-5)


def test_config_round_trip_and_presets():
    for name in ("ted_gesture", "ted_expressive", "compact_expressive"):
        config = HA2GConfig.preset(name)
        assert HA2GConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown preset"):
        HA2GConfig.preset("nope")
    with pytest.raises(ValueError, match="unknown HA2GConfig fields"):
        HA2GConfig.from_dict({"hiden_size": 3})
    with pytest.raises(ValueError, match="unknown skeleton"):
        HA2GConfig(skeleton="robot")


class _Window(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, spec, words, seed, speaker, noise):
        return self.model.generate_window(spec, words, seed, speaker, noise)


def test_generate_window_exports_to_onnx(model, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    names = ["spec", "words", "seed", "speaker", "noise"]
    n_levels = model.config.n_levels
    # eval() on the wrapper too: the exporter restores the wrapper's mode, recursively, when it is done
    torch.onnx.export(_Window(model).eval(), (*make_inputs(model.config), torch.randn(2, n_levels, 16)),
                      str(tmp_path / "window.onnx"), input_names=names, output_names=["poses"], opset_version=17,
                      dynamic_axes={n: {0: "batch"} for n in names + ["poses"]}, dynamo=False)
    session = ort.InferenceSession(str(tmp_path / "window.onnx"))
    inputs = (*make_inputs(model.config, batch=3, seed=5), torch.randn(3, n_levels, 16))
    (onnx_out,) = session.run(None, {n: t.numpy() for n, t in zip(names, inputs)})
    with torch.no_grad():
        np.testing.assert_allclose(onnx_out, model.generate_window(*inputs).numpy(), atol=1e-5)
