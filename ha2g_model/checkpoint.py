"""Our checkpoint format: a directory that describes itself, with no pickle anywhere.

    model.safetensors   every weight and buffer of HA2G (state_dict names)
    config.json         {"format": ..., "config": HA2GConfig.to_dict(), "meta": {...}}  meta: skeleton, pose_dim,
                        n_levels, plus whatever the writer adds (training command, metrics, speakers, ...)
    vocab.json          the word vocabulary ({"words": [...]}, index = position)

`load_checkpoint` rebuilds the model from these alone and refuses, with a message that says what is wrong, files
that are missing or do not fit (pose_dim, level count, missing/unexpected keys, shapes, vocabulary size) and
weights that are NaN or Inf.
Official HA2G checkpoints are read by `ha2g_model.official` (also reachable here as `load_official_checkpoint`).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ha2g_model.config import HA2GConfig
from ha2g_model.model import HA2G
from ha2g_model.text import Vocab

FORMAT = "ha2g_ros.checkpoint/1"
WEIGHTS, CONFIG, VOCAB = "model.safetensors", "config.json", "vocab.json"


def save_checkpoint(path, model: HA2G, vocab: Vocab, meta: dict | None = None) -> Path:
    """Write the checkpoint directory `path` (created if needed). `meta` must be JSON-serialisable."""
    config = model.config
    if len(vocab) != config.n_words:
        raise ValueError(f"vocabulary has {len(vocab)} words but the model's embedding has n_words={config.n_words}")
    meta = dict(meta or {})
    meta.update(skeleton=config.skeleton, pose_dim=config.pose_dim, n_levels=config.n_levels)
    try:
        config_text = json.dumps({"format": FORMAT, "config": config.to_dict(), "meta": meta}, indent=1)
    except TypeError as e:
        raise ValueError(f"checkpoint meta must be JSON-serialisable: {e}") from None
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path / WEIGHTS), metadata={"format": "pt", "skeleton": config.skeleton})
    (path / CONFIG).write_text(config_text)
    vocab.save(path / VOCAB)
    return path


def _require(path: Path, name: str) -> Path:
    if not (path / name).is_file():
        raise FileNotFoundError(f"checkpoint {path} has no {name} (expected {WEIGHTS}, {CONFIG} and {VOCAB})")
    return path / name


def _check_structure(state: dict, config: HA2GConfig, source: str) -> None:
    """Catch the common mix-ups (another skeleton, another level count) before key-by-key checks."""
    levels = {int(m.group(1)) for k in state if (m := re.match(r"generator\.levels\.(\d+)\.", k))}
    if levels and len(levels) != config.n_levels:
        raise ValueError(f"{source}: the weights have {len(levels)} generator levels but the config describes "
                         f"{config.skeleton} with {config.n_levels} levels")
    last_out = f"generator.levels.{config.n_levels - 1}.out.2.weight"
    if last_out in state and state[last_out].shape[0] != config.pose_dim:
        raise ValueError(f"{source}: the weights produce pose_dim {state[last_out].shape[0]} but the config "
                         f"describes {config.skeleton} with pose_dim {config.pose_dim}")


def load_state_checked(model: HA2G, state: dict[str, torch.Tensor], source: str) -> None:
    """load_state_dict(strict=True) with errors that say which keys are missing/unexpected and which shapes differ."""
    _check_structure(state, model.config, source)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
              for k in sorted(set(state) & set(expected)) if state[k].shape != expected[k].shape]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys (e.g. {missing[:5]})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[:5]})")
    if shapes:
        problems.append(f"{len(shapes)} shape mismatches (e.g. {shapes[:5]})")
    # A diverged or damaged file: refused here because ONNX Runtime's GRU turns NaN into finite values, so a
    # NaN weight would otherwise become silent garbage motion instead of a failing window.
    non_finite = [f"{k} ({int((~torch.isfinite(v)).sum())} of {v.numel()})" for k, v in sorted(state.items())
                  if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if non_finite:
        problems.append(f"{len(non_finite)} tensors with NaN/Inf values (e.g. {non_finite[:3]}): a diverged or "
                        f"damaged file")
    if problems:
        c = model.config
        raise ValueError(f"{source} does not fit the model ({c.skeleton}, pose_dim {c.pose_dim}, "
                         f"{c.n_levels} levels): " + "; ".join(problems))
    model.load_state_dict(state, strict=True)


def load_checkpoint(path, device: str = "cpu") -> tuple[HA2G, Vocab, dict]:
    """Checkpoint directory -> (HA2G in eval mode on `device`, Vocab, meta)."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"checkpoint directory {path} not found")
    config_file, vocab_file, weights_file = (_require(path, n) for n in (CONFIG, VOCAB, WEIGHTS))
    try:
        described = json.loads(config_file.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{config_file} is not valid JSON: {e}") from None
    if not isinstance(described, dict) or described.get("format") != FORMAT or "config" not in described:
        raise ValueError(f"{config_file} is not a {FORMAT} config (an official .bin? use load_official_checkpoint)")
    config = HA2GConfig.from_dict(described["config"])
    vocab = Vocab.load(vocab_file)
    if len(vocab) != config.n_words:
        raise ValueError(f"{vocab_file} has {len(vocab)} words but {config_file} says n_words={config.n_words}")
    try:
        state = load_file(str(weights_file))
    except (SafetensorError, OSError) as e:
        raise ValueError(f"{weights_file} is not a readable safetensors file: {e}") from None
    model = HA2G(config)
    load_state_checked(model, state, f"checkpoint {path}")
    return model.to(device).eval(), vocab, dict(described.get("meta", {}))


def load_official_checkpoint(path, device: str = "cpu") -> tuple[HA2G, Vocab, dict]:
    """See `ha2g_model.official.load_official_checkpoint` (imported lazily: it needs this module)."""
    from ha2g_model.official import load_official_checkpoint as load

    return load(path, device)
