"""Our checkpoint format: a directory that describes itself, with no pickle anywhere.

    model.safetensors   every weight and buffer of HA2G (state_dict names)
    config.json         {"format": ..., "config": HA2GConfig.to_dict(), "meta": {...}, "onnx": {...}}  meta: skeleton,
                        pose_dim, n_levels, plus whatever the writer adds (training command, metrics, speakers, ...);
                        onnx: the record of the shipped ONNX graphs, when there are any (see below)
    vocab.json          the word vocabulary ({"words": [...]}, index = position)
    encode.onnx, decode.onnx   optional: the inference graphs (ha2g_model.onnx_export), so that ONNX Runtime runs
                        the checkpoint without torch (and TensorRT builds its engines from them). config.json's "onnx"
                        record holds the SHA-256 of the model.safetensors they were exported from and of each graph
                        file; `checkpoint_graphs` checks both before a graph is used.

`load_checkpoint` rebuilds the model from these alone and refuses, with a message that says what is wrong, files
that are missing or do not fit (pose_dim, level count, missing/unexpected keys, shapes, vocabulary size) and
weights that are NaN or Inf. `read_checkpoint` reads only the description (config, vocabulary, meta).
Official HA2G checkpoints are read by `ha2g_model.official` (also reachable here as `load_official_checkpoint`).

torch is imported only by the functions that build or save a model: describing a checkpoint and verifying its
graphs (the onnxruntime path) must work in an install without torch.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
from pathlib import Path

from ha2g_model.config import HA2GConfig
from ha2g_model.untrusted import read_json_bounded
from ha2g_model.text import Vocab

log = logging.getLogger(__name__)

FORMAT = "ha2g_ros.checkpoint/1"
WEIGHTS, CONFIG, VOCAB = "model.safetensors", "config.json", "vocab.json"
# The ONNX graphs a checkpoint can ship (file <part>.onnx); EXPORT_COMMAND writes them (ha2g_model.onnx_export).
GRAPHS = ("encode", "decode")
EXPORT_COMMAND = "ha2g-export-onnx"
MAX_CONFIG_BYTES = 16_000_000  # config.json holds sizes, meta (speaker names, metrics) and the graph record: ~10 kB


class GraphError(ValueError):
    """A checkpoint's ONNX graphs cannot be used (none shipped, exported from other weights, damaged file)."""


def save_checkpoint(path, model, vocab: Vocab, meta: dict | None = None) -> Path:
    """Write the checkpoint directory `path` (created if needed). `meta` must be JSON-serialisable.

    ONNX graphs of earlier weights in `path` are deleted: they no longer describe the new weights (export again
    with `onnx_export.export_checkpoint_graphs`)."""
    from safetensors.torch import save_file

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
    for part in GRAPHS:
        (path / f"{part}.onnx").unlink(missing_ok=True)
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


def share_identical_word_tables(state: dict, config: HA2GConfig) -> tuple[dict, HA2GConfig]:
    """One word table instead of N+1 identical ones: official checkpoints (their tables alias one array while they
    train, see config.py) and our checkpoints of the paper presets written before the table was shared. Tables that
    differ are kept, one per text encoder: merging them would change the model."""
    if config.shared_word_embedding:
        return state, config
    keys = [f"word_embeddings.{i}.weight" for i in range(config.n_levels + 1)]
    if not all(k in state for k in keys):
        return state, config  # load_state_checked names what is missing
    if not all(state[k].equal(state[keys[0]]) for k in keys[1:]):
        log.info("the %d word tables of this checkpoint differ: kept one per text encoder (%.0f MB)", len(keys),
                 sum(state[k].nbytes for k in keys) / 2**20)
        return state, config
    return {k: v for k, v in state.items() if k not in keys[1:]}, config.replace(shared_word_embedding=True)


def load_state_checked(model, state: dict, source: str) -> None:
    """load_state_dict(strict=True) with errors that say which keys are missing/unexpected and which shapes or types
    differ. Floating-point weights of another precision (float16, float64) are converted, with a warning; integer or
    boolean values where the model has floating point ones (and the reverse) are refused."""
    _check_structure(state, model.config, source)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    common = sorted(set(state) & set(expected))
    shapes = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
              for k in common if state[k].shape != expected[k].shape]
    types = [f"{k}: file {state[k].dtype} vs model {expected[k].dtype}" for k in common
             if state[k].dtype != expected[k].dtype and not (state[k].is_floating_point()
                                                             and expected[k].is_floating_point())]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys (e.g. {missing[:5]})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[:5]})")
    if shapes:
        problems.append(f"{len(shapes)} shape mismatches (e.g. {shapes[:5]})")
    if types:
        problems.append(f"{len(types)} tensors of the wrong type (e.g. {types[:3]})")
    # A diverged or damaged file: refused here because ONNX Runtime's GRU turns NaN into finite values, so a
    # NaN weight would otherwise become silent garbage motion instead of a failing window.
    non_finite = [f"{k} ({int((~v.isfinite()).sum())} of {v.numel()})" for k, v in sorted(state.items())
                  if v.is_floating_point() and not bool(v.isfinite().all())]
    if non_finite:
        problems.append(f"{len(non_finite)} tensors with NaN/Inf values (e.g. {non_finite[:3]}): a diverged or "
                        f"damaged file")
    if problems:
        c = model.config
        raise ValueError(f"{source} does not fit the model ({c.skeleton}, pose_dim {c.pose_dim}, "
                         f"{c.n_levels} levels): " + "; ".join(problems))
    converted = sorted({f"{state[k].dtype} -> {expected[k].dtype}" for k in common
                        if state[k].dtype != expected[k].dtype})
    if converted:
        n = sum(state[k].dtype != expected[k].dtype for k in common)
        log.warning("%s: %d weight tensors converted (%s)", source, n, ", ".join(converted))
        state = {k: v.to(expected[k].dtype) if k in expected else v for k, v in state.items()}
    model.load_state_dict(state, strict=True)


def _read_description(path: Path) -> dict:
    config_file = _require(path, CONFIG)
    described = read_json_bounded(config_file, "checkpoint description", MAX_CONFIG_BYTES)
    if not isinstance(described, dict) or described.get("format") != FORMAT or "config" not in described:
        raise ValueError(f"{config_file} is not a {FORMAT} config (an official .bin? use load_official_checkpoint)")
    if not isinstance(described.get("meta", {}), dict):
        raise ValueError(f"{config_file}: meta must be a JSON object, got {type(described['meta']).__name__}")
    return described


def read_checkpoint(path) -> tuple[HA2GConfig, Vocab, dict]:
    """Checkpoint directory -> (HA2GConfig, Vocab, meta) without loading the weights (and without torch)."""
    path = Path(path)
    if not path.is_dir():
        if path.exists():
            raise ValueError(f"checkpoint {path} is not a directory (an official .bin file is read by "
                             "load_official_checkpoint)")
        raise FileNotFoundError(f"checkpoint directory {path} not found")
    described = _read_description(path)
    vocab_file = _require(path, VOCAB)
    _require(path, WEIGHTS)
    try:
        config = HA2GConfig.from_dict(described["config"])
    except ValueError as e:
        raise ValueError(f"{path / CONFIG}: {e}") from None
    vocab = Vocab.load(vocab_file)
    if len(vocab) != config.n_words:
        raise ValueError(f"{vocab_file} has {len(vocab)} words but {path / CONFIG} says n_words={config.n_words}")
    return config, vocab, dict(described.get("meta", {}))


def load_checkpoint(path, device: str = "cpu"):
    """Checkpoint directory -> (HA2G in eval mode on `device`, Vocab, meta). Identical word tables of older
    checkpoints become the one shared table (`share_identical_word_tables`)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from ha2g_model.model import HA2G

    config, vocab, meta = read_checkpoint(path)
    weights_file = Path(path) / WEIGHTS
    try:
        state = load_file(str(weights_file))
    except (SafetensorError, OSError) as e:
        raise ValueError(f"{weights_file} is not a readable safetensors file: {e}") from None
    state, config = share_identical_word_tables(state, config)
    model = HA2G(config)
    load_state_checked(model, state, f"checkpoint {path}")
    return model.to(device).eval(), vocab, meta


# --- shipped ONNX graphs ------------------------------------------------------------------------------------------

def file_sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def record_graphs(path, files: dict[str, Path], **details) -> None:
    """Record the graphs `files` (part -> file in `path`) in config.json, tied to the current model.safetensors."""
    path = Path(path)
    described = _read_description(path)
    graphs = {part: {"file": file.name, "sha256": file_sha256(file), "bytes": file.stat().st_size}
              for part, file in files.items()}
    described["onnx"] = {"weights_sha256": file_sha256(path / WEIGHTS), "graphs": graphs, **details}
    (path / CONFIG).write_text(json.dumps(described, indent=1))


def update_meta(path, **entries) -> None:
    """Set `entries` in the meta of checkpoint `path` (config.json). The weights, and so their graph record, stay as
    they are."""
    path = Path(path)
    described = _read_description(path)
    described["meta"] = {**described.get("meta", {}), **entries}
    (path / CONFIG).write_text(json.dumps(described, indent=1))


def checkpoint_graphs(path, parts=GRAPHS) -> dict[str, Path]:
    """The shipped ONNX graphs `parts` of checkpoint `path` -> their files, after checking that they were exported
    from this model.safetensors and are intact. Raises GraphError saying why they cannot be used."""
    path = Path(path)
    again = f"export them with `{EXPORT_COMMAND} {path}` (needs torch)"
    record = _read_description(path).get("onnx") or {}
    missing = [part for part in parts if part not in record.get("graphs", {})]
    if missing:
        raise GraphError(f"checkpoint {path} ships no ONNX graph {'/'.join(missing)}: {again}")
    if file_sha256(_require(path, WEIGHTS)) != record.get("weights_sha256"):
        raise GraphError(f"the ONNX graphs of checkpoint {path} were exported from other weights than its "
                         f"{WEIGHTS} (changed since the export): {again}")
    files = {}
    for part in parts:
        entry = record["graphs"][part]
        file = path / entry["file"]
        if not file.is_file():
            raise GraphError(f"checkpoint {path}: {file.name} is missing: {again}")
        size = file.stat().st_size
        if size != entry["bytes"] or file_sha256(file) != entry["sha256"]:
            damage = f"truncated, {size} of {entry['bytes']} bytes" if size < entry["bytes"] else "content changed"
            raise GraphError(f"checkpoint {path}: {file.name} is damaged ({damage}; its SHA-256 differs from the "
                             f"export record): {again}")
        files[part] = file
    return files


def load_official_checkpoint(path, device: str = "cpu"):
    """See `ha2g_model.official.load_official_checkpoint` (imported lazily: it needs this module)."""
    from ha2g_model.official import load_official_checkpoint as load

    return load(path, device)
