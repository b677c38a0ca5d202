"""Losses: values against the official formulas, memory-safe contrastive loss, the combined objective."""
import math

import pytest
import torch
import torch.nn.functional as F

from ha2g_model import losses as L
from ha2g_model.config import HA2GConfig
from ha2g_model.model import HA2G
from ha2g_model.skeleton import get_skeleton, normalize_directions, skeleton_statistics

from test_model import make_inputs


def official_contrastive(text, audio):
    """The official SoftmaxContrastiveLoss, N x N x D difference tensor and all (small N only)."""
    t, a = F.normalize(text, dim=1), F.normalize(audio, dim=1)
    distance = torch.norm(t.expand(t.size(0), t.size(0), t.size(1)).transpose(0, 1) - a, p=2, dim=2)
    return F.cross_entropy(1.0 / (distance + 1e-8), torch.arange(t.size(0)))


def test_contrastive_equals_the_official_formula():
    g = torch.Generator().manual_seed(0)
    text, audio = torch.randn(3, 34, 32, generator=g), torch.randn(3, 34, 32, generator=g)
    text.requires_grad_(True)
    ours = L.contrastive(text, audio)
    torch.testing.assert_close(ours, official_contrastive(text.reshape(-1, 32), audio.reshape(-1, 32)))
    ours.backward()
    assert torch.isfinite(text.grad).all()
    aligned = L.contrastive(audio, audio + 0.01 * torch.randn(3, 34, 32, generator=g))
    assert aligned < ours  # matching features give a lower loss


def test_contrastive_scales_to_a_training_batch():
    # B = 96 (the Expressive batch): the official version would hold 3264 x 3264 x 32 floats (1.4 GB)
    text, audio = torch.randn(96, 34, 32), torch.randn(96, 34, 32)
    assert torch.isfinite(L.contrastive(text, audio))


def official_angle_prior(pose, name):
    skeleton, stats = get_skeleton(name), skeleton_statistics(name)
    raw = pose + torch.tensor(skeleton.mean_dir_vec)
    if name == "ted_expressive":
        raw = torch.cat((raw, torch.cross(raw[..., 33:36], raw[..., 51:54], dim=2),
                         torch.cross(raw[..., 84:87], raw[..., 102:105], dim=2)), dim=2)
    vec = F.normalize(raw.reshape(raw.shape[0], raw.shape[1], -1, 3), dim=-1).reshape(-1, raw.shape[2] // 3, 3)
    total = 0
    for (i, j), mean, var in zip(stats["angle_pair"], stats["avg_angle"], stats["var_angle"]):
        angle = torch.acos(torch.einsum("ij,ij->i", vec[:, i], vec[:, j]).clamp(-1 + 1e-7, 1 - 1e-7)) / math.pi
        total = total + torch.mean((angle - mean) ** 2 / (2 * var))
    return total


@pytest.mark.parametrize("name", ["ted_gesture", "ted_expressive"])
def test_angle_prior_equals_the_official_loop(name):
    skeleton = get_skeleton(name)
    pose = 0.2 * torch.randn(2, 34, skeleton.pose_dim, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(L.angle_prior(pose, name), official_angle_prior(pose, name))
    rest = normalize_directions(torch.tensor(skeleton.rest_directions()), skeleton).expand(2, 34, -1)
    assert L.angle_prior(rest, name) < L.angle_prior(pose, name)  # the mean pose is more plausible than noise


def test_level_targets_huber_kld():
    target = torch.randn(2, 34, 126)
    parts = L.level_targets(target, "ted_expressive")
    assert [p.shape[-1] for p in parts] == [24, 30, 36, 66, 96, 126] and torch.equal(parts[-1], target)
    assert torch.equal(parts[0][..., 9:], target[..., -15:])  # level 1 = bones 0-2 and the head
    assert L.hierarchical_huber(parts, parts) == 0
    assert L.hierarchical_huber([p + 1 for p in parts], parts) == pytest.approx(6 * (1 - 0.05))
    assert L.kld(torch.zeros(4, 16), torch.zeros(4, 16)) == 0 and L.kld(torch.ones(4, 16), torch.zeros(4, 16)) > 0


def test_diversity_and_gan_terms():
    pose, other = torch.zeros(2, 34, 27, requires_grad=True), torch.ones(2, 34, 27)
    z, z_other = torch.zeros(2, 16), torch.ones(2, 16)
    div = L.diversity_regulariser(pose, other, z, z_other)
    assert div < 0
    div.backward()
    assert pose.grad.abs().sum() > 0
    assert L.diversity_regulariser(pose, other, z, z) == -1000  # same z: clamped
    assert L.generator_adversarial(torch.ones(3, 1)) == pytest.approx(0, abs=1e-6)
    assert L.discriminator_loss(torch.ones(3, 1), torch.zeros(3, 1)) == pytest.approx(0, abs=1e-6)
    assert L.discriminator_loss(torch.zeros(3, 1), torch.ones(3, 1)) > 30


@pytest.mark.parametrize("epoch, adversarial", [(1, False), (11, True)])
def test_generator_objective_trains_every_part(epoch, adversarial):
    torch.manual_seed(0)
    model = HA2G(HA2GConfig.preset("tiny_expressive")).train()
    spec, words, target, speaker = make_inputs(model.config, batch=3)
    target = 0.1 * torch.randn(3, 34, 126)
    out = model(spec, words, target[:, :4], speaker)
    loss, parts = L.generator_objective(model, out, target, words, speaker, epoch,
                                        L.LossWeights.official("ted_expressive"))
    assert ("adversarial" in parts) == adversarial
    assert {"huber", "kld", "diversity", "contrastive_pos", "contrastive_neg", "physical"} <= set(parts)
    assert parts["contrastive_neg"] < 0 and math.isfinite(loss.item())
    loss.backward()
    assert model.text_encoder.decoder.weight.grad.abs().sum() > 0  # reached through the contrastive terms
    assert all(level.speaker_mu.weight.grad.abs().sum() > 0 for level in model.generator.levels[-1:])
    assert L.LossWeights.official("ted_gesture").regression == 70.0


FINGERS = [b for b in range(42) if b not in get_skeleton("ted_expressive").levels[2]]  # levels 4-6 add the fingers


def _without_fingers(batch=3, frames=34):
    valid = torch.ones(batch, frames, 42, dtype=torch.bool)
    valid[..., FINGERS] = False
    return valid


def test_masked_huber_counts_only_valid_values():
    g = torch.Generator().manual_seed(2)
    target, prediction = torch.randn(3, 34, 126, generator=g), torch.randn(3, 34, 126, generator=g)
    everything = torch.ones(3, 34, 42, dtype=torch.bool)
    torch.testing.assert_close(L.huber(prediction, target, mask=L.channel_mask(everything)),
                               L.huber(prediction, target))  # all valid: the official mean
    valid = _without_fingers()
    values = L.channel_mask(valid)
    garbage = torch.where(values, target, torch.full_like(target, float("nan")))
    masked = L.huber(prediction, garbage, mask=values)
    assert torch.isfinite(masked)
    torch.testing.assert_close(masked, L.huber(prediction[values], target[values]))  # the mean over valid values
    # a hierarchy level without any valid bone adds nothing: level 1 is the torso and head
    no_torso = torch.ones(3, 34, 42, dtype=torch.bool)
    no_torso[..., get_skeleton("ted_expressive").levels[0]] = False
    poses = L.level_targets(prediction, "ted_expressive")
    targets = L.level_targets(target, "ted_expressive")
    masks = L.level_targets(L.channel_mask(no_torso), "ted_expressive")
    assert not masks[0].any()
    per_level = [L.huber(p, t, mask=m) for p, t, m in zip(poses, targets, masks)]
    assert per_level[0] == 0 and all(v > 0 for v in per_level[1:])
    torch.testing.assert_close(L.hierarchical_huber(poses, targets, masks=masks), sum(per_level))


def test_real_windows_for_the_discriminator_take_generated_values_where_bones_are_missing():
    real, fake = torch.randn(2, 34, 126), torch.randn(2, 34, 126, requires_grad=True)
    valid = _without_fingers(batch=2)
    real[..., L.channel_mask(~valid)[0, 0]] = float("nan")  # placeholders may be anything
    mixed = L.real_for_discriminator(real, fake, valid)
    values = L.channel_mask(valid)
    assert torch.equal(mixed[values], real[values]) and torch.equal(mixed[~values], fake.detach()[~values])
    assert not mixed.requires_grad  # the discriminator's step never trains the generator
    assert L.real_for_discriminator(real, fake) is real


def test_a_window_without_fingers_trains_and_its_finger_targets_never_matter():
    torch.manual_seed(0)
    model = HA2G(HA2GConfig.preset("tiny_expressive")).train()
    spec, words, _, speaker = make_inputs(model.config, batch=3)
    target = 0.1 * torch.randn(3, 34, 126)
    valid = _without_fingers()
    out = model(spec, words, target[:, :4], speaker)
    weights = L.LossWeights.official("ted_expressive")

    def objective(finger_values):
        fingers = L.channel_mask(~valid)
        fingers[:, :4] = False  # the seed frames are the model's input, not a target
        changed = torch.where(fingers, finger_values, target)
        torch.manual_seed(1)  # the same style noise and speaker permutation for every call
        return L.generator_objective(model, out, changed, words, speaker, 11, weights, valid=valid)

    loss, parts = objective(torch.full_like(target, float("nan")))
    assert math.isfinite(loss.item()) and "adversarial" in parts
    for other in (target, torch.randn_like(target) * 5):
        again, other_parts = objective(other)
        assert again.item() == loss.item() and other_parts == parts
    # the reconstruction term gives the finger outputs no gradient, the arms and torso theirs (the full output: a
    # coarser level's fingers do get gradient, through the next level's supervised arms that they condition)
    reconstruction = L.hierarchical_huber(out.poses, L.level_targets(target, "ted_expressive"),
                                          masks=L.level_targets(L.channel_mask(valid), "ted_expressive"))
    gradient = torch.autograd.grad(reconstruction, out.pose, retain_graph=True)[0]
    fingers = L.channel_mask(~valid)
    assert torch.all(gradient[fingers] == 0) and gradient[~fingers].abs().sum() > 0
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
