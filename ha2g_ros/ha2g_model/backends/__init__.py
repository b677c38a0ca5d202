"""Inference backends for one HA2G window: one interface, chosen by name, with a fallback list.

A backend runs the generation chain of `HA2G.generate_window` -- audio encoder, every level's text encoder and pose
generator -- on numpy arrays:

    backend.run(spec (B, 128, 70) float32, words (B, 34) int, seed (B, 4, pose_dim) float32,
                speaker (B,) int, noise (B, n_levels, z_dim) float32) -> (B, 34, pose_dim) float32

and, split in two (the engine runs the seed-independent encoders of later windows beside the chain):
`backend.encode(spec, words, speaker) -> blends, texts` and `backend.decode(blends, texts, seed, speaker, noise)`.
`noise` is always an array: zeros give z = mu (deterministic), which is how one exported graph serves both uses.

    torch        the PyTorch module itself (CPU or CUDA; fp32, fp16 on CUDA; optional CUDA-graph replay at batch 1)
    onnxruntime  the chain as two ONNX graphs, run by ONNX Runtime (CPU; CUDA / TensorRT execution providers if
                 present). From a checkpoint that ships its graphs it needs no torch at all.
    tensorrt     TensorRT engines built from the same two graphs (Jetson and desktop NVIDIA GPUs)

`create_backend(["tensorrt", "onnxruntime", "torch"], model)` returns the first that loads; a backend that cannot load
(missing library, bad engine file, out of GPU memory) raises `BackendError` with the reason, so the next one is tried.
This module imports neither torch nor any runtime: each backend imports its own when it is created.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sys
from pathlib import Path
from typing import Protocol

import numpy as np

log = logging.getLogger(__name__)

BACKENDS = ("torch", "onnxruntime", "tensorrt")
# "auto": fastest first, by the measurements in docs/engine.md (a GPU backend fails fast where there is no GPU).
AUTO_ORDER = {"cpu": ("onnxruntime", "torch"), "cuda": ("tensorrt", "torch", "onnxruntime")}
PRECISIONS = ("fp32", "fp16")
# Options each backend understands (see its class). A backend gets only its own, so one set of options serves any
# backend list (`threads` with tensorrt is no error); an option no backend knows is refused, so a typo is not ignored.
OPTIONS = {"torch": ("cuda_graph", "threads"), "onnxruntime": ("cache_dir", "threads", "providers"),
           "tensorrt": ("cache_dir", "max_batch")}


class BackendError(RuntimeError):
    """A backend could not be loaded or run; the message says why (and which backend)."""


class Backend(Protocol):
    name: str
    device: str
    precision: str

    def run(self, spec: np.ndarray, words: np.ndarray, seed: np.ndarray, speaker: np.ndarray,
            noise: np.ndarray) -> np.ndarray: ...


def create_backend(name_or_list: str | list[str] | tuple[str, ...], model_or_checkpoint, device: str = "cpu",
                   precision: str = "fp32", **options) -> Backend:
    """Load the first backend of `name_or_list` ("auto" = the fastest for `device`) that works.

    `model_or_checkpoint` is an `HA2G` module, a checkpoint directory or a `ModelSource`. `options` go to the backends
    that know them (e.g. `cuda_graph=True` for torch, `cache_dir=` for onnxruntime/tensorrt, `threads` for both CPU
    backends); a name no backend knows is a ValueError. Raises `BackendError` listing every failure when none loads.
    """
    if not isinstance(device, str) or not re.fullmatch(r"cpu|cuda(:\d+)?", device):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N' (N = GPU index), got {device!r}")
    names = _expand(name_or_list, device)
    source = ModelSource.of(model_or_checkpoint)
    unknown = sorted(set(options) - {o for known in OPTIONS.values() for o in known})
    if unknown:
        raise ValueError(f"unknown backend option(s) {unknown}; known: "
                         + "; ".join(f"{n}: {', '.join(known)}" for n, known in OPTIONS.items()))
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    failures = []
    for name in names:
        try:
            backend = _load(name, source, device, precision, options)
        except BackendError as e:
            failures.append(f"{name}: {e}")
            if len(names) > 1:
                log.warning("backend %s unavailable, trying the next one: %s", name, e)
            continue
        return backend
    raise BackendError("no backend could be loaded:\n  " + "\n  ".join(failures))


def model_hash(model) -> str:
    """A short hash of the weights and config: the key of every exported / compiled artefact of this model."""
    digest = hashlib.sha256(json.dumps(model.config.to_dict(), sort_keys=True).encode())
    for key, tensor in sorted(model.state_dict().items()):
        digest.update(key.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def default_cache_dir() -> Path:
    """Where exported ONNX files and TensorRT engines are kept between runs ($XDG_CACHE_HOME/ha2g, ~/.cache/ha2g)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ha2g"


def _expand(name_or_list, device: str) -> list[str]:
    names = [name_or_list] if isinstance(name_or_list, str) else list(name_or_list)
    if not names:
        raise ValueError("no backend named: give a name or a non-empty list")
    expanded = []
    for name in names:
        if name == "auto":
            expanded += AUTO_ORDER["cuda" if device.startswith("cuda") else "cpu"]
        elif name in BACKENDS:
            expanded.append(name)
        else:
            raise ValueError(f"unknown backend {name!r}; known: {', '.join(BACKENDS)} or 'auto'")
    return list(dict.fromkeys(expanded))  # keep order, drop repeats


class ModelSource:
    """What backends are built from: an `HA2G` module, an official HA2G .bin (loaded with torch), or a checkpoint
    directory whose torch model is loaded only when a backend needs it (the onnxruntime backend does not, when the
    checkpoint ships its graphs). `vocab` and `meta` are the checkpoint's (None and {} for a module)."""

    def __init__(self, model_or_checkpoint):
        self.path, self.vocab, self.meta = None, None, {}
        if isinstance(model_or_checkpoint, (str, Path)) and Path(model_or_checkpoint).is_file():
            from ha2g_model.checkpoint import load_official_checkpoint

            self._model, self.vocab, self.meta = load_official_checkpoint(model_or_checkpoint)
            self.config = self._model.config
        elif isinstance(model_or_checkpoint, (str, Path)):
            from ha2g_model.checkpoint import read_checkpoint

            self.path, self._model = Path(model_or_checkpoint), None
            self.config, self.vocab, self.meta = read_checkpoint(self.path)
        elif _is_model(model_or_checkpoint):
            self._model, self.config = model_or_checkpoint, model_or_checkpoint.config
        else:
            raise TypeError(f"expected an HA2G model or a checkpoint directory, got "
                            f"{type(model_or_checkpoint).__name__}")

    @classmethod
    def of(cls, model_or_source) -> "ModelSource":
        return model_or_source if isinstance(model_or_source, cls) else cls(model_or_source)

    def model(self):
        """The torch module, loaded from the checkpoint on first use (this imports torch)."""
        if self._model is None:
            from ha2g_model.checkpoint import load_checkpoint

            self._model = load_checkpoint(self.path)[0]
        return self._model

    def graphs(self, parts: tuple[str, ...], cache_dir=None) -> dict[str, Path]:
        """The ONNX files of graphs `parts`: the checkpoint's own when it ships them intact and made from its
        weights; otherwise exported once into the cache (`cache_dir`, default ~/.cache/ha2g/onnx), which needs
        torch. Without torch a checkpoint without usable graphs is a BackendError naming the export command; a
        checkpoint that does not load (NaN weights, wrong shapes) is the ValueError of `load_checkpoint`."""
        if self.path is not None:
            from ha2g_model.checkpoint import GraphError, checkpoint_graphs

            try:
                return checkpoint_graphs(self.path, parts)
            except GraphError as e:
                problem = str(e)
            try:
                import torch  # noqa: F401  (the export below needs it)
            except ImportError:
                raise BackendError(f"{problem} (torch is not installed here)") from None
            log.warning("%s; exporting them into the cache for now", problem)
        model = self.model()
        try:
            from ha2g_model.onnx_export import cached_onnx

            return {part: cached_onnx(model, part, cache_dir) for part in parts}
        except Exception as e:  # onnx missing, exporter failure, unwritable cache: this backend cannot load
            raise BackendError(f"could not export the ONNX graphs: {type(e).__name__}: {e}") from e


def _is_model(obj) -> bool:
    """isinstance(obj, HA2G) without importing torch: an HA2G exists only once ha2g_model.model was imported."""
    module = sys.modules.get("ha2g_model.model")
    return module is not None and isinstance(obj, module.HA2G)


def _load(name: str, source: ModelSource, device: str, precision: str, options: dict) -> Backend:
    # Each module is imported only when asked for, so a missing optional library is a BackendError, not an
    # ImportError at package import time.
    options = {k: v for k, v in options.items() if k in OPTIONS[name]}
    if name == "torch":
        try:
            from ha2g_model.backends.torch_backend import TorchBackend
        except ImportError as e:
            raise BackendError(f"torch is not installed ({e})") from e
        return TorchBackend(source.model(), device=device, precision=precision, **options)
    if name == "onnxruntime":
        from ha2g_model.backends.onnx_backend import OnnxBackend as cls
    else:
        from ha2g_model.backends.tensorrt_backend import TensorRTBackend as cls
    return cls(source, device=device, precision=precision, **options)
