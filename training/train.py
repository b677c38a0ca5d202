"""Train HA2G on a windows data set.

    python -m training.train --config training/configs/compact_expressive.yaml [--resume] [key=value ...]

Every loss of the paper with its weight (shared/spec/ha2g.md, "Training"), from `ha2g_model.losses`:
    loss = W_reg * sum_k Huber_k + 0.1 KLD + 0.05 div_reg + [epoch >= warm-up] 5 L_G + 0.2 CE_high - 0.005 CE_low
           + 0.01 L_phys
Adam lr 5e-4 betas (0.5, 0.999), discriminator lr x 0.2, trained from the end of the GAN warm-up on. CPU or CUDA
(mixed precision on CUDA), seeded, resumable from `<out>/last.pt`, TensorBoard logs in `<out>/tb` (when tensorboard
is installed), the best checkpoint by validation FGD in `<out>/best`, periodic ones in `<out>/epoch_XXXX`.
Checkpoints are ha2g_model.checkpoint directories (safetensors + JSON); `last.pt` holds only tensors and numbers
and is read with torch.load(weights_only=True).
"""
from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
import yaml
from tqdm import tqdm

from ha2g_model.checkpoint import save_checkpoint
from ha2g_model.config import HA2GConfig
from ha2g_model.losses import LossWeights, discriminator_loss, generator_objective, huber
from ha2g_model.model import HA2G
from ha2g_model.text import load_word_vectors
from training.metrics import frechet_distance
from training.windows import N_SEED, Windows, load_vocab, load_windows


@dataclass
class TrainConfig:
    data: str  # windows data set directory (training/windows.py)
    out: str  # run directory: last.pt, best/, epoch_XXXX/, tb/, log.jsonl
    preset: str = "compact_expressive"  # ha2g_model.config.PRESETS; n_words / n_speakers come from the data
    model: dict = field(default_factory=dict)  # overrides of the preset's HA2GConfig fields
    word_vectors: str | None = None  # FastText .vec/.bin; None: the offline hashed subword vectors
    epochs: int = 100
    batch_size: int = 96
    lr: float = 5e-4
    betas: tuple[float, float] = (0.5, 0.999)
    d_lr_scale: float = 0.2
    gan_warmup_epochs: int = 10  # the discriminator and L_G start after this many epochs
    w_reg: float | None = None  # None: 70 (TED Gesture) / 250 (TED Expressive), as the official configs
    w_kld: float = 0.1
    w_div: float = 0.05
    w_gan: float = 5.0
    w_ce_high: float = 0.2
    w_ce_low: float = 0.005  # subtracted: the low-level audio features are pushed away from the text
    w_phys: float = 0.01
    source_weights: dict = field(default_factory=dict)  # sampling weight per source, e.g. {ted_culture: 8}
    seed: int = 0
    device: str = "auto"  # auto = cuda if available
    amp: bool = True  # mixed precision, CUDA only
    threads: int = 2  # CPU threads (shared machines: keep it small)
    feature_net: str | None = None  # FGD feature net directory; None: the best checkpoint is chosen by val loss
    eval_every: int = 1  # epochs
    checkpoint_every: int = 10  # epochs
    max_minutes: float | None = None  # stop (and save) after this wall time
    max_steps: int | None = None

    @staticmethod
    def from_yaml(path: str, overrides: list[str] = ()) -> "TrainConfig":
        values = yaml.safe_load(Path(path).read_text()) or {}
        for item in overrides:
            key, _, text = item.partition("=")
            values[key] = yaml.safe_load(text)
        known = {f.name for f in fields(TrainConfig)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{path}: unknown training options {unknown}; known: {sorted(known)}")
        if "betas" in values:
            values["betas"] = tuple(values["betas"])
        return TrainConfig(**values)


# --- data -----------------------------------------------------------------------------------------------------------

class Batches:
    """Tensors of one split on the device, and batches of them (weighted by source when asked)."""

    def __init__(self, windows: Windows, device: torch.device, source_weights: dict | None = None):
        self.n = len(windows)
        self.pose = torch.from_numpy(windows.normalized_poses()).to(device)
        self.spec = torch.from_numpy(windows.spec.astype(np.float32)).to(device)
        self.words = torch.from_numpy(windows.words.astype(np.int64)).to(device)
        self.speaker = torch.from_numpy(windows.speaker.astype(np.int64)).to(device)
        weights = np.ones(self.n)
        if source_weights:
            sources = windows.sources()
            weights = np.asarray([float(source_weights.get(s, 1.0)) for s in sources])
        self.weights = torch.from_numpy(weights / weights.sum())

    def epoch_order(self, generator: torch.Generator) -> torch.Tensor:
        if torch.all(self.weights == self.weights[0]):
            return torch.randperm(self.n, generator=generator)
        return torch.multinomial(self.weights, self.n, replacement=True, generator=generator)

    def get(self, index: torch.Tensor) -> tuple[torch.Tensor, ...]:
        index = index.to(self.pose.device)
        return self.spec[index], self.words[index], self.pose[index], self.speaker[index]


# --- evaluation -----------------------------------------------------------------------------------------------------

def fgd_to(feature_net, real: torch.Tensor):
    """A function: generated windows -> their FGD to the windows `real`. The real windows' features are computed
    here, once, instead of at every validation: the feature net does not change."""
    real_features = feature_net.features(real).numpy()
    return lambda generated: frechet_distance(feature_net.features(generated).numpy(), real_features)


@torch.no_grad()
def validate(model: HA2G, val: Batches, batch_size: int, fgd=None) -> dict:
    """Deterministic generation (z = mu) from the true seed frames: val regression loss, L1, and FGD when `fgd`
    (from `fgd_to`) is given."""
    model.eval()
    generated, losses = [], []
    for i in range(0, val.n, batch_size):
        spec, words, pose, speaker = val.get(torch.arange(i, min(i + batch_size, val.n)))
        out = model.generate_window(spec, words, pose[:, :N_SEED], speaker)
        losses.append(huber(out, pose).item() * len(pose))
        generated.append(out.float().cpu())
    model.train()
    generated = torch.cat(generated)
    real = val.pose.cpu()
    result = {"val_huber": sum(losses) / val.n, "val_l1": float((generated - real).abs().mean())}
    if fgd is not None:
        result["val_fgd"] = fgd(generated)
    return result


# --- the loop -------------------------------------------------------------------------------------------------------

def train(cfg: TrainConfig, resume: bool = False) -> dict:
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    device = torch.device("cuda" if cfg.device == "auto" and torch.cuda.is_available() else
                          "cpu" if cfg.device == "auto" else cfg.device)
    use_amp = cfg.amp and device.type == "cuda"
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg_dict = asdict(cfg) | {"betas": list(cfg.betas)}  # yaml.safe_dump cannot write tuples
    (out / "train_config.yaml").write_text(yaml.safe_dump(cfg_dict, sort_keys=False))

    # data and model: vocabulary and speakers come from the data set
    vocab = load_vocab(cfg.data)
    train_windows = load_windows(cfg.data, "train")
    speakers = train_windows.index["speakers"]
    model_cfg = HA2GConfig.preset(cfg.preset, **{"n_words": len(vocab), "n_speakers": len(speakers), **cfg.model})
    if model_cfg.skeleton != train_windows.index["skeleton"]:
        raise ValueError(f"preset {cfg.preset} is for {model_cfg.skeleton} but {cfg.data} holds "
                         f"{train_windows.index['skeleton']} windows")
    train_data = Batches(train_windows, device, cfg.source_weights)
    try:
        val_data = Batches(load_windows(cfg.data, "val"), device)
    except ValueError:
        val_data = None
        print(f"{cfg.data} has no val windows: no validation, the best checkpoint is the last one")
    fgd = None
    if cfg.feature_net:
        from training.feature_net import load_feature_net

        feature_net = load_feature_net(cfg.feature_net)
        if val_data is not None:
            fgd = fgd_to(feature_net, val_data.pose.cpu())
    model = HA2G(model_cfg).to(device)
    vectors = torch.from_numpy(load_word_vectors(vocab, cfg.word_vectors, model_cfg.word_dim))
    with torch.no_grad():
        for table in model.word_embeddings:
            table.weight.copy_(vectors)
    official = LossWeights.official(model_cfg.skeleton)
    weights = LossWeights(regression=official.regression if cfg.w_reg is None else cfg.w_reg, kld=cfg.w_kld,
                          diversity=cfg.w_div, gan=cfg.w_gan, contrastive_pos=cfg.w_ce_high,
                          contrastive_neg=cfg.w_ce_low, physical=cfg.w_phys, warmup_epochs=cfg.gan_warmup_epochs)

    generator_params = [p for n, p in model.named_parameters() if not n.startswith("discriminator.")]
    opt_g = torch.optim.Adam(generator_params, lr=cfg.lr, betas=cfg.betas)
    opt_d = torch.optim.Adam(model.discriminator.parameters(), lr=cfg.lr * cfg.d_lr_scale, betas=cfg.betas)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    rng = torch.Generator().manual_seed(cfg.seed)
    state = {"epoch": 0, "step": 0, "best": math.inf, "best_epoch": -1}
    if resume and (out / "last.pt").exists():
        saved = torch.load(out / "last.pt", map_location=device, weights_only=True)
        model.load_state_dict(saved["model"])
        opt_g.load_state_dict(saved["opt_g"])
        opt_d.load_state_dict(saved["opt_d"])
        scaler.load_state_dict(saved["scaler"])
        rng.set_state(saved["rng"])
        torch.set_rng_state(saved["torch_rng"])
        state = {k: saved[k] for k in state}
        print(f"resumed from {out / 'last.pt'} at epoch {state['epoch']} step {state['step']}")

    meta = {"train_config": cfg_dict, "speakers": speakers,
            "data_sources": train_windows.index["sources"]}
    writer = _tensorboard(out / "tb")
    log = open(out / "log.jsonl", "a")
    started = time.time()
    steps_per_epoch = max(1, train_data.n // cfg.batch_size)
    model.train()
    stop = False
    last_val = {}
    while state["epoch"] < cfg.epochs and not stop:
        epoch = state["epoch"]
        gan_on = epoch >= cfg.gan_warmup_epochs
        order = train_data.epoch_order(rng)
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch}", unit="batch", leave=False)
        sums: dict[str, float] = {}
        for b in bar:
            spec, words, target, speaker = train_data.get(order[b * cfg.batch_size:(b + 1) * cfg.batch_size])
            seed_frames = target[:, :N_SEED]
            with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
                # generator pass: every term of the paper (ha2g_model.losses), weighted; epochs count from 1 there
                result = model(spec, words, seed_frames, speaker)
                total, values = generator_objective(model, result, target, words, speaker, epoch + 1, weights)
            opt_g.zero_grad(set_to_none=True)
            scaler.scale(total).backward()
            scaler.step(opt_g)
            values["total"] = total.item()
            # discriminator pass, after the warm-up: real windows vs the generated ones (detached)
            if gan_on:
                with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
                    real = model.discriminate(target).float()
                    fake = model.discriminate(result.pose.detach()).float()
                    loss_d = discriminator_loss(real, fake)
                opt_d.zero_grad(set_to_none=True)
                scaler.scale(loss_d).backward()
                scaler.step(opt_d)
                values["gan_d"] = loss_d.item()
            scaler.update()
            if not math.isfinite(values["total"]):
                raise FloatingPointError(f"loss became {values['total']} at step {state['step']}: {values}")
            for k, v in values.items():
                sums[k] = sums.get(k, 0.0) + v
            state["step"] += 1
            bar.set_postfix(total=f"{values['total']:.3f}", huber=f"{values['huber']:.4f}",
                            d=f"{values.get('gan_d', 0):.3f}")
            if writer is not None:
                for k, v in values.items():
                    writer.add_scalar(f"train/{k}", v, state["step"])
            out_of_time = cfg.max_minutes is not None and time.time() - started > 60 * cfg.max_minutes
            if out_of_time or (cfg.max_steps is not None and state["step"] >= cfg.max_steps):
                stop = True
                break
        state["epoch"] += 1
        row = {"epoch": epoch, "step": state["step"], "gan": gan_on,
               **{f"train_{k}": v / max(1, b + 1) for k, v in sums.items()}}

        # validation, best checkpoint, periodic checkpoints, resume state
        if val_data is not None and (state["epoch"] % cfg.eval_every == 0 or stop or state["epoch"] == cfg.epochs):
            last_val = validate(model, val_data, cfg.batch_size, fgd)
            row.update(last_val)
            if writer is not None:
                for k, v in last_val.items():
                    writer.add_scalar(f"val/{k[4:]}", v, state["step"])
            score = last_val.get("val_fgd", last_val["val_huber"])
            if score < state["best"]:
                state["best"], state["best_epoch"] = score, epoch
                save_checkpoint(out / "best", model, vocab, meta | {"epoch": epoch, "step": state["step"],
                                                                    "val": last_val})
        if state["epoch"] % cfg.checkpoint_every == 0:
            save_checkpoint(out / f"epoch_{state['epoch']:04d}", model, vocab, meta | {"epoch": epoch})
        if val_data is None:
            save_checkpoint(out / "best", model, vocab, meta | {"epoch": epoch, "step": state["step"]})
        torch.save({"model": model.state_dict(), "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(),
                    "scaler": scaler.state_dict(), "rng": rng.get_state(), "torch_rng": torch.get_rng_state(),
                    **state}, out / "last.pt")
        log.write(json.dumps(row) + "\n")
        log.flush()
        tqdm.write(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
    log.close()
    if writer is not None:
        writer.close()
    return {**state, **last_val}


def _tensorboard(path: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        print("tensorboard is not installed (pip install tensorboard): no TensorBoard logs, log.jsonl only")
        return None
    return SummaryWriter(str(path))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="training YAML (training/configs/*.yaml)")
    parser.add_argument("--resume", action="store_true", help="continue from <out>/last.pt if it exists")
    parser.add_argument("overrides", nargs="*", help="key=value overrides of the YAML, e.g. epochs=5")
    args = parser.parse_args()
    result = train(TrainConfig.from_yaml(args.config, args.overrides), resume=args.resume)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
