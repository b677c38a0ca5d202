"""The Hierarchical Pose Inferer: one bidirectional-GRU generator per skeleton level, coarse to fine.

Level k predicts the bones of `skeleton.levels[k]` for all 34 frames. Its input sequence `pre_seq_k` (B, 34, d_k + 1)
holds the 4 seed frames of its bones with a constraint bit of 1, and, for frames 4..33, the bones that level k-1
already predicted (its raw output, gradients flow through), zeros elsewhere. Every level also sees its own blend of
the audio features, its own text features and a speaker style vector z (mu/logvar, reparameterised).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ha2g_model.config import HA2GConfig
from ha2g_model.text_encoder import TextEncoder


class LevelGenerator(nn.Module):
    """One level: [pre_seq, audio blend, text features, z] per frame -> bi-GRU (directions summed) -> MLP."""

    def __init__(self, config: HA2GConfig, level_dim: int):
        super().__init__()
        self.hidden_size = config.hidden_size
        self.text_encoder = TextEncoder(config)
        z = config.z_dim
        self.speaker_embedding = nn.Sequential(nn.Embedding(config.n_speakers, z), nn.Linear(z, z))
        self.speaker_mu = nn.Linear(z, z)
        self.speaker_logvar = nn.Linear(z, z)
        in_size = level_dim + 1 + 2 * config.feat_dim + z
        self.gru = nn.GRU(in_size, config.hidden_size, num_layers=config.n_layers, batch_first=True,
                          bidirectional=True, dropout=config.dropout if config.n_layers > 1 else 0.0)
        self.out = nn.Sequential(nn.Linear(config.hidden_size, config.hidden_size // 2),
                                 nn.LeakyReLU(0.01, inplace=True),
                                 nn.Linear(config.hidden_size // 2, level_dim))

    def style(self, speaker, eps=None):
        """speaker (B,) -> z, mu, logvar (B, z_dim); z = mu without eps (deterministic), else mu + eps * std."""
        context = self.speaker_embedding(speaker)
        mu, logvar = self.speaker_mu(context), self.speaker_logvar(context)
        z = mu if eps is None else mu + eps * torch.exp(0.5 * logvar)
        return z, mu, logvar

    def forward(self, pre_seq, word_vectors, audio_feat, speaker, eps=None, text=None):
        """pre_seq (B, T, d+1), word_vectors (B, T, word_dim), audio_feat (B, T, 32), speaker (B,), eps (B, 16)|None,
        text: this level's text features (B, T, 32) if already computed (then word_vectors is unused)
        -> dict: out (B, T, d), z/mu/logvar (B, 16), text (B, T, 32)."""
        if text is None:
            text = self.text_encoder(word_vectors)
        z, mu, logvar = self.style(speaker, eps)
        z_seq = z[:, None, :].expand(-1, pre_seq.shape[1], -1)
        hidden, _ = self.gru(torch.cat((pre_seq, audio_feat, text, z_seq), dim=2))
        hidden = hidden[:, :, :self.hidden_size] + hidden[:, :, self.hidden_size:]  # sum the two directions
        return {"out": self.out(hidden), "z": z, "mu": mu, "logvar": logvar, "text": text}


def previous_level_copy(config: HA2GConfig, k: int) -> tuple[list[int], list[float]]:
    """For level k >= 1: per channel of pre_seq_k (d_k + 1), the channel of level k-1's output copied into it for
    frames 4..33, and a 0/1 mask (0 = stays zero). Bones of level k-1 go to their slot in level k.

    With `official_head_copy_bug` (TED Expressive), the official code's extra `pre_seq[:, 4:, -15:] = prev[:, 4:,
    -15:]` is reproduced: pre_seq has one more channel than the pose, so the 5 head bones land one channel late,
    their first channel stays 0 and the constraint bit receives the previous level's last channel.
    """
    levels = config.skeleton_def.levels
    prev, cur = levels[k - 1], levels[k]
    d_prev, d_cur = 3 * len(prev), 3 * len(cur)
    src, mask = [0] * (d_cur + 1), [0.0] * (d_cur + 1)
    for i, bone in enumerate(prev):
        j = cur.index(bone)
        for c in range(3):
            src[3 * j + c], mask[3 * j + c] = 3 * i + c, 1.0
    if config.official_head_copy_bug:
        mask[d_cur - 15] = 0.0
        for t in range(15):
            src[d_cur - 14 + t], mask[d_cur - 14 + t] = d_prev - 15 + t, 1.0
    return src, mask


class HierarchicalPoseGenerator(nn.Module):
    def __init__(self, config: HA2GConfig):
        super().__init__()
        self.n_pre, self.n_frames = config.n_pre_poses, config.n_poses
        skeleton = config.skeleton_def
        self.levels = nn.ModuleList(LevelGenerator(config, d) for d in skeleton.level_dims)
        # index tables derived from the skeleton (not weights: persistent=False keeps them out of checkpoints)
        for k, channels in enumerate(skeleton.level_channels):
            self.register_buffer(f"seed_index_{k}", torch.tensor(channels), persistent=False)
            if k > 0:
                src, mask = previous_level_copy(config, k)
                self.register_buffer(f"copy_index_{k}", torch.tensor(src), persistent=False)
                self.register_buffer(f"copy_mask_{k}", torch.tensor(mask), persistent=False)

    def pre_seq(self, k: int, seed, prev):
        """seed (B, 4, pose_dim) full-skeleton seed frames, prev (B, T, d_{k-1}) or None -> (B, T, d_k + 1)."""
        seed_k = seed.index_select(2, getattr(self, f"seed_index_{k}"))
        head = torch.cat((seed_k, torch.ones_like(seed_k[:, :, :1])), dim=2)  # constraint bit = 1
        if prev is None:
            tail = seed_k.new_zeros(seed_k.shape[0], self.n_frames - self.n_pre, seed_k.shape[2] + 1)
        else:
            tail = prev[:, self.n_pre:].index_select(2, getattr(self, f"copy_index_{k}")) \
                * getattr(self, f"copy_mask_{k}")
        return torch.cat((head, tail), dim=1)

    def forward(self, blends, word_vectors, seed, speaker, noise=None, texts=None):
        """blends / word_vectors: one (B, T, .) tensor per level; seed (B, 4, pose_dim); speaker (B,);
        noise: None (z = mu) or (B, n_levels, z_dim) eps; texts: the levels' text features if already computed
        (`HA2G.encode_window`; word_vectors may then be None). Returns a dict of per-level lists:
        out, pre_seq, z, mu, logvar, text."""
        results = {name: [] for name in ("out", "pre_seq", "z", "mu", "logvar", "text")}
        prev = None
        for k, level in enumerate(self.levels):
            pre_seq = self.pre_seq(k, seed, prev)
            step = level(pre_seq, None if word_vectors is None else word_vectors[k], blends[k], speaker,
                         None if noise is None else noise[:, k], None if texts is None else texts[k])
            step["pre_seq"] = pre_seq
            for name in results:
                results[name].append(step[name])
            prev = step["out"]
        return results
