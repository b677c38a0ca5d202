"""Streaming training data: windows read lazily from a data set's shards, in a seeded order that stays shard-local.

Host memory does not grow with the data set. A `WindowDataset` keeps at most `max_open` shards open per process
(safetensors memory-maps them; a window's frames, spectrogram columns and audio are sliced out on access, and
closing a shard unmaps what was read), and `epoch_order` visits the shards in groups of `group` shards in a shuffled
order, each group's windows shuffled among themselves, so a DataLoader worker reads one group at a time instead of
touching every shard of the split in every batch. What a process holds is about workers x max_open x shard file
(~130 MB at 4096 windows) plus prefetched batches, whatever the number of shards.

`WindowBatches` cuts each optimiser step's global batch into micro-batches for `world` processes x `accumulate`
steps, so that the same global batch is seen whatever the number of processes (torchrun) and whatever the
accumulation, and an epoch can be resumed at any step. With `mirror` > 0 it also decides, seeded by (seed, epoch)
like the order, which windows are served as their left-right mirror image (`ha2g_model.skeleton.mirror_directions`;
audio and words unchanged): a random flip in a worker process could be neither resumed nor reproduced by N
processes.
"""
from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from torch.utils.data import Dataset, Sampler

from ha2g_model.skeleton import get_skeleton, mirror_directions, mirrored_bones, normalize_directions
from training.windows import SPLITS, STORED, cut_windows, read_index

_SLICED = tuple(STORED)  # the bulk (dir_vec, valid, spec, audio): sliced per window, never read whole
MIRROR_STREAM = 1  # the mirror draws' own random stream: switching mirroring on leaves the epoch order as it was


class WindowDataset(Dataset):
    """One split of a data set; item i is window i as model inputs (spec (128, 70) float32, words (34,) int64,
    pose (34, pose_dim) float32 normalised, speaker () int64, valid (34, n_bones) bool: the bones the data has),
    read from its shard when asked for. Item (i, True) is window i mirrored left-right (pose and mask)."""

    def __init__(self, data_dir: str | Path, split: str, max_open: int = 2):
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; use one of {SPLITS}")
        self.dir = Path(data_dir)
        self.index = read_index(data_dir)
        self.shards = self.index["shards"][split]
        if not self.shards:
            raise ValueError(f"{data_dir} has no {split} windows (windows per split: {self.index['windows']})")
        self.skeleton = get_skeleton(self.index["skeleton"])
        self.first = np.cumsum([0] + [s["n"] for s in self.shards])  # index of each shard's first window
        self.max_open = max_open
        self._mirror = mirrored_bones(self.skeleton)
        self._open: OrderedDict[int, dict] = OrderedDict()  # per process: each DataLoader worker opens its own

    def __len__(self) -> int:
        return int(self.first[-1])

    def shard_of(self) -> np.ndarray:
        """(N,) shard number of every window."""
        return np.repeat(np.arange(len(self.shards)), np.diff(self.first))

    def sources(self) -> np.ndarray:
        """(N,) source name of every window (reads only the shards' small window tables)."""
        names = np.asarray([s["source"] for s in self.index["sequences"]])
        return names[np.concatenate([self._table(k)["sequence"] for k in range(len(self.shards))])]

    def _table(self, k: int) -> dict:
        with safe_open(str(self.dir / self.shards[k]["file"]), framework="numpy") as f:
            return {name: f.get_tensor(name) for name in f.keys() if name not in _SLICED}

    def _shard(self, k: int) -> dict:
        if k in self._open:
            self._open.move_to_end(k)
            return self._open[k]
        handle = safe_open(str(self.dir / self.shards[k]["file"]), framework="numpy")
        tensors = {name: handle.get_slice(name) for name in _SLICED if name in handle.keys()} | self._table(k)
        self._open[k] = tensors
        while len(self._open) > self.max_open:  # dropping the last reference unmaps the file
            self._open.popitem(last=False)
        return tensors

    def window(self, i: int, names=("dir_vec", "valid", "spec", "words", "speaker")) -> dict:
        """Window i as stored (see training.windows.Windows), one row of each array in `names`."""
        if not 0 <= i < len(self):
            raise IndexError(f"window {i} out of range (the split has {len(self)})")
        k = int(np.searchsorted(self.first, i, side="right") - 1)
        return {name: a[0] for name, a in cut_windows(self._shard(k), [i - self.first[k]], names).items()}

    def __getitem__(self, item: int | tuple[int, bool]):
        i, mirrored = item if isinstance(item, tuple) else (item, False)
        w = self.window(int(i))
        directions, valid = w["dir_vec"], w["valid"]
        if mirrored:
            directions, valid = mirror_directions(directions, self.skeleton), valid[:, list(self._mirror)]
        pose = normalize_directions(directions, self.skeleton).astype(np.float32)  # here: in the workers
        return (torch.from_numpy(w["spec"].astype(np.float32)), torch.from_numpy(w["words"].astype(np.int64)),
                torch.from_numpy(pose), torch.tensor(int(w["speaker"])), torch.from_numpy(np.ascontiguousarray(valid)))


def epoch_order(shard_of: np.ndarray, seed: int, epoch: int, weights: np.ndarray | None = None,
                group: int = 2) -> np.ndarray:
    """Window indices of one epoch. A seeded permutation, or with `weights` (per window) a weighted draw of as many
    windows with replacement (source oversampling); then ordered by groups of `group` shards, the groups in a
    shuffled order, keeping the random order inside each group."""
    rng = np.random.default_rng([seed, epoch])
    n = len(shard_of)
    order = rng.permutation(n) if weights is None else rng.choice(n, size=n, p=weights / weights.sum())
    shard_rank = rng.permutation(int(shard_of.max()) + 1)
    return order[np.argsort(shard_rank[shard_of[order]] // group, kind="stable")]


class WindowBatches(Sampler):
    """This process's micro-batches of an epoch, for DataLoader(batch_sampler=...).

    Step s trains on the global batch order[s*B:(s+1)*B] (drop-last), cut into world x accumulate micro-batches
    of B / (world x accumulate) windows; process `rank` takes micro-batches rank*accumulate .. +accumulate-1. So N
    processes with accumulate A see exactly the micro-batches one process with accumulate N*A sees, in the same
    steps. `set_epoch(epoch, start_step)` starts an epoch at a given step (resume).
    """

    def __init__(self, shard_of: np.ndarray, batch_size: int, seed: int, weights: np.ndarray | None = None,
                 group: int = 2, rank: int = 0, world: int = 1, accumulate: int = 1, mirror: float = 0.0):
        if batch_size % (world * accumulate):
            raise ValueError(f"batch_size {batch_size} must be a multiple of processes x accumulate "
                             f"({world} x {accumulate})")
        if not 0.0 <= mirror <= 1.0:
            raise ValueError(f"mirror is the probability of serving a window mirrored, in [0, 1], got {mirror}")
        if len(shard_of) < batch_size:
            raise ValueError(f"the split has {len(shard_of)} windows, fewer than one batch ({batch_size})")
        self.shard_of, self.weights, self.seed, self.group, self.mirror = shard_of, weights, seed, group, mirror
        self.batch_size, self.rank, self.accumulate = batch_size, rank, accumulate
        self.micro = batch_size // (world * accumulate)
        self.steps = len(shard_of) // batch_size
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        self.epoch, self.start = epoch, start_step

    def chunk(self, a: int) -> int:
        """Position of this process's a-th micro-batch of a step in the global batch (seeds its randomness)."""
        return self.rank * self.accumulate + a

    def __len__(self) -> int:
        return (self.steps - self.start) * self.accumulate

    def __iter__(self):
        """Lists of window indices, or of (index, mirrored) pairs when `mirror` > 0."""
        order = epoch_order(self.shard_of, self.seed, self.epoch, self.weights, self.group)
        flips = None
        if self.mirror > 0:  # one draw per place in the epoch, from the seed and epoch alone
            flips = np.random.default_rng([self.seed, self.epoch, MIRROR_STREAM]).random(len(order)) < self.mirror
        for s in range(self.start, self.steps):
            for a in range(self.accumulate):
                first = s * self.batch_size + self.chunk(a) * self.micro
                rows = slice(first, first + self.micro)
                if flips is None:
                    yield order[rows].tolist()
                else:
                    yield list(zip(order[rows].tolist(), flips[rows].tolist()))
