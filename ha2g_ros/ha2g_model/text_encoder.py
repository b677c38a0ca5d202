"""The text encoder: frame-aligned word vectors -> a causal temporal convolution network (TCN) -> (B, T, 32).

Bai et al. 2018's TCN as used by Trimodal/HA2G: n_layers residual blocks of `hidden_size` channels, kernel 2, dilation
1, 2, 4, ..., each block two weight-normalised causal convolutions (left-padded, so frame t never sees words after
t) with ReLU and dropout, and a 1x1 convolution on the residual path when the width changes.

The word-embedding table is not part of this module: HA2G owns the one table that all its text encoders read (the
official encoders' tables alias one array, see config.py), so a vocabulary-sized table exists once.
"""
from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import weight_norm

from ha2g_model.config import HA2GConfig


class TemporalBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, kernel: int, dilation: int, dropout: float):
        super().__init__()
        self.pad = (kernel - 1) * dilation  # left padding only: causal
        self.conv1 = weight_norm(nn.Conv1d(in_ch, out_ch, kernel, dilation=dilation))
        self.conv2 = weight_norm(nn.Conv1d(out_ch, out_ch, kernel, dilation=dilation))
        self.dropout = nn.Dropout(dropout)
        self.downsample = nn.Conv1d(in_ch, out_ch, 1) if in_ch != out_ch else None
        if self.downsample is not None:
            nn.init.normal_(self.downsample.weight, 0, 0.01)  # as the TCN reference does

    def forward(self, x):  # (B, C, T)
        out = self.dropout(F.relu(self.conv1(F.pad(x, (self.pad, 0)))))
        out = self.dropout(F.relu(self.conv2(F.pad(out, (self.pad, 0)))))
        residual = x if self.downsample is None else self.downsample(x)
        return F.relu(out + residual)


class TextEncoder(nn.Module):
    def __init__(self, config: HA2GConfig):
        super().__init__()
        self.emb_dropout = nn.Dropout(config.emb_dropout)
        channels = [config.word_dim] + [config.hidden_size] * config.n_layers
        self.tcn = nn.Sequential(*[
            TemporalBlock(channels[i], channels[i + 1], config.tcn_kernel, 2 ** i, config.dropout)
            for i in range(config.n_layers)])
        self.decoder = nn.Linear(config.hidden_size, config.feat_dim)
        nn.init.normal_(self.decoder.weight, 0, 0.01)
        nn.init.zeros_(self.decoder.bias)

    def forward(self, word_vectors):
        """word_vectors (B, T, word_dim) -> (B, T, feat_dim)."""
        y = self.tcn(self.emb_dropout(word_vectors).transpose(1, 2))
        return self.decoder(y.transpose(1, 2))
