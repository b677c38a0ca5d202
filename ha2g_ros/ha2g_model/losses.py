"""HA2G training losses, each a plain function, and `generator_objective` that combines them as the paper does:

    L_G = W_reg * sum_k Huber_k + 0.1 KLD + 0.05 div_reg + [epoch > 10] 5 L_adv + 0.2 CE(text, high)
          - 0.005 CE(text, low) + 0.01 L_phys
    L_D = -mean(log D(real) + log(1 - D(fake)))   (non-saturating GAN, from epoch 11 on)

Numbers and formulas follow the official training loops (train_hierarchy*.py); where those materialise huge
tensors (the contrastive loss builds an N x N x 32 difference tensor, N = B*34) we compute the same value without.

Partial skeletons: a window may lack bones (a recording without fingers or face), marked by a per-frame, per-bone
`valid` mask (B, T, n_bones). Its missing bones hold a placeholder, never a measurement, so only what compares
the output with the target is masked:
  - the hierarchical Huber loss averages each level over its valid values only (a level with none adds 0);
  - the discriminator's real windows get the generator's own (detached) prediction in place of their missing bones
    (`real_for_discriminator`): otherwise it would learn that placeholders, e.g. rigid fingers, look real, and the
    adversarial term would push the generator towards them. With the same values in both, those bones tell real
    from generated nothing for that window.
  - NOT masked: the angle prior (it compares the output with statistics of real poses, not with this window, and is
    what keeps unsupervised bones anatomically plausible), the diversity, KLD, adversarial and contrastive terms
    (no target in them).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ha2g_model.model import HA2G, HA2GOutput
from ha2g_model.skeleton import get_skeleton, skeleton_statistics


def level_targets(target, skeleton_name: str) -> list[torch.Tensor]:
    """Full-skeleton target (B, T, pose_dim) -> one (B, T, d_k) target per hierarchy level (the same for a per-value
    mask from `channel_mask`)."""
    return [target.index_select(-1, torch.tensor(channels, device=target.device))
            for channels in get_skeleton(skeleton_name).level_channels]


def channel_mask(valid):
    """Per-bone validity (..., n_bones) bool -> per value (..., 3 * n_bones), the layout of a pose vector."""
    return valid.repeat_interleave(3, dim=-1)


def huber(prediction, target, beta: float = 0.1, mask=None):
    """Smooth L1 with the official scaling: smooth_l1(x / beta, y / beta) * beta, the mean over the values where
    `mask` (broadcastable to the prediction, bool) is true, 0 where none is. A masked-out target value, even NaN,
    changes neither the loss nor any gradient."""
    if mask is None:
        return F.smooth_l1_loss(prediction / beta, target / beta) * beta
    mask = mask.expand_as(prediction)
    # masked values compare the prediction with itself: 0 loss and 0 gradient, and NaN never enters the graph
    filled = torch.where(mask, target, prediction.detach())
    total = F.smooth_l1_loss(prediction / beta, filled / beta, reduction="sum") * beta
    return total / mask.sum().clamp(min=1)


def hierarchical_huber(poses: list, targets: list, beta: float = 0.1, masks: list | None = None):
    """Sum over levels of the Huber loss between each level's output and its subset of the target; `masks` (one per
    level, as `level_targets` cuts them from `channel_mask(valid)`) restrict each level to its valid values."""
    masks = [None] * len(poses) if masks is None else masks
    return sum(huber(p, t, beta, m) for p, t, m in zip(poses, targets, masks, strict=True))


def real_for_discriminator(real, fake, valid=None):
    """The real windows the discriminator sees: their missing bones (`valid` (B, T, n_bones) false) replaced by the
    generator's prediction of the same window, so that placeholders never count as real motion."""
    if valid is None:
        return real
    return torch.where(channel_mask(valid), real, fake.detach())


def kld(mu, logvar):
    """KL(N(mu, exp(logvar)) || N(0, 1)), averaged over batch and dimensions."""
    return -0.5 * torch.mean(1 + logvar - mu.pow(2) - logvar.exp())


def diversity_regulariser(pose, pose_other, z, z_other, beta: float = 0.05):
    """Reward pose differences when the style vector changes (Trimodal/HA2G). pose (B, T, D) from speaker s,
    pose_other from another speaker; only `pose` receives gradient. Clamped at -1000 per sample."""
    pose_l1 = (F.smooth_l1_loss(pose / beta, pose_other.detach() / beta, reduction="none") * beta).sum(dim=(1, 2))
    z_l1 = F.l1_loss(z.detach(), z_other.detach(), reduction="none").mean(dim=1)
    return torch.clamp(-(pose_l1 / (z_l1 + 1e-5)), min=-1000).mean()


def generator_adversarial(d_fake):
    """Non-saturating generator loss: -mean log D(G(x)). In fp32 even under autocast: 1e-8 is 0 in fp16."""
    return -torch.mean(torch.log(d_fake.float() + 1e-8))


def discriminator_loss(d_real, d_fake):
    d_real, d_fake = d_real.float(), d_fake.float()
    return -torch.mean(torch.log(d_real + 1e-8) + torch.log(1 - d_fake + 1e-8))


def contrastive(text_feat, audio_feat):
    """Audio-text contrastive alignment (SoftmaxContrastiveLoss): frames (B*T of them) are classified among all
    frames of the batch with logits 1 / (||t_i - a_j|| + 1e-8) on L2-normalised features; the positive is the same
    clip and frame. text_feat, audio_feat (B, T, D). The distance matrix is N x N, never N x N x D."""
    text = F.normalize(text_feat.reshape(-1, text_feat.shape[-1]), dim=1)
    audio = F.normalize(audio_feat.reshape(-1, audio_feat.shape[-1]), dim=1)
    # exact differences, not the |a|^2 + |b|^2 - 2ab shortcut: 1/d magnifies its rounding error for close pairs
    distance = torch.cdist(text, audio, compute_mode="donot_use_mm_for_euclid_dist")
    labels = torch.arange(text.shape[0], device=text.device)
    return F.cross_entropy(1.0 / (distance + 1e-8), labels)


# Palm normals of TED Expressive: cross products of the pinky and thumb base bones (left, right). Angle pairs that
# refer to "bone" n_bones and n_bones + 1 mean these two vectors.
_PALMS = {"ted_expressive": ((11, 17), (28, 34))}


def angle_prior(pose, skeleton_name: str):
    """Physical prior: each listed pair of bones has a Gaussian angle distribution (mean/var from the training set,
    angles in units of pi); the loss is the summed negative log-likelihood up to constants, averaged over frames.
    pose (B, T, pose_dim) normalised direction vectors."""
    skeleton = get_skeleton(skeleton_name)
    stats = skeleton_statistics(skeleton_name)
    raw = (pose + pose.new_tensor(skeleton.mean_dir_vec)).reshape(*pose.shape[:-1], skeleton.n_bones, 3)
    palms = [torch.cross(raw[..., a, :], raw[..., b, :], dim=-1) for a, b in _PALMS.get(skeleton_name, ())]
    vectors = F.normalize(torch.cat([raw] + [p.unsqueeze(-2) for p in palms], dim=-2), dim=-1)
    pairs = torch.tensor(stats["angle_pair"], device=pose.device)
    cosine = (vectors[..., pairs[:, 0], :] * vectors[..., pairs[:, 1], :]).sum(-1).clamp(-1 + 1e-7, 1 - 1e-7)
    angle = torch.acos(cosine) / math.pi  # (B, T, n_pairs)
    mean, var = pose.new_tensor(stats["avg_angle"]), pose.new_tensor(stats["var_angle"])
    return (((angle - mean) ** 2) / (2 * var)).reshape(-1, len(mean)).mean(dim=0).sum()


@dataclass(frozen=True)
class LossWeights:
    """The official loss weights (config*/hierarchy.yml); `regression` is 70 for TED Gesture, 250 for Expressive."""

    regression: float = 250.0
    kld: float = 0.1
    diversity: float = 0.05
    gan: float = 5.0
    contrastive_pos: float = 0.2  # text vs HIGH-level audio features: pull together
    contrastive_neg: float = 0.005  # text vs LOW-level audio features: push apart
    physical: float = 0.01
    warmup_epochs: int = 10  # no adversarial loss (and no D training) up to and including this epoch

    @classmethod
    def official(cls, skeleton_name: str) -> "LossWeights":
        get_skeleton(skeleton_name)
        return cls(regression=70.0 if skeleton_name == "ted_gesture" else 250.0)


def generator_objective(model: HA2G, out: HA2GOutput, target, words, speaker, epoch: int,
                        weights: LossWeights, valid=None) -> tuple[torch.Tensor, dict[str, float]]:
    """The generator-side loss of one training step, given `out = model(spec, words, target[:, :4], speaker)`.

    `valid` (B, T, n_bones) bool marks the bones the data has (None: all); the others are not supervised (see the
    module docstring). Re-runs the level chain with permuted speakers (same audio blends) for the diversity term,
    as the official code does. Returns (loss to backpropagate, {term: weighted value} for logging).
    """
    skeleton = model.config.skeleton
    masks = None if valid is None else level_targets(channel_mask(valid), skeleton)
    parts = {"huber": weights.regression * hierarchical_huber(out.poses, level_targets(target, skeleton), masks=masks)}
    if weights.kld > 0:
        parts["kld"] = weights.kld * kld(out.z_mu[-1], out.z_logvar[-1])
    if weights.diversity > 0:
        permuted = speaker[torch.randperm(speaker.shape[0], device=speaker.device)]
        other = model.decode(out.audio_blends, words, target[:, :model.config.n_pre_poses], permuted,
                             sample=model.training)
        parts["diversity"] = weights.diversity * diversity_regulariser(out.pose, other["out"][-1], out.z[-1],
                                                                       other["z"][-1])
    if epoch > weights.warmup_epochs and weights.gan > 0:
        parts["adversarial"] = weights.gan * generator_adversarial(model.discriminate(out.pose))
    if weights.contrastive_pos > 0:
        parts["contrastive_pos"] = weights.contrastive_pos * contrastive(out.text_feat, out.audio_high)
    if weights.contrastive_neg > 0:
        parts["contrastive_neg"] = -weights.contrastive_neg * contrastive(out.text_feat, out.audio_low)
    if weights.physical > 0:
        parts["physical"] = weights.physical * angle_prior(out.pose, skeleton)
    total = sum(parts.values())
    return total, {name: float(value.detach()) for name, value in parts.items()}
