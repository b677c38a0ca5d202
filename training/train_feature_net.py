"""Train the FGD feature network (the official pose autoencoder) on the train windows of a data set.

    python -m training.train_feature_net --data data/windows --out runs/feature_net --epochs 100

As in Tri's `train_feature_extractor.py`: L1 reconstruction of normalised 34-frame windows, Adam lr 5e-4 betas
(0.5, 0.999), no variational sampling. The network is only a measuring instrument: train it once per data set (or
skeleton) and evaluate every model against the same one, or FGD values are not comparable.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from training.feature_net import FeatureNet, FeatureNetConfig, save_feature_net
from training.windows import load_windows


def normalised_windows(data_dir: str, split: str) -> torch.Tensor:
    return torch.from_numpy(load_windows(data_dir, split, ("dir_vec",)).normalized_poses())  # no audio


def train_feature_net(data_dir: str, out_dir: str, epochs: int = 100, batch_size: int = 128, seed: int = 0,
                      feature_dim: int | None = None, device: str = "cpu") -> dict:
    torch.manual_seed(seed)
    train = normalised_windows(data_dir, "train")
    try:
        val = normalised_windows(data_dir, "val")
    except ValueError:  # no val windows: report the train loss only
        val = None
    pose_dim = train.shape[-1]
    net = FeatureNet(FeatureNetConfig(pose_dim=pose_dim, feature_dim=feature_dim or (128 if pose_dim == 126 else 32)))
    net.to(device)
    if val is not None:
        val = val.to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=5e-4, betas=(0.5, 0.999))
    generator = torch.Generator().manual_seed(seed)
    history = []
    bar = tqdm(range(epochs), desc="feature net", unit="epoch")
    for epoch in bar:
        net.train()
        order = torch.randperm(len(train), generator=generator)
        losses = []
        for i in range(0, len(order), batch_size):
            batch = train[order[i:i + batch_size]].to(device)
            if len(batch) < 2:  # batch norm needs 2+ samples
                continue
            recon, _, _ = net(batch)
            loss = F.l1_loss(recon, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        row = {"epoch": epoch, "train_l1": float(np.mean(losses))}
        if val is not None:
            net.eval()
            with torch.no_grad():
                row["val_l1"] = float(F.l1_loss(net(val)[0], val))
        history.append(row)
        bar.set_postfix({k: round(v, 4) for k, v in row.items() if k != "epoch"})
    save_feature_net(out_dir, net.cpu(), {"data": str(data_dir), "epochs": epochs, "seed": seed,
                                          "final": history[-1]})
    return history[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="windows data set directory")
    parser.add_argument("--out", required=True, help="output directory (feature_net.safetensors + .json)")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--feature-dim", type=int, default=None, help="default: 128 (Expressive), 32 (Gesture)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    final = train_feature_net(args.data, args.out, args.epochs, args.batch_size, args.seed, args.feature_dim,
                              "cuda" if torch.cuda.is_available() else "cpu")
    print(f"feature net saved to {args.out}: {final}")


if __name__ == "__main__":
    main()
