"""The convolutional discriminator: is a full-skeleton pose window (B, 34, pose_dim) real?

Three 1-D convolutions over time (34 -> 28 frames, BN + LeakyReLU between), a 4-layer bidirectional GRU (directions
summed), a per-frame score and a linear layer over the 28 frames, then a sigmoid. As in the official code it looks
at poses only (the text input of the official signature is unused).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ha2g_model.config import HA2GConfig


class Discriminator(nn.Module):
    def __init__(self, config: HA2GConfig):
        super().__init__()
        self.hidden_size = config.disc_hidden
        self.pre_conv = nn.Sequential(
            nn.Conv1d(config.pose_dim, 16, 3), nn.BatchNorm1d(16), nn.LeakyReLU(0.01, inplace=True),
            nn.Conv1d(16, 8, 3), nn.BatchNorm1d(8), nn.LeakyReLU(0.01, inplace=True),
            nn.Conv1d(8, 8, 3))
        self.gru = nn.GRU(8, config.disc_hidden, num_layers=config.disc_layers, batch_first=True,
                          bidirectional=True, dropout=0.3 if config.disc_layers > 1 else 0.0)
        self.out = nn.Linear(config.disc_hidden, 1)
        self.out2 = nn.Linear(config.n_poses - 6, 1)  # three valid k3 convolutions remove 6 frames

    def forward(self, poses):
        """poses (B, 34, pose_dim) normalised direction vectors -> probability of "real" (B, 1)."""
        feat = self.pre_conv(poses.transpose(1, 2)).transpose(1, 2)  # (B, 28, 8)
        hidden, _ = self.gru(feat)
        hidden = hidden[:, :, :self.hidden_size] + hidden[:, :, self.hidden_size:]
        return torch.sigmoid(self.out2(self.out(hidden).squeeze(2)))
