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
from torch.utils.data import DataLoader
from tqdm import tqdm

from training.data import WindowBatches, WindowDataset
from training.feature_net import FeatureNet, FeatureNetConfig, save_feature_net


def poses(batches):
    """(normalised poses, per-value validity) of a DataLoader's batches of windows: the bone mask repeated over each
    bone's 3 coordinates, so that placeholders (a source's missing bones) are never learnt as motion."""
    return ((batch[2], batch[4].repeat_interleave(3, dim=-1)) for batch in batches)


def masked_l1(recon: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    return (recon - target).abs().mul(valid).sum() / valid.sum().clamp(min=1)


def train_feature_net(data_dir: str, out_dir: str, epochs: int = 100, batch_size: int = 128, seed: int = 0,
                      feature_dim: int | None = None, device: str = "cpu", workers: int = 2) -> dict:
    """Streams the windows (training.data) as training does: memory does not grow with the data set."""
    torch.manual_seed(seed)
    train = WindowDataset(data_dir, "train")
    order = WindowBatches(train.shard_of(), min(batch_size, len(train)), seed)
    train_loader = DataLoader(train, batch_sampler=order, num_workers=workers)
    try:
        val_loader = DataLoader(WindowDataset(data_dir, "val"), batch_size=batch_size, num_workers=workers)
    except ValueError:  # no val windows: report the train loss only
        val_loader = None
    pose_dim = train.skeleton.pose_dim
    net = FeatureNet(FeatureNetConfig(pose_dim=pose_dim, feature_dim=feature_dim or (128 if pose_dim == 126 else 32)))
    net.to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=5e-4, betas=(0.5, 0.999))
    history = []
    bar = tqdm(range(epochs), desc="feature net", unit="epoch")
    for epoch in bar:
        net.train()
        order.set_epoch(epoch)
        losses = []
        for batch, valid in poses(train_loader):
            batch, valid = batch.to(device), valid.to(device)
            if len(batch) < 2:  # batch norm needs 2+ samples
                continue
            recon, _, _ = net(batch)
            loss = masked_l1(recon, batch, valid)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        row = {"epoch": epoch, "train_l1": float(np.mean(losses))}
        if val_loader is not None:
            net.eval()
            with torch.no_grad():
                errors = [(masked_l1(net(b.to(device))[0], b.to(device), v.to(device)).item(), len(b))
                          for b, v in poses(val_loader)]
            row["val_l1"] = sum(e * n for e, n in errors) / sum(n for _, n in errors)
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
