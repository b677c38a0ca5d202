"""The `onnxruntime` backend and the ONNX export of the generation chain (also the input of the TensorRT backend).

The exported window graph (TensorRT's input) is `HA2G.generate_window` for one static 34-frame window, inputs
    spec (B, 128, 70) float32, words (B, 34) int32, seed (B, 4, pose_dim) float32, speaker (B,) int32,
    noise (B, n_levels, z_dim) float32  ->  poses (B, 34, pose_dim) float32,
with B = 1 (static) or dynamic. ONNX Runtime runs the same chain as two graphs (dynamic batch): `HA2G.encode_window`
(spec, words, speaker -> blends, texts: the convolutions, any number of threads) and `HA2G.decode_window` (blends,
texts, seed, speaker, noise -> poses: the GRU chain, on ONE thread -- a batch-1 GRU step is too small to split, and
waking sleeping threads for each of its 1,632 steps made a full-size window 10x slower on 2 threads). A whole
utterance also runs the encoders of all its windows beside the sequential chain (engine.py).
Word and speaker ids are int32 at the graph boundary because TensorRT engines take
int32 indices everywhere; the graph casts them to int64 itself. Files are cached by model hash.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch

from ha2g_model.backends import BackendError, default_cache_dir, model_hash

INPUT_NAMES = ("spec", "words", "seed", "speaker", "noise")
OUTPUT_NAME = "poses"
OPSET = 17


class _WindowGraph(torch.nn.Module):
    """What gets exported: generate_window with int32 ids and an explicit noise input (zeros = deterministic)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, spec, words, seed, speaker, noise):
        return self.model.generate_window(spec, words.long(), seed, speaker.long(), noise)


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


# part -> (graph, input names, output names); "window" is the whole chain
PARTS = {"window": (_WindowGraph, INPUT_NAMES, (OUTPUT_NAME,)),
         "encode": (_EncodeGraph, ("spec", "words", "speaker"), ("blends", "texts")),
         "decode": (_DecodeGraph, ("blends", "texts", "seed", "speaker", "noise"), (OUTPUT_NAME,))}


def example_inputs(config, batch: int = 1) -> tuple[torch.Tensor, ...]:
    """Zero inputs of one window, in INPUT_NAMES order (torch tensors, the ONNX graph's dtypes)."""
    return (torch.zeros(batch, config.n_mels, config.spec_cols),
            torch.zeros(batch, config.n_poses, dtype=torch.int32),
            torch.zeros(batch, config.n_pre_poses, config.pose_dim),
            torch.zeros(batch, dtype=torch.int32),
            torch.zeros(batch, config.n_levels, config.z_dim))


def part_inputs(model, part: str, batch: int = 1) -> tuple[torch.Tensor, ...]:
    """Example inputs of one exported part (see PARTS)."""
    spec, words, seed, speaker, noise = example_inputs(model.config, batch)
    if part == "window":
        return spec, words, seed, speaker, noise
    if part == "encode":
        return spec, words, speaker
    with torch.no_grad():
        blends, texts = model.encode_window(spec, words.long(), speaker.long())
    return blends, texts, seed, speaker, noise


def export_onnx(model, path: str | Path, dynamic_batch: bool = False, part: str = "window") -> Path:
    """Export the window chain of `model` (or one of its PARTS) to `path` (TorchScript exporter, opset 17) and check
    it with onnx.checker."""
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cls, input_names, output_names = PARTS[part]
    graph = cls(model).eval().float().cpu()
    dynamic_axes = {name: {0: "batch"} for name in input_names + output_names} if dynamic_batch else None
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")  # written aside, renamed: readers never see half a file
    with torch.no_grad(), warnings.catch_warnings():
        # The exporter warns about constant folding of Slice and about GRU batch sizes with variable sequence
        # lengths; neither applies (windows are always 34 frames), so keep the user's console clean.
        warnings.simplefilter("ignore")
        # dynamo=False: the TorchScript exporter turns nn.GRU (bidirectional, multi-layer) into ONNX GRU ops
        torch.onnx.export(graph, part_inputs(model, part), str(tmp), input_names=list(input_names),
                          output_names=list(output_names), dynamic_axes=dynamic_axes, opset_version=OPSET,
                          dynamo=False, do_constant_folding=True)
    onnx.checker.check_model(str(tmp), full_check=True)
    tmp.replace(path)
    return path


def cached_onnx(model, cache_dir: str | Path | None = None, dynamic_batch: bool = False,
                part: str = "window") -> Path:
    """The ONNX file of `model` in the cache (exported on first use), keyed by the model's weights and config."""
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "onnx"
    prefix = "" if part == "window" else f"{part}_"
    path = cache_dir / f"ha2g_{model_hash(model)}_{prefix}{'dynamic' if dynamic_batch else 'b1'}.onnx"
    if not path.is_file():
        export_onnx(model, path, dynamic_batch, part)
    return path


def onnx_inputs(spec, words, seed, speaker, noise) -> dict[str, np.ndarray]:
    """Backend.run arguments -> the graph's feed dict (dtypes as exported); None arguments are left out."""
    dtypes = {"spec": np.float32, "words": np.int32, "seed": np.float32, "speaker": np.int32, "noise": np.float32}
    values = {"spec": spec, "words": words, "seed": seed, "speaker": speaker, "noise": noise}
    return {name: np.ascontiguousarray(value, dtypes[name]) for name, value in values.items() if value is not None}


class OnnxBackend:
    name = "onnxruntime"

    def __init__(self, model, device: str = "cpu", precision: str = "fp32", cache_dir=None,
                 threads: int | None = None, providers: list[str] | None = None):
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise BackendError(f"onnxruntime is not installed ({e}); pip install onnxruntime") from e
        if precision != "fp32":
            raise BackendError("the onnxruntime backend runs fp32 only (use tensorrt or torch for fp16)")
        self.device, self.precision = device, precision
        available = ort.get_available_providers()
        if providers is None:
            providers = ["CPUExecutionProvider"]
            if device.startswith("cuda"):
                gpu = [p for p in ("TensorrtExecutionProvider", "CUDAExecutionProvider") if p in available]
                if not gpu:
                    raise BackendError(f"device {device!r} asked for, but this onnxruntime has no GPU execution "
                                       f"provider (available: {available}); install onnxruntime-gpu")
                providers = gpu + providers
        missing = [p for p in providers if p not in available]
        if missing:
            raise BackendError(f"onnxruntime execution provider(s) {missing} not available (have {available})")
        self.providers = providers
        self._ort, self._model, self._cache_dir = ort, model, cache_dir
        try:
            self._encoder = self._session("encode", threads or os.cpu_count() or 1)
            self._decoder = self._session("decode", 1)
        except Exception as e:  # export or session failure: report it as this backend's failure
            raise BackendError(f"could not load the ONNX model: {type(e).__name__}: {e}") from e

    def _session(self, part: str, threads: int):
        options = self._ort.SessionOptions()
        options.graph_optimization_level = self._ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1  # the chain is sequential: level k needs level k-1
        # Idle worker threads sleep instead of spinning: the engine shares the CPU with ROS nodes and audio I/O,
        # and spinning threads measurably slow every other thread (torch's included) on small machines.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        path = cached_onnx(self._model, self._cache_dir, dynamic_batch=True, part=part)
        return self._ort.InferenceSession(str(path), options, providers=self.providers)

    def run(self, spec, words, seed, speaker, noise) -> np.ndarray:
        return self.decode(*self.encode(spec, words, speaker), seed, speaker, noise)

    def encode(self, spec, words, speaker) -> tuple[np.ndarray, np.ndarray]:
        """`HA2G.encode_window`: -> blends, texts (B, n_levels, 34, feat_dim)."""
        blends, texts = self._encoder.run(["blends", "texts"], onnx_inputs(spec, words, None, speaker, None))
        return blends, texts

    def decode(self, blends, texts, seed, speaker, noise) -> np.ndarray:
        """`HA2G.decode_window`: the level chain on encoded windows -> poses (B, 34, pose_dim)."""
        # ONNX Runtime's GRU clamps NaN to finite values (measured: NaN features in, finite poses out), so a NaN
        # here would leave as plausible-looking garbage instead of failing the window as torch does.
        if not (np.isfinite(blends).all() and np.isfinite(texts).all()):
            raise BackendError("the audio/text encoders produced NaN or Inf features (damaged weights?)")
        feeds = {**onnx_inputs(None, None, seed, speaker, noise), "blends": np.ascontiguousarray(blends, np.float32),
                 "texts": np.ascontiguousarray(texts, np.float32)}
        return self._decoder.run([OUTPUT_NAME], feeds)[0]
