"""Official HA2G checkpoints (alvinliu0/HA2G `torch.save` dicts) -> our model, without the official code and without
executing pickled code.

The official file is a pickle of {args: argparse.Namespace, epoch, lang_model / speaker_model: model.vocab.Vocab,
pose_dim, gen_dict_1..N, dis_dict, audio_dict, text_dict}. It is read with torch's weights-only unpickler and an
allow-list of exactly the globals that format needs; `model.vocab.Vocab` is matched by a plain stand-in class
that only receives attributes. Any other global (os.system, builtins.eval, ...) is refused.

Converter: `python -m ha2g_model.official official.bin out_dir` writes our checkpoint format (safetensors) with its
ONNX inference graphs (so that onnxruntime runs it without torch).
"""
from __future__ import annotations

import argparse
import re
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch

from ha2g_model.checkpoint import load_state_checked, save_checkpoint, share_identical_word_tables
from ha2g_model.config import HA2GConfig
from ha2g_model.untrusted import regular_file
from ha2g_model.model import HA2G
from ha2g_model.onnx_export import export_checkpoint_graphs
from ha2g_model.skeleton import skeleton_for_pose_dim
from ha2g_model.text import SPECIAL_TOKENS, Vocab


class _OfficialVocab:
    """Receives the attributes of a pickled `model.vocab.Vocab` (name, word2index, index2word, n_words, ...)."""


def _numpy_reconstruct():
    try:
        return np._core.multiarray._reconstruct  # numpy >= 2
    except AttributeError:  # pragma: no cover - numpy 1.x
        return np.core.multiarray._reconstruct


# The complete allow-list. numpy arrays appear as the pickled FastText matrix; old files name the reconstruct
# function numpy.core.*, files written under numpy 2 numpy._core.*.
_SAFE_GLOBALS = [
    argparse.Namespace,
    (_OfficialVocab, "model.vocab.Vocab"),
    (_numpy_reconstruct(), "numpy.core.multiarray._reconstruct"),
    (_numpy_reconstruct(), "numpy._core.multiarray._reconstruct"),
    np.ndarray,
    np.dtype,
    type(np.dtype(np.float32)),
]


# A full-size official checkpoint is 203 MB (shared/fixtures/official_ha2g/README.md); ten times that is not one.
MAX_OFFICIAL_BYTES = 2_000_000_000


def read_official_file(path) -> dict:
    """Unpickle an official checkpoint with the allow-list (no code execution). Raises FileNotFoundError/ValueError."""
    path = regular_file(path, "official checkpoint")
    _check_archive(path)
    try:
        with torch.serialization.safe_globals(_SAFE_GLOBALS):
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # the weights-only unpickler names the refused global
        raise _refusal(path, e) from None
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a dict checkpoint, got {type(state).__name__}")
    missing = [k for k in ("args", "lang_model", "speaker_model", "pose_dim", "audio_dict", "text_dict",
                           "dis_dict", "gen_dict_1") if k not in state]
    if missing:
        raise ValueError(f"{path}: not an official HA2G checkpoint, missing entries {missing}")
    kinds = {"args": argparse.Namespace, "lang_model": _OfficialVocab, "speaker_model": _OfficialVocab}
    for key, value in state.items():
        if key in kinds and not isinstance(value, kinds[key]):
            raise ValueError(f"{path}: {key} must be a {kinds[key].__name__}, got {type(value).__name__}")
        if key.endswith("_dict") and not (isinstance(value, dict) and all(
                isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items())):
            raise ValueError(f"{path}: {key} must be a state dict (names -> tensors)")
    return state


def _check_archive(path: Path) -> None:
    """Refuse, from the zip directory alone (nothing is inflated), what torch.load would otherwise inflate or allocate
    before any check: compressed records (torch.save never compresses; a 2 MB zip bomb inflated to 2.4 GB) and
    records larger in all than MAX_OFFICIAL_BYTES. The legacy format (torch < 1.6, a bare pickle) declares each
    storage's size before reading it, so a few bytes could ask for gigabytes: it is refused too."""
    if path.stat().st_size == 0:
        raise ValueError(f"{path} is empty (0 bytes): not an official HA2G checkpoint")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path} is not a torch zip archive (torch.save since torch 1.6): a bare pickle or the "
                         "legacy format is not read (re-save it with torch >= 1.6 where it is trusted)")
    try:
        with zipfile.ZipFile(path) as archive:
            records = archive.infolist()
    except (zipfile.BadZipFile, OSError) as e:
        raise ValueError(f"{path} is a damaged zip archive: {e}") from None
    compressed = [r.filename for r in records if r.compress_type != zipfile.ZIP_STORED]
    if compressed:
        raise ValueError(f"{path} has {len(compressed)} compressed records (e.g. {compressed[0]!r}): torch.save "
                         "never compresses, refused unread (a zip bomb?)")
    total = sum(r.file_size for r in records)
    if total > MAX_OFFICIAL_BYTES:
        raise ValueError(f"{path} holds {total:,} bytes, more than the {MAX_OFFICIAL_BYTES:,} of any HA2G checkpoint")


def _refusal(path: Path, error: Exception) -> ValueError:
    """torch.load's error as one line. torch's own advice -- re-run with weights_only=False -- would run whatever
    code the file holds, so it is never passed on."""
    text = str(error)
    refused = re.search(r"GLOBAL ([\w.]+)", text)
    if refused:
        return ValueError(f"{path} is refused: it asks to call {refused.group(1)}, which no HA2G checkpoint holds "
                          "(pickled code is never run)")
    lines = [line.strip() for line in text.splitlines() if line.strip() and "weights_only" not in line
             and "eights only" not in line]
    reason = f"{type(error).__name__}: {lines[0][:200]}" if lines else type(error).__name__
    return ValueError(f"{path} is not a loadable official HA2G checkpoint ({reason})")


def _vocab_words(vocab: _OfficialVocab) -> list[str]:
    attrs = vars(vocab)
    index2word, n_words = attrs.get("index2word"), attrs.get("n_words")  # n_words: checked by HA2GConfig already
    words = [index2word.get(i) for i in range(n_words)] if isinstance(index2word, dict) else []
    if not all(isinstance(w, str) for w in words) or tuple(words[:4]) != SPECIAL_TOKENS:
        raise ValueError("official lang_model is not a dense Vocab starting with <PAD> <SOS> <EOS> <UNK>")
    return words


def _speaker_names(vocab: _OfficialVocab) -> list[str | None]:
    """Speaker id -> name (official ids start at 1; id 0 has no speaker)."""
    attrs = vars(vocab)
    names: list[str | None] = [None] * attrs["n_words"]
    word2index = attrs.get("word2index")
    if not isinstance(word2index, dict):
        raise ValueError("official speaker_model has no word2index mapping")
    for name, index in word2index.items():
        if not (isinstance(name, str) and isinstance(index, int) and 0 <= index < len(names)):
            raise ValueError(f"official speaker_model maps {str(name)[:40]!r} to {str(index)[:20]}, not to an id in "
                             f"[0, {len(names)})")
        names[index] = name
    return names


def config_from_official(state: dict) -> HA2GConfig:
    args = vars(state["args"])
    pose_dim = _number(state["pose_dim"], "pose_dim")
    skeleton = skeleton_for_pose_dim(pose_dim)
    n_gens = len([k for k in state if re.fullmatch(r"gen_dict_\d+", k)])
    if n_gens != len(skeleton.levels):
        raise ValueError(f"official checkpoint has pose_dim {pose_dim} ({skeleton.name}, {len(skeleton.levels)} "
                         f"levels) but {n_gens} generators (gen_dict_*)")
    return HA2GConfig(
        skeleton=skeleton.name, hidden_size=_number(args.get("hidden_size"), "args.hidden_size"),
        n_layers=_number(args.get("n_layers"), "args.n_layers"),
        dropout=_number(args.get("dropout_prob", 0.3), "args.dropout_prob", float),
        n_words=_number(vars(state["lang_model"]).get("n_words"), "lang_model.n_words"),
        word_dim=_number(args.get("wordembed_dim", 300), "args.wordembed_dim"),
        n_speakers=_number(vars(state["speaker_model"]).get("n_words"), "speaker_model.n_words"),
        n_poses=_number(args.get("n_poses", 34), "args.n_poses"),
        n_pre_poses=_number(args.get("n_pre_poses", 4), "args.n_pre_poses"),
        shared_word_embedding=False,  # as stored: one table per text encoder (load_official_checkpoint merges them)
        official_head_copy_bug=skeleton.name == "ted_expressive")


def _number(value, name: str, kind=int):
    """A number of the official file (configargparse may store it as a 1-element list) as `kind`, or a ValueError
    naming it."""
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    accepted = (int, np.integer) if kind is int else (int, float, np.integer, np.floating)
    if isinstance(value, bool) or not isinstance(value, accepted):
        raise ValueError(f"official checkpoint: {name} must be {'an integer' if kind is int else 'a number'}, got "
                         f"{type(value).__name__} {str(value)[:30]}")
    return kind(value)


_WEIGHT_NORM = {"weight_g": "parametrizations.weight.original0", "weight_v": "parametrizations.weight.original1"}


def _map_text_encoder(official: dict, ours: str, table: int, out: dict, where: str) -> None:
    """One official TextEncoderTCN state (keys without prefix) -> `out`. Its embedding goes to word table `table`.
    The legacy weight norm registers each conv twice (`conv1` = `net.0`, `conv2` = `net.4`); the copies are checked
    and dropped, and weight_g / weight_v become the parametrization's original0 / original1."""
    for key, value in official.items():
        if key == "embedding.weight":
            out[f"word_embeddings.{table}.weight"] = value
            continue
        m = re.fullmatch(r"tcn\.network\.(\d+)\.(conv1|conv2|net\.0|net\.4|downsample)\.(.+)", key)
        if m is None:  # decoder.*
            out[f"{ours}.{key}"] = value
            continue
        block, conv, param = m.groups()
        if conv.startswith("net."):
            twin = f"tcn.network.{block}.{'conv1' if conv == 'net.0' else 'conv2'}.{param}"
            if twin not in official or not torch.equal(official[twin], value):
                raise ValueError(f"{where}: {key} should be the same tensor as {twin} (legacy weight norm layout)")
            continue
        out[f"{ours}.tcn.{block}.{conv}.{_WEIGHT_NORM.get(param, param)}"] = value


def official_state_to_ours(state: dict, config: HA2GConfig) -> dict[str, torch.Tensor]:
    """Map the official module state dicts onto HA2G's state-dict names (values untouched)."""
    if config.shared_word_embedding:
        raise ValueError("official checkpoints have one word table per text encoder (shared_word_embedding=False)")
    out: dict[str, torch.Tensor] = {}
    for k in range(config.n_levels):
        name, ours = f"gen_dict_{k + 1}", f"generator.levels.{k}"
        generator = state[name]
        text = {key[len("text_encoder."):]: v for key, v in generator.items() if key.startswith("text_encoder.")}
        _map_text_encoder(text, f"{ours}.text_encoder", k, out, name)
        out.update({f"{ours}.{key}": v for key, v in generator.items() if not key.startswith("text_encoder.")})
    _map_text_encoder(state["text_dict"], "text_encoder", config.n_levels, out, "text_dict")
    for key, value in state["audio_dict"].items():
        if not key.startswith("feat_extractor."):
            raise ValueError(f"audio_dict: unexpected key {key!r}")
        out[f"audio_encoder.{key[len('feat_extractor.'):]}"] = value
    out.update({f"discriminator.{key}": v for key, v in state["dis_dict"].items()})
    return out


def load_official_checkpoint(path, device: str = "cpu") -> tuple[HA2G, Vocab, dict]:
    """Official checkpoint -> (HA2G in eval mode, word Vocab, meta). The model reproduces the official forward,
    including the off-by-one head copy of TED Expressive (`official_head_copy_bug`), with one word table when the
    file's N+1 tables are identical (as training leaves them, see config.py). meta holds the official args
    as a plain dict, the speaker names by id, pose_dim, epoch and the source path."""
    state = read_official_file(path)
    config = config_from_official(state)
    ours, model_config = share_identical_word_tables(official_state_to_ours(state, config), config)
    model = HA2G(model_config)
    load_state_checked(model, ours, f"official checkpoint {path}")
    args = vars(state["args"])
    try:
        mean = np.asarray(args.get("mean_dir_vec", config.skeleton_def.mean_dir_vec), dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise ValueError(f"{path}: args.mean_dir_vec is not a list of {config.pose_dim} numbers") from None
    if mean.shape != (config.pose_dim,) or not np.abs(mean - config.skeleton_def.mean_dir_vec).max() <= 1e-6:
        warnings.warn(f"{path}: mean_dir_vec in args differs from the {config.skeleton} statistics; outputs are "
                      "normalised with the checkpoint's mean (see meta['official_args']['mean_dir_vec'])")
    vocab = Vocab.from_list(_vocab_words(state["lang_model"]))
    meta = {"source": "official", "source_path": str(path), "skeleton": config.skeleton,
            "pose_dim": config.pose_dim, "epoch": state.get("epoch"),
            "speakers": _speaker_names(state["speaker_model"]), "official_args": _plain(args)}
    return model.to(device).eval(), vocab, meta


def _plain(value, depth: int = 0):
    """Namespace values -> JSON-able Python (configargparse wraps YAML list items in 1-element lists)."""
    if depth > 32:  # no real argument nests this deep; str() of it would recurse as deep
        return "<nested too deeply>"
    if isinstance(value, dict):
        return {str(k)[:200]: _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, depth + 1) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.generic,)):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ha2g_model.official",
                                     description="Convert an official HA2G checkpoint to our safetensors format.")
    parser.add_argument("official", help="official checkpoint (.bin) as released by alvinliu0/HA2G")
    parser.add_argument("out_dir", help="directory for model.safetensors + config.json + vocab.json")
    args = parser.parse_args(argv)
    try:
        model, vocab, meta = load_official_checkpoint(args.official)
        save_checkpoint(args.out_dir, model, vocab, meta)
        export_checkpoint_graphs(args.out_dir)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {args.out_dir}: {meta['skeleton']}, {model.n_parameters() / 1e6:.1f} M parameters, "
          f"{len(vocab)} words, {sum(s is not None for s in meta['speakers'])} speakers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
