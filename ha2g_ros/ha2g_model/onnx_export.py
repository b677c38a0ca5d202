"""ONNX export of HA2G's inference graphs (needs torch and onnx), into a checkpoint or into the cache.

    ha2g-export-onnx CHECKPOINT_DIR    # encode.onnx + decode.onnx beside the weights, recorded in config.json

Two graphs, dynamic batch, opset 17, TorchScript exporter (it turns nn.GRU into ONNX GRU ops), checked with
onnx.checker:
    encode  `HA2G.encode_window`: spec (B, 128, 70) float32, words (B, 34) int32, speaker (B,) int32
            -> blends, texts (B, n_levels, 34, feat_dim)                     (the convolutions)
    decode  `HA2G.decode_window`: blends, texts, seed (B, 4, pose_dim) float32, speaker (B,) int32,
            noise (B, n_levels, z_dim) float32 -> poses (B, 34, pose_dim)     (the GRU chain)
Word and speaker ids are int32 at the graph boundary because TensorRT engines take int32 indices everywhere; the
graphs cast them to int64 themselves. onnxruntime runs both graphs (backends/onnx_backend.py), TensorRT builds one
engine from each (backends/tensorrt_backend.py).

A checkpoint that ships its graphs runs on onnxruntime without torch; training calls `export_checkpoint_graphs`
after writing a checkpoint. Models without shipped graphs (in memory, older or official checkpoints) are exported
once into the cache (`cached_onnx`), keyed by the hash of their weights.
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

import torch

from ha2g_model.backends import default_cache_dir, model_hash
from ha2g_model.backends.onnx_backend import GRAPH_IO, input_shapes
from ha2g_model.checkpoint import EXPORT_COMMAND, load_checkpoint, record_graphs

OPSET = 17
_ID_INPUTS = ("words", "speaker")  # int32 at the boundary (see above)


class _EncodeGraph(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, spec, words, speaker):
        return self.model.encode_window(spec, words.long(), speaker.long())


class _DecodeGraph(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, blends, texts, seed, speaker, noise):
        return self.model.decode_window(blends, texts, seed, speaker.long(), noise)


WRAPPERS = {"encode": _EncodeGraph, "decode": _DecodeGraph}


def example_inputs(model, part: str, batch: int = 1) -> tuple[torch.Tensor, ...]:
    """Zero inputs of one graph, in its input order (the graph's dtypes)."""
    shapes = input_shapes(model.config, batch)
    return tuple(torch.zeros(shapes[name], dtype=torch.int32 if name in _ID_INPUTS else torch.float32)
                 for name in GRAPH_IO[part][0])


def export_onnx(model, path: str | Path, part: str, dynamic_batch: bool = True) -> Path:
    """Export graph `part` ("encode" or "decode") of `model` to `path` and check it with onnx.checker."""
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    input_names, output_names = GRAPH_IO[part]
    graph = WRAPPERS[part](model).eval().float().cpu()
    dynamic_axes = {name: {0: "batch"} for name in input_names + output_names} if dynamic_batch else None
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")  # written aside, renamed: readers never see half a file
    with torch.no_grad(), warnings.catch_warnings():
        # The exporter warns about constant folding of Slice and about GRU batch sizes with variable sequence
        # lengths; neither applies (windows are always 34 frames), so keep the user's console clean.
        warnings.simplefilter("ignore")
        torch.onnx.export(graph, example_inputs(model, part), str(tmp), input_names=list(input_names),
                          output_names=list(output_names), dynamic_axes=dynamic_axes, opset_version=OPSET,
                          dynamo=False, do_constant_folding=True)
    onnx.checker.check_model(str(tmp), full_check=True)
    tmp.replace(path)
    return path


def cached_onnx(model, part: str, cache_dir: str | Path | None = None) -> Path:
    """Graph `part` of `model` in the cache (exported on first use), keyed by the model's weights and config."""
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "onnx"
    path = cache_dir / f"ha2g_{model_hash(model)}_{part}_dynamic.onnx"
    if not path.is_file():
        export_onnx(model, path, part)
    return path


def export_checkpoint_graphs(path) -> dict[str, Path]:
    """Export the inference graphs of the checkpoint directory `path` into it and record them (with the SHA-256 of
    its model.safetensors) in its config.json. Call it after every `save_checkpoint` of a model meant to run."""
    path = Path(path)
    model, _, _ = load_checkpoint(path)
    files = {part: export_onnx(model, path / f"{part}.onnx", part) for part in WRAPPERS}
    record_graphs(path, files, opset=OPSET, exporter=f"torch {torch.__version__}")
    return files


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog=EXPORT_COMMAND, description="Export a checkpoint's inference graphs "
                                     "(encode.onnx, decode.onnx) into it, so that onnxruntime runs it without torch.")
    parser.add_argument("checkpoint", type=Path, help="checkpoint directory (model.safetensors + config.json + "
                                                      "vocab.json)")
    args = parser.parse_args(argv)
    try:
        files = export_checkpoint_graphs(args.checkpoint)
    except (FileNotFoundError, ValueError) as e:
        print(f"{EXPORT_COMMAND}: error: {e}", file=sys.stderr)
        return 2
    for file in files.values():
        print(f"{file} ({file.stat().st_size / 2**20:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
