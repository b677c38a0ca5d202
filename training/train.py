"""Train HA2G on a windows data set, on one process or on N with torchrun (DistributedDataParallel).

    python -m training.train --config training/configs/compact_expressive.yaml [--resume] [key=value ...]
    torchrun --nproc_per_node=N -m training.train --config ...      # N processes: one per GPU, or CPU shares

Every loss of the paper with its weight (shared/spec/ha2g.md, "Training"), from `ha2g_model.losses`:
    loss = W_reg * sum_k Huber_k + 0.1 KLD + 0.05 div_reg + [epoch >= warm-up] 5 L_G + 0.2 CE_high - 0.005 CE_low
           + 0.01 L_phys
Adam lr 5e-4 betas (0.5, 0.999), discriminator lr x 0.2, trained from the end of the GAN warm-up on.

Data streams from the shards (training.data): host memory does not grow with the data set. `batch_size` is the
global batch of one optimiser step whatever the number of processes; each process trains on its part, cut into
`accumulate` micro-batches (large batches on small GPUs). Generator and discriminator are each wrapped in
DistributedDataParallel (NCCL on GPUs, gloo on CPU), which all-reduces their gradients; rank 0 validates, logs and
writes checkpoints. Every random draw of a micro-batch is seeded by (seed, step, its place in the global batch), so
N processes reproduce one process with accumulate x N, and `--resume` continues mid-epoch at the next unseen batch.
Mixed precision on CUDA (`amp`): bf16 where the GPU has it, else fp16 with loss scaling.

Partial skeletons: windows carry a per-bone validity mask (training.windows); the reconstruction loss and the
discriminator's real windows use it (ha2g_model.losses), validation's Huber and L1 count valid bones only.
Mirroring (`mirror`: the probability that a training window is served as its left-right mirror image, audio and
words unchanged) is off by default: see docs/training.md.

Outputs: TensorBoard logs in `<out>/tb` (when tensorboard is installed), `<out>/log.jsonl`, the best checkpoint by
validation FGD in `<out>/best` (with its ONNX graphs, exported when the run ends, so that a robot runs it torch-free
without exporting at start-up), periodic ones in `<out>/epoch_XXXX`, the resume point `<out>/last.pt`. Checkpoints
are ha2g_model.checkpoint directories (safetensors + JSON); `last.pt` holds only tensors and numbers and is read with
torch.load(weights_only=True).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import yaml
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from ha2g_model.checkpoint import save_checkpoint
from ha2g_model.config import HA2GConfig
from ha2g_model.losses import (LossWeights, channel_mask, discriminator_loss, generator_objective, huber,
                               real_for_discriminator)
from ha2g_model.model import HA2G
from ha2g_model.onnx_export import export_checkpoint_graphs
from ha2g_model.text import load_word_vectors, with_generic_unknown
from training.data import WindowBatches, WindowDataset
from training.metrics import frechet_distance
from training.windows import N_SEED, load_vocab, speaker_posture_offsets


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
    mirror: float = 0.0  # probability of training on a window's left-right mirror image (audio, words unchanged)
    seed: int = 0
    device: str = "auto"  # auto = cuda if available (under torchrun: the process's LOCAL_RANK GPU)
    amp: bool | str = "auto"  # CUDA only: auto (bf16 where supported, else fp16), bf16, fp16, or off / false
    accumulate: int = 1  # micro-batches per process and optimiser step; batch_size stays the global batch
    workers: int = 2  # DataLoader worker processes per training process (0: read in the training process)
    shuffle_shards: int = 2  # shards read together (training.data.epoch_order): more mixes better, costs memory
    threads: int = 2  # CPU threads (shared machines: keep it small)
    feature_net: str | None = None  # FGD feature net directory; None: the best checkpoint is chosen by val loss
    eval_every: int = 1  # epochs
    checkpoint_every: int = 10  # epochs
    checkpoint_every_steps: int | None = None  # also write the resume point last.pt every this many steps
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


# --- processes, precision ----------------------------------------------------------------------------------------

def init_distributed(device: str) -> tuple[int, int, torch.device]:
    """(rank, world size, device). Under torchrun (WORLD_SIZE > 1) joins the process group: NCCL when training on
    GPUs (one per process, LOCAL_RANK), gloo on CPU; multi-node is torchrun's rendezvous, nothing here."""
    world, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda" and world > 1:
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    if dev.type == "cuda":
        if dev.index is None:  # torch.cuda.set_device refuses a bare "cuda" (torch 2.11)
            dev = torch.device("cuda", torch.cuda.current_device())
        torch.cuda.set_device(dev)
    if world > 1:
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return rank, world, dev


def amp_dtype(amp: bool | str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of the `amp` option, None for full precision (always on CPU)."""
    if amp not in (True, False, "auto", "bf16", "fp16", "off"):
        raise ValueError(f"amp must be auto, bf16, fp16 or off (or true / false), got {amp!r}")
    if device.type != "cuda" or amp is False or amp == "off":
        return None
    if amp is True or amp == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if amp == "bf16" else torch.float16


def seed_micro_batch(seed: int, step: int, chunk: int, phase: int) -> None:
    """Every random draw of a micro-batch (style noise, the diversity term's speaker permutation) comes from its
    place in training, not from how many processes came before: (seed, step, place in the global batch, G / D)."""
    torch.manual_seed(int(np.random.SeedSequence([seed, step, chunk, phase]).generate_state(1)[0]))


# --- the two trained halves, as modules for DistributedDataParallel ------------------------------------------------

class GeneratorStep(nn.Module):
    """The generator's pass and objective. Holds every part of the model but the discriminator, so that DDP reduces
    the generator's gradients only: L_G runs through the discriminator, whose gradients from it are discarded (its
    own step, `DiscriminatorStep`, zeroes them first), as in single-process training."""

    def __init__(self, model: HA2G, weights: LossWeights):
        super().__init__()
        self.parts = nn.ModuleDict({name: m for name, m in model.named_children() if name != "discriminator"})
        self.__dict__["model"] = model  # a plain attribute, not a submodule: its discriminator is not ours
        self.weights = weights

    def forward(self, spec, words, pose, speaker, epoch: int, valid=None):
        result = self.model(spec, words, pose[:, :N_SEED], speaker)
        total, values = generator_objective(self.model, result, pose, words, speaker, epoch, self.weights, valid)
        return total, result.pose.detach(), values


class DiscriminatorStep(nn.Module):
    """The discriminator's loss on real vs generated windows (one forward for DDP, two passes as before). The real
    windows' missing bones (valid false) are the generated ones: placeholders never count as real motion."""

    def __init__(self, discriminator: nn.Module):
        super().__init__()
        self.discriminator = discriminator

    def forward(self, real, fake, valid=None):
        real = real_for_discriminator(real, fake, valid)
        return discriminator_loss(self.discriminator(real).float(), self.discriminator(fake).float())


def unpack(batch) -> tuple:
    """(spec, words, pose, speaker, valid) of a batch; valid None (every bone) for batches made without a mask."""
    spec, words, pose, speaker, *rest = batch
    return spec, words, pose, speaker, rest[0] if rest else None


@dataclass
class Optimisation:
    """One optimiser step of the generator, and of the discriminator after the warm-up, over this process's
    micro-batches of the step (DDP all-reduces at the last one)."""

    g: nn.Module  # GeneratorStep, DDP-wrapped under torchrun
    d: nn.Module  # DiscriminatorStep, idem
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    amp: torch.dtype | None
    device: torch.device
    seed: int

    def step(self, micro_batches: list, chunks: list[int], step: int, epoch: int, gan_on: bool) -> dict[str, float]:
        n = len(micro_batches)
        values: dict[str, float] = {}
        fakes = []
        self.opt_g.zero_grad(set_to_none=True)
        for a, batch in enumerate(micro_batches):
            spec, words, pose, speaker, valid = unpack(batch)
            seed_micro_batch(self.seed, step, chunks[a], 0)
            with self._sync(self.g, a == n - 1):
                with self._autocast():  # epochs count from 1 in ha2g_model.losses
                    total, fake, parts = self.g(spec, words, pose, speaker, epoch + 1, valid)
                self.scaler.scale(total / n).backward()
            fakes.append(fake)
            for k, v in (parts | {"total": total.item()}).items():
                values[k] = values.get(k, 0.0) + v / n
        self.scaler.step(self.opt_g)
        if gan_on:  # real windows vs the ones generated above (detached)
            self.opt_d.zero_grad(set_to_none=True)
            for a, (batch, fake) in enumerate(zip(micro_batches, fakes)):
                _, _, pose, _, valid = unpack(batch)
                seed_micro_batch(self.seed, step, chunks[a], 1)
                with self._sync(self.d, a == n - 1):
                    with self._autocast():
                        loss_d = self.d(pose, fake, valid)
                    self.scaler.scale(loss_d / n).backward()
                values["gan_d"] = values.get("gan_d", 0.0) + loss_d.item() / n
            self.scaler.step(self.opt_d)
        self.scaler.update()
        return values

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp, enabled=self.amp is not None)

    @staticmethod
    def _sync(module: nn.Module, last: bool):
        """Gradients are all-reduced once per step, at the last micro-batch."""
        return module.no_sync() if isinstance(module, DistributedDataParallel) and not last else nullcontext()


# --- evaluation -----------------------------------------------------------------------------------------------------

def loader(dataset: WindowDataset, workers: int, device: torch.device, **kwargs) -> DataLoader:
    return DataLoader(dataset, num_workers=workers, pin_memory=device.type == "cuda", **kwargs)


def to_device(batch, device: torch.device) -> list[torch.Tensor]:
    return [t.to(device, non_blocking=True) for t in batch]


@torch.no_grad()
def val_features(feature_net, val: DataLoader) -> np.ndarray:
    """FGD features of the real val windows: computed once, the feature net does not change."""
    return np.concatenate([feature_net.features(unpack(batch)[2]).numpy() for batch in val])


@torch.no_grad()
def validate(model: HA2G, val: DataLoader, feature_net=None, real_features: np.ndarray | None = None) -> dict:
    """Deterministic generation (z = mu) from the true seed frames, batch by batch: val regression loss and L1 over
    the bones each window has, and FGD against `real_features` when a feature net is given."""
    device = next(model.parameters()).device
    model.eval()
    n, huber_sum, l1_sum, features = 0, 0.0, 0.0, []
    for batch in val:
        spec, words, pose, speaker, valid = unpack(to_device(batch, device))
        out = model.generate_window(spec, words, pose[:, :N_SEED], speaker).float()
        mask = torch.ones_like(pose, dtype=torch.bool) if valid is None else channel_mask(valid)
        huber_sum += huber(out, pose, mask=mask).item() * len(pose)
        l1 = torch.where(mask, (out - pose).abs(), 0).sum() / mask.sum().clamp(min=1)
        l1_sum += l1.item() * len(pose)
        n += len(pose)
        if feature_net is not None:
            features.append(feature_net.features(out.cpu()).numpy())
    model.train()
    result = {"val_huber": huber_sum / n, "val_l1": l1_sum / n}
    if feature_net is not None:
        result["val_fgd"] = frechet_distance(np.concatenate(features), real_features)
    return result


# --- the loop -------------------------------------------------------------------------------------------------------

def window_weights(dataset: WindowDataset, source_weights: dict) -> np.ndarray | None:
    """Per-window sampling weights from per-source ones; None when every window weighs the same."""
    if not source_weights:
        return None
    names, inverse = np.unique(dataset.sources(), return_inverse=True)
    unknown = sorted(set(source_weights) - set(names))
    if unknown:  # a config made for other data, or a misspelt source: say so, it weighs nothing here
        print(f"source_weights names sources the train split does not have: {unknown} (it has {names.tolist()})")
    weights = np.asarray([float(source_weights.get(name, 1.0)) for name in names])[inverse]
    return None if np.all(weights == weights[0]) else weights


def build(cfg: TrainConfig, model_cfg: HA2GConfig, vocab, device: torch.device, amp: torch.dtype | None):
    """The model (word tables initialised from the word vectors), its two optimisers, the loss scaler, the loss
    weights."""
    model = HA2G(model_cfg).to(device)
    vectors = torch.from_numpy(with_generic_unknown(load_word_vectors(vocab, cfg.word_vectors, model_cfg.word_dim)))
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
    scaler = torch.amp.GradScaler("cuda", enabled=amp == torch.float16)  # bf16 needs no loss scaling
    return model, opt_g, opt_d, scaler, weights


def train(cfg: TrainConfig, resume: bool = False) -> dict:
    rank, world, device = init_distributed(cfg.device)
    try:
        return _train(cfg, resume, rank, world, device)
    finally:
        if world > 1:
            dist.destroy_process_group()


def _train(cfg: TrainConfig, resume: bool, rank: int, world: int, device: torch.device) -> dict:
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    amp = amp_dtype(cfg.amp, device)
    lead = rank == 0  # validates, logs and writes; every process trains
    out = Path(cfg.out)
    cfg_dict = asdict(cfg) | {"betas": list(cfg.betas)}  # yaml.safe_dump cannot write tuples
    if lead:
        out.mkdir(parents=True, exist_ok=True)
        (out / "train_config.yaml").write_text(yaml.safe_dump(cfg_dict, sort_keys=False))

    # data and model: vocabulary and speakers come from the data set
    vocab = load_vocab(cfg.data)
    train_set = WindowDataset(cfg.data, "train", max_open=cfg.shuffle_shards)
    index = train_set.index
    model_cfg = HA2GConfig.preset(cfg.preset, **{"n_words": len(vocab), "n_speakers": len(index["speakers"]),
                                                 **cfg.model})
    if model_cfg.skeleton != index["skeleton"]:
        raise ValueError(f"preset {cfg.preset} is for {model_cfg.skeleton} but {cfg.data} holds "
                         f"{index['skeleton']} windows")
    batches = WindowBatches(train_set.shard_of(), cfg.batch_size, cfg.seed, window_weights(train_set,
                            cfg.source_weights), cfg.shuffle_shards, rank, world, cfg.accumulate, cfg.mirror)
    train_loader = loader(train_set, cfg.workers, device, batch_sampler=batches)
    val_loader = feature_net = real_features = None
    if lead:
        try:
            val_loader = loader(WindowDataset(cfg.data, "val"), cfg.workers, device, batch_size=cfg.batch_size)
        except ValueError:
            print(f"{cfg.data} has no val windows: no validation, the best checkpoint is the last one")
        if cfg.feature_net and val_loader is not None:
            from training.feature_net import load_feature_net

            feature_net = load_feature_net(cfg.feature_net)
            real_features = val_features(feature_net, val_loader)
    model, opt_g, opt_d, scaler, weights = build(cfg, model_cfg, vocab, device, amp)
    state = {"epoch": 0, "batch": 0, "step": 0, "best": math.inf, "best_epoch": -1}
    sums: dict[str, float] = {}  # this epoch's summed step losses (kept in last.pt: an epoch may span a resume)
    if resume and (out / "last.pt").exists():
        saved = torch.load(out / "last.pt", map_location=device, weights_only=True)
        model.load_state_dict(saved["model"])
        opt_g.load_state_dict(saved["opt_g"])
        opt_d.load_state_dict(saved["opt_d"])
        scaler.load_state_dict(saved["scaler"])
        state, sums = {k: saved[k] for k in state}, saved["sums"]
        if lead:
            print(f"resumed from {out / 'last.pt'} at epoch {state['epoch']} batch {state['batch']}")
    g, d = GeneratorStep(model, weights), DiscriminatorStep(model.discriminator)
    if world > 1:  # some generator parts (the contrastive text encoder) may get no gradient when weighted 0
        g = DistributedDataParallel(g, find_unused_parameters=True)
        d = DistributedDataParallel(d)
    optimisation = Optimisation(g, d, opt_g, opt_d, scaler, amp, device, cfg.seed)
    chunks = [batches.chunk(a) for a in range(cfg.accumulate)]

    # what the checkpoints record, which only rank 0 writes (the posture offsets read the whole training split)
    meta = {"train_config": cfg_dict, "speakers": index["speakers"], "data_sources": index["sources"],
            "posture_offsets": speaker_posture_offsets(cfg.data)} if lead else None
    writer = _tensorboard(out / "tb") if lead else None
    log = open(out / "log.jsonl", "a") if lead else None
    started = time.time()
    model.train()
    stop = False
    last_val = {}
    while state["epoch"] < cfg.epochs and not stop:
        epoch = state["epoch"]
        gan_on = epoch >= cfg.gan_warmup_epochs
        batches.set_epoch(epoch, state["batch"])
        micro_batches = iter(train_loader)
        epoch_started, first_batch = time.time(), state["batch"]
        bar = tqdm(range(state["batch"], batches.steps), desc=f"epoch {epoch}", unit="batch", leave=False,
                   disable=not lead)
        for _ in bar:
            micro = [to_device(next(micro_batches), device) for _ in range(cfg.accumulate)]
            values = optimisation.step(micro, chunks, state["step"], epoch, gan_on)
            if not math.isfinite(values["total"]):
                raise FloatingPointError(f"loss became {values['total']} at step {state['step']}: {values}")
            for k, v in values.items():
                sums[k] = sums.get(k, 0.0) + v
            state["step"] += 1
            state["batch"] += 1
            bar.set_postfix(total=f"{values['total']:.3f}", huber=f"{values['huber']:.4f}",
                            d=f"{values.get('gan_d', 0):.3f}")
            if writer is not None:
                for k, v in values.items():
                    writer.add_scalar(f"train/{k}", v, state["step"])
            stop = cfg.max_steps is not None and state["step"] >= cfg.max_steps
            if cfg.max_minutes is not None:  # every process must agree, or one would wait for the others forever
                stop = stop or _everyone(time.time() - started > 60 * cfg.max_minutes, world, device)
            if stop:
                break
            if lead and cfg.checkpoint_every_steps and state["step"] % cfg.checkpoint_every_steps == 0:
                _save_last(out, model, opt_g, opt_d, scaler, state, sums)
        row = {"epoch": epoch, "step": state["step"], "gan": gan_on,
               **{f"train_{k}": v / state["batch"] for k, v in _mean_over(sums, world, device).items()},
               "windows_per_s": (state["batch"] - first_batch) * cfg.batch_size / (time.time() - epoch_started)}
        finished = state["batch"] == batches.steps
        if finished:
            state["epoch"] += 1
            state["batch"], sums = 0, {}
        else:
            row["partial"] = True  # stopped mid-epoch; --resume continues it

        # validation, best checkpoint, periodic checkpoints, resume state: rank 0 while the others wait
        if lead:
            last_val = _end_of_epoch(cfg, out, model, vocab, meta, state, finished, stop, val_loader, feature_net,
                                     real_features, writer, row)
            _save_last(out, model, opt_g, opt_d, scaler, state, sums)
            log.write(json.dumps(row) + "\n")
            log.flush()
            tqdm.write(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
        if world > 1:
            dist.barrier()
    if lead:
        log.close()
        if writer is not None:
            writer.close()
        if (out / "best").is_dir():  # once per run, not per save: the best may change many times
            export_checkpoint_graphs(out / "best")
    return {**state, **last_val}


def _end_of_epoch(cfg, out, model, vocab, meta, state, finished, stop, val_loader, feature_net, real_features,
                  writer, row) -> dict:
    epoch = state["epoch"] - 1 if finished else state["epoch"]
    last_val = {}
    if val_loader is not None and (state["epoch"] % cfg.eval_every == 0 or stop or state["epoch"] == cfg.epochs):
        last_val = validate(model, val_loader, feature_net, real_features)
        row.update(last_val)
        if writer is not None:
            for k, v in last_val.items():
                writer.add_scalar(f"val/{k[4:]}", v, state["step"])
        score = last_val.get("val_fgd", last_val["val_huber"])
        if score < state["best"]:
            state["best"], state["best_epoch"] = score, epoch
            save_checkpoint(out / "best", model, vocab, meta | {"epoch": epoch, "step": state["step"],
                                                                "val": last_val})
    if finished and state["epoch"] % cfg.checkpoint_every == 0:
        save_checkpoint(out / f"epoch_{state['epoch']:04d}", model, vocab, meta | {"epoch": epoch})
    if val_loader is None:
        save_checkpoint(out / "best", model, vocab, meta | {"epoch": epoch, "step": state["step"]})
    return last_val


def _save_last(out: Path, model, opt_g, opt_d, scaler, state: dict, sums: dict) -> None:
    """The resume point: written to a temporary name and renamed, so a crash never leaves half a file."""
    torch.save({"model": model.state_dict(), "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(),
                "scaler": scaler.state_dict(), "sums": sums, **state}, out / "last.pt.tmp")
    (out / "last.pt.tmp").replace(out / "last.pt")


def _everyone(flag: bool, world: int, device: torch.device) -> bool:
    """True on every process when it is true on any."""
    if world == 1:
        return flag
    t = torch.tensor([float(flag)], device=device)  # NCCL reduces GPU tensors only
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def _mean_over(sums: dict[str, float], world: int, device: torch.device) -> dict[str, float]:
    """The processes' loss sums averaged over processes (each trained on its part of every batch)."""
    if world == 1 or not sums:
        return sums
    keys = list(sums)  # the same order on every process: the same epoch, the same loss terms
    t = torch.tensor([sums[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return {k: float(v) / world for k, v in zip(keys, t)}


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
