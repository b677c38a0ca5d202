"""Inference backends for one HA2G window: one interface, chosen by name, with a fallback list.

A backend runs the generation chain of `HA2G.generate_window` -- audio encoder, every level's text encoder and pose
generator -- on numpy arrays:

    backend.run(spec (B, 128, 70) float32, words (B, 34) int, seed (B, 4, pose_dim) float32,
                speaker (B,) int, noise (B, n_levels, z_dim) float32) -> (B, 34, pose_dim) float32

`noise` is always an array: zeros give z = mu (deterministic), which is how one exported graph serves both uses.

    torch        the PyTorch module itself (CPU or CUDA; fp32, fp16 on CUDA; optional CUDA-graph replay at batch 1)
    onnxruntime  the chain exported to ONNX, run by ONNX Runtime (CPU; CUDA / TensorRT execution providers if present)
    tensorrt     a TensorRT engine built from that ONNX, run with pycuda buffers (Jetson and desktop NVIDIA GPUs)

`create_backend(["tensorrt", "onnxruntime", "torch"], model)` returns the first that loads; a backend that cannot load
(missing library, bad engine file, out of GPU memory) raises `BackendError` with the reason, so the next one is tried.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Protocol

import numpy as np

log = logging.getLogger(__name__)

BACKENDS = ("torch", "onnxruntime", "tensorrt")
# "auto": fastest first, by the measurements in docs/engine.md (a GPU backend fails fast where there is no GPU).
AUTO_ORDER = {"cpu": ("onnxruntime", "torch"), "cuda": ("tensorrt", "torch", "onnxruntime")}
PRECISIONS = ("fp32", "fp16")
# Options each backend understands (see its class); others are refused so that a typo is not silently ignored.
OPTIONS = {"torch": ("cuda_graph", "threads"), "onnxruntime": ("cache_dir", "threads", "providers"),
           "tensorrt": ("cache_dir", "max_batch", "engine_path")}


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

    `model_or_checkpoint` is an `HA2G` module or a checkpoint directory. `options` go to the backends that know
    them (e.g. `cuda_graph=True` for torch, `cache_dir=` for onnxruntime/tensorrt). Raises `BackendError` listing
    every failure when none loads.
    """
    names = _expand(name_or_list, device)
    unknown = sorted(set(options) - {o for n in names for o in OPTIONS[n]})
    if unknown:
        raise ValueError(f"unknown backend option(s) {unknown} for {names}; known: "
                         + "; ".join(f"{n}: {', '.join(OPTIONS[n])}" for n in names))
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    model = _as_model(model_or_checkpoint)
    failures = []
    for name in names:
        try:
            backend = _load(name, model, device, precision, options)
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


def _as_model(model_or_checkpoint):
    from ha2g_model.model import HA2G

    if isinstance(model_or_checkpoint, HA2G):
        return model_or_checkpoint
    if isinstance(model_or_checkpoint, (str, Path)):
        from ha2g_model.checkpoint import load_checkpoint

        model, _, _ = load_checkpoint(model_or_checkpoint)
        return model
    raise TypeError(f"expected an HA2G model or a checkpoint directory, got {type(model_or_checkpoint).__name__}")


def _load(name: str, model, device: str, precision: str, options: dict) -> Backend:
    # Each module is imported only when asked for, so a missing optional library is a BackendError, not an
    # ImportError at package import time.
    if name == "torch":
        from ha2g_model.backends.torch_backend import TorchBackend as cls
    elif name == "onnxruntime":
        from ha2g_model.backends.onnx_backend import OnnxBackend as cls
    else:
        from ha2g_model.backends.tensorrt_backend import TensorRTBackend as cls
    return cls(model, device=device, precision=precision, **{k: v for k, v in options.items() if k in OPTIONS[name]})
