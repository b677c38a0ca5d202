"""The FGD feature network: the official pose autoencoder (Tri's EmbeddingNet in "pose" mode).

Layer for layer the architecture of ai4r/Gesture-Generation-from-Trimodal-Context `embedding_net.py`
(PoseEncoderConv + PoseDecoderConv) for 34-frame windows, so FGD numbers mean what they mean in the papers: the
encoder's `mu` of a window of normalised direction vectors is the feature. The official code writes
`nn.LeakyReLU(True)` in the fully connected parts, which sets the negative slope to 1.0 (an identity, not a ReLU);
kept, because it is part of what the official features are. Feature width: 32 (TED Gesture, as in Tri), 128
(TED Expressive, as the HA2G authors' Expressive encoder).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

N_FRAMES = 34


@dataclass(frozen=True)
class FeatureNetConfig:
    pose_dim: int = 126
    feature_dim: int = 128


def _conv_bn_lrelu(c_in: int, c_out: int, downsample: bool = False) -> nn.Sequential:
    conv = nn.Conv1d(c_in, c_out, kernel_size=4, stride=2) if downsample else nn.Conv1d(c_in, c_out, kernel_size=3)
    return nn.Sequential(conv, nn.BatchNorm1d(c_out), nn.LeakyReLU(0.2, inplace=True))


class PoseEncoderConv(nn.Module):
    def __init__(self, pose_dim: int, feature_dim: int):
        super().__init__()
        # time: 34 -> 32 -> 30 -> 14 (stride 2) -> 12; 32 channels x 12 = 384
        self.net = nn.Sequential(_conv_bn_lrelu(pose_dim, 32), _conv_bn_lrelu(32, 64),
                                 _conv_bn_lrelu(64, 64, downsample=True), nn.Conv1d(64, 32, 3))
        self.out_net = nn.Sequential(nn.Linear(384, 256), nn.BatchNorm1d(256), nn.LeakyReLU(True),
                                     nn.Linear(256, 128), nn.BatchNorm1d(128), nn.LeakyReLU(True),
                                     nn.Linear(128, feature_dim))
        self.fc_mu = nn.Linear(feature_dim, feature_dim)
        self.fc_logvar = nn.Linear(feature_dim, feature_dim)

    def forward(self, poses: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """poses (B, 34, pose_dim) normalised -> (mu, logvar), each (B, feature_dim)."""
        out = self.out_net(self.net(poses.transpose(1, 2)).flatten(1))
        return self.fc_mu(out), self.fc_logvar(out)


class PoseDecoderConv(nn.Module):
    def __init__(self, pose_dim: int, feature_dim: int):
        super().__init__()
        self.pre_net = nn.Sequential(nn.Linear(feature_dim, 64), nn.BatchNorm1d(64), nn.LeakyReLU(True),
                                     nn.Linear(64, 136))
        # (B, 4, 34) -> 36 -> 38 -> 36 -> 34 frames
        self.net = nn.Sequential(nn.ConvTranspose1d(4, 32, 3), nn.BatchNorm1d(32), nn.LeakyReLU(0.2, True),
                                 nn.ConvTranspose1d(32, 32, 3), nn.BatchNorm1d(32), nn.LeakyReLU(0.2, True),
                                 nn.Conv1d(32, 32, 3), nn.Conv1d(32, pose_dim, 3))

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        out = self.pre_net(feat).view(feat.shape[0], 4, N_FRAMES)
        return self.net(out).transpose(1, 2)


class FeatureNet(nn.Module):
    """Autoencoder of 34-frame pose windows; `features` gives the FGD embedding."""

    def __init__(self, config: FeatureNetConfig):
        super().__init__()
        self.config = config
        self.encoder = PoseEncoderConv(config.pose_dim, config.feature_dim)
        self.decoder = PoseDecoderConv(config.pose_dim, config.feature_dim)

    def forward(self, poses: torch.Tensor, variational: bool = False):
        """-> (reconstruction (B, 34, pose_dim), mu, logvar)."""
        self._check(poses)
        mu, logvar = self.encoder(poses)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if variational else mu
        return self.decoder(z), mu, logvar

    @torch.no_grad()
    def features(self, poses: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        """(N, 34, pose_dim) normalised windows -> (N, feature_dim) encoder means, in eval mode."""
        self._check(poses)
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        out = torch.cat([self.encoder(poses[i:i + batch_size].to(device).float())[0].cpu()
                         for i in range(0, len(poses), batch_size)])
        self.train(was_training)
        return out

    def _check(self, poses: torch.Tensor) -> None:
        if poses.ndim != 3 or poses.shape[1:] != (N_FRAMES, self.config.pose_dim):
            raise ValueError(f"FeatureNet expects (B, {N_FRAMES}, {self.config.pose_dim}) windows, "
                             f"got {tuple(poses.shape)}")


def save_feature_net(path: str | Path, net: FeatureNet, meta: dict | None = None) -> None:
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path / "feature_net.safetensors"))
    (path / "feature_net.json").write_text(json.dumps({"config": asdict(net.config), "meta": meta or {}}, indent=1))


def load_feature_net(path: str | Path, device: str = "cpu") -> FeatureNet:
    path = Path(path)
    if not (path / "feature_net.safetensors").exists():
        raise FileNotFoundError(f"no FGD feature net in {path}: train one with python -m training.train_feature_net")
    info = json.loads((path / "feature_net.json").read_text())
    net = FeatureNet(FeatureNetConfig(**info["config"]))
    net.load_state_dict(load_file(str(path / "feature_net.safetensors")))
    return net.to(device).eval()
