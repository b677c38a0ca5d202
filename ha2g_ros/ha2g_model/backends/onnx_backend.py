"""The `onnxruntime` backend: the two inference graphs of `ha2g_model.onnx_export` run by ONNX Runtime. No torch.

    encode (spec, words, speaker -> blends, texts): the convolutions
    decode (blends, texts, seed, speaker, noise -> poses): the GRU chain, on ONE thread -- a batch-1 GRU step is too
        small to split, and waking sleeping threads for each of its 1,632 steps made a full-size window 10x slower
        on 2 threads.
Both sessions default to one thread: on a robot the engine shares a few cores with ROS nodes and audio, and the
whole-utterance mode already runs the encoders of later windows beside the chain (engine.py).

The graphs come from the checkpoint when it ships them (checked against its weights, see checkpoint.py), else they
are exported once into the cache (which needs torch). On `device="cuda"` the sessions use ONNX Runtime's TensorRT
and/or CUDA execution providers (onnxruntime-gpu); fp16 is TensorRT's (`trt_fp16_enable`).
"""
from __future__ import annotations

import numpy as np

from ha2g_model.backends import BackendError, ModelSource, default_cache_dir

# part -> (input names, output names), in the graphs' order
GRAPH_IO = {"encode": (("spec", "words", "speaker"), ("blends", "texts")),
            "decode": (("blends", "texts", "seed", "speaker", "noise"), ("poses",))}
_DTYPES = {"spec": np.float32, "words": np.int32, "seed": np.float32, "speaker": np.int32, "noise": np.float32,
           "blends": np.float32, "texts": np.float32}
GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


def input_shapes(config, batch: int = 1) -> dict[str, tuple[int, ...]]:
    """The shape of every graph input for `batch` windows of a model with HA2GConfig `config`."""
    encoded = (batch, config.n_levels, config.n_poses, config.feat_dim)
    return {"spec": (batch, config.n_mels, config.spec_cols), "words": (batch, config.n_poses),
            "speaker": (batch,), "blends": encoded, "texts": encoded,
            "seed": (batch, config.n_pre_poses, config.pose_dim), "noise": (batch, config.n_levels, config.z_dim)}


def graph_feeds(**arrays) -> dict[str, np.ndarray]:
    """Named arrays -> a graph's feed dict, in the dtypes the graphs were exported with."""
    return {name: np.ascontiguousarray(value, _DTYPES[name]) for name, value in arrays.items()}


def check_features(blends, texts) -> None:
    """ONNX Runtime's GRU clamps NaN to finite values (measured: NaN features in, finite poses out), so a NaN here
    would leave as plausible-looking garbage instead of failing the window as torch does."""
    if not (np.isfinite(blends).all() and np.isfinite(texts).all()):
        raise BackendError("the audio/text encoders produced NaN or Inf features (damaged weights?)")


class OnnxBackend:
    name = "onnxruntime"

    def __init__(self, model_or_checkpoint, device: str = "cpu", precision: str = "fp32", cache_dir=None,
                 threads: int = 1, providers: list[str] | None = None):
        """threads: intra-op threads of the encoder session (0 = ONNX Runtime's default, one per core); the chain
        session always has one. providers: ONNX Runtime execution provider names (default: CPU, or the GPU ones
        that this onnxruntime has when `device` is cuda[:N])."""
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise BackendError(f"onnxruntime is not installed ({e}); pip install onnxruntime") from e
        available = ort.get_available_providers()
        if providers is None:
            providers = ["CPUExecutionProvider"]
            if device.startswith("cuda"):
                gpu = [p for p in GPU_PROVIDERS if p in available]
                if not gpu:
                    raise BackendError(f"device {device!r} asked for, but this onnxruntime has no GPU execution "
                                       f"provider (available: {available}); install onnxruntime-gpu")
                providers = gpu + providers
        missing = [p for p in providers if p not in available]
        if missing:
            raise BackendError(f"onnxruntime execution provider(s) {missing} not available (have {available})")
        if precision == "fp16" and "TensorrtExecutionProvider" not in providers:
            raise BackendError("the onnxruntime backend runs fp32, or fp16 through the TensorRT execution provider "
                               "(device='cuda' with onnxruntime-gpu built with TensorRT)")
        self.device, self.precision, self.providers = device, precision, providers
        self._ort = ort
        self._provider_options = [self._options(p, device, precision) for p in providers]
        graphs = ModelSource.of(model_or_checkpoint).graphs(tuple(GRAPH_IO), cache_dir)
        try:
            self._encoder = self._session(graphs["encode"], threads)
            self._decoder = self._session(graphs["decode"], 1)
        except Exception as e:  # ONNX Runtime refuses a graph: report it as this backend's failure
            raise BackendError(f"could not load the ONNX model: {type(e).__name__}: {e}") from e

    @staticmethod
    def _options(provider: str, device: str, precision: str) -> dict:
        """ONNX Runtime's documented provider options for the GPU providers."""
        if provider not in GPU_PROVIDERS:
            return {}
        options = {"device_id": int(device.partition(":")[2] or 0)}
        if provider == "TensorrtExecutionProvider":  # engines take minutes to build: keep them between runs
            options.update(trt_fp16_enable=precision == "fp16", trt_engine_cache_enable=True,
                           trt_engine_cache_path=str(default_cache_dir() / "ort_tensorrt"))
        return options

    def _session(self, path, threads: int):
        options = self._ort.SessionOptions()
        options.graph_optimization_level = self._ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1  # the chain is sequential: level k needs level k-1
        # Idle worker threads sleep instead of spinning: the engine shares the CPU with ROS nodes and audio I/O,
        # and spinning threads measurably slow every other thread (torch's included) on small machines.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return self._ort.InferenceSession(str(path), options, providers=self.providers,
                                          provider_options=self._provider_options)

    def run(self, spec, words, seed, speaker, noise) -> np.ndarray:
        return self.decode(*self.encode(spec, words, speaker), seed, speaker, noise)

    def encode(self, spec, words, speaker) -> tuple[np.ndarray, np.ndarray]:
        """`HA2G.encode_window`: -> blends, texts (B, n_levels, 34, feat_dim)."""
        blends, texts = self._encoder.run(None, graph_feeds(spec=spec, words=words, speaker=speaker))
        return blends, texts

    def decode(self, blends, texts, seed, speaker, noise) -> np.ndarray:
        """`HA2G.decode_window`: the level chain on encoded windows -> poses (B, 34, pose_dim)."""
        check_features(blends, texts)
        feeds = graph_feeds(blends=blends, texts=texts, seed=seed, speaker=speaker, noise=noise)
        return self._decoder.run(None, feeds)[0]
