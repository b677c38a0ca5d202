"""The Hierarchical Audio Learner: a ResNetSE34V2-like encoder with three feature heads and style-aware blending.

A log-mel window (B, 128 mels, 70 columns) goes through a squeeze-and-excitation ResNet; the outputs of stages 2, 3
and 4 become per-frame "low", "mid" and "high" audio features (B, 34, 32). A speaker's style decides, per pose
level, a softmax mixture of the three: level k of the pose generator gets blend_k = w_low*low + w_mid*mid + w_high*high.

Layer order follows the official code (HA2G/scripts/model/ResNetSE34V2.py and voxceleb_trainer's SEBasicBlock):
convolutions are followed by ReLU and THEN batch norm (conv -> ReLU -> BN) in the stem, the first conv of every block
and the three heads; module names match the official state dict so official checkpoints map by prefix.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ha2g_model.config import HA2GConfig


class SELayer(nn.Module):
    """Squeeze-and-excitation: rescale channels by a gate computed from their global average."""

    def __init__(self, channels: int, reduction: int):
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(channels, channels // reduction), nn.ReLU(inplace=True),
                                nn.Linear(channels // reduction, channels), nn.Sigmoid())

    def forward(self, x):  # (B, C, H, W)
        gate = self.fc(x.mean(dim=(2, 3)))
        return x * gate[:, :, None, None]


class SEBasicBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, stride: int, reduction: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.se = SELayer(out_ch, reduction)
        self.downsample = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(out_ch))

    def forward(self, x):
        out = self.bn1(F.relu(self.conv1(x)))  # ReLU before BN, as in the official block
        out = self.se(self.bn2(self.conv2(out)))
        residual = x if self.downsample is None else self.downsample(x)
        return F.relu(out + residual)


def _stage(in_ch: int, out_ch: int, n_blocks: int, stride: int, reduction: int) -> nn.Sequential:
    blocks = [SEBasicBlock(in_ch, out_ch, stride, reduction)]
    blocks += [SEBasicBlock(out_ch, out_ch, 1, reduction) for _ in range(n_blocks - 1)]
    return nn.Sequential(*blocks)


class AudioEncoder(nn.Module):
    def __init__(self, config: HA2GConfig):
        super().__init__()
        w, n, r = config.audio_widths, config.audio_blocks, config.se_reduction
        self.n_levels = config.n_levels
        self.conv1 = nn.Conv2d(1, w[0], 3, padding=1)
        self.bn1 = nn.BatchNorm2d(w[0])
        self.layer1 = _stage(w[0], w[0], n[0], 1, r)
        self.layer2 = _stage(w[0], w[1], n[1], 2, r)  # -> (w1, mels/2, 35)
        self.layer3 = _stage(w[1], w[2], n[2], 2, r)  # -> (w2, mels/4, 18)
        self.layer4 = _stage(w[2], w[3], n[3], 2, r)  # -> (w3, mels/8, 9)
        # Heads: every one ends at 34 time steps. low: conv k2 on 35 columns; mid/high: pixel shuffle back to
        # mels/2 x 36, then conv k3. The linear layers see one frame as (channels x frequency), channel-major.
        half = config.n_mels // 2
        self.conv_low = nn.Conv2d(w[1], w[1], 2)
        self.bn_low = nn.BatchNorm2d(w[1])
        self.fc_low = nn.Linear((half - 1) * w[1], config.feat_dim)
        self.conv_mid = nn.Conv2d(w[2] // 4, w[2] // 4, 3)
        self.bn_mid = nn.BatchNorm2d(w[2] // 4)
        self.fc_mid = nn.Linear((half - 2) * (w[2] // 4), config.feat_dim)
        self.conv_high = nn.Conv2d(w[3] // 16, w[3] // 16, 3)
        self.bn_high = nn.BatchNorm2d(w[3] // 16)
        self.fc_high = nn.Linear((half - 2) * (w[3] // 16), config.feat_dim)
        # style: speaker id -> softmax weights over (low, mid, high) for each pose level
        self.speaker_embedding = nn.Sequential(nn.Embedding(config.n_speakers, 16), nn.Linear(16, 16))
        self.fc1 = nn.Linear(16, 32)
        self.fc2 = nn.Linear(32, 3 * self.n_levels)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    @staticmethod
    def _frames(feat, fc: nn.Linear):
        """(B, C, F, T) -> (B, T, feat_dim): one vector per frame from all channels and frequencies."""
        b, c, f, t = feat.shape
        return fc(feat.reshape(b, c * f, t).transpose(1, 2))

    def forward(self, spec, speaker):
        """spec (B, n_mels, 70) log-mel dB, speaker (B,) ids -> dict of weight (B, 3, L), low/mid/high (B, 34, D),
        blends: list of L tensors (B, 34, D), speaker_emb (B, 16)."""
        x = self.bn1(F.relu(self.conv1(spec.unsqueeze(1))))
        x = self.layer1(x)
        feat1 = self.layer2(x)
        feat2 = self.layer3(feat1)
        feat3 = self.layer4(feat2)
        low = self._frames(self.bn_low(F.relu(self.conv_low(feat1))), self.fc_low)
        mid = self._frames(self.bn_mid(F.relu(self.conv_mid(F.pixel_shuffle(feat2, 2)))), self.fc_mid)
        high = self._frames(self.bn_high(F.relu(self.conv_high(F.pixel_shuffle(feat3, 4)))), self.fc_high)

        speaker_emb = self.speaker_embedding(speaker)
        logits = self.fc2(F.elu(self.fc1(F.elu(speaker_emb))))
        weight = torch.softmax(logits.reshape(-1, 3, self.n_levels), dim=1)  # (B, 3 audio levels, L pose levels)
        blends = [low * weight[:, 0, k, None, None] + mid * weight[:, 1, k, None, None]
                  + high * weight[:, 2, k, None, None] for k in range(self.n_levels)]
        return {"weight": weight, "low": low, "mid": mid, "high": high, "blends": blends,
                "speaker_emb": speaker_emb}
