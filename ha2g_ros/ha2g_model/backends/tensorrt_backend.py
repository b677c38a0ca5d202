"""The `tensorrt` backend: TensorRT engines built from the two ONNX graphs of `ha2g_model.onnx_export` (encode and
decode, the same files onnxruntime runs), for Jetson and desktop NVIDIA GPUs. Written against the TensorRT 10 Python
API (explicit batch, named I/O tensors, `execute_async_v3`).

Device buffers and the CUDA stream come from cuda-python (`pip install cuda-python`, no torch needed) or, when it is
absent, from torch (JetPack's PyTorch wheels, desktop CUDA builds). JetPack ships TensorRT's Python bindings but
neither of these (nor pycuda, which is not used): see docs/engine.md for the Jetson install steps.

Building an engine takes minutes, so each is cached on disk under a name made of everything it depends on: the
SHA-256 of its ONNX file, the GPU (name and compute capability), the TensorRT version, the precision and the largest
batch. An engine file from another GPU or TensorRT version would not load, and a stale one would run old weights.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

from ha2g_model.backends import BackendError, ModelSource, default_cache_dir
from ha2g_model.backends.onnx_backend import GRAPH_IO, check_features, graph_feeds

log = logging.getLogger(__name__)
WORKSPACE_BYTES = 1 << 30


class _CudaPython:
    """Device memory, copies and a stream through cuda-python's runtime API."""

    def __init__(self, index: int):
        try:
            from cuda.bindings import runtime as cudart
        except ImportError:
            from cuda import cudart  # cuda-python < 12.6 (raises ImportError when it is not installed at all)
        self._rt = cudart
        self._call(cudart.cudaSetDevice(index))
        props = self._call(cudart.cudaGetDeviceProperties(index))
        name = props.name
        self.gpu_name = (name.decode(errors="replace") if isinstance(name, bytes) else name).rstrip("\0")
        self.capability = (props.major, props.minor)
        self._stream = self._call(cudart.cudaStreamCreate())
        self.stream_handle = int(self._stream)
        self._allocations = []

    def _call(self, result):
        """cuda-python returns (error, values...): the values, or BackendError naming the error."""
        error, *values = result
        if error != self._rt.cudaError_t.cudaSuccess:
            raise BackendError(f"CUDA error {error.name}: {self._rt.cudaGetErrorString(error)[1].decode()}")
        return values[0] if values else None

    def empty(self, shape, dtype: np.dtype):
        pointer = self._call(self._rt.cudaMalloc(int(np.prod(shape)) * dtype.itemsize))
        self._allocations.append(pointer)
        return pointer, shape, dtype

    @staticmethod
    def address(buffer) -> int:
        return int(buffer[0])

    def upload(self, buffer, array: np.ndarray) -> None:
        kind = self._rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._call(self._rt.cudaMemcpyAsync(buffer[0], array.ctypes.data, array.nbytes, kind, self._stream))

    def download(self, buffer, shape) -> np.ndarray:
        host = np.empty(shape, buffer[2])
        kind = self._rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._call(self._rt.cudaMemcpyAsync(host.ctypes.data, buffer[0], host.nbytes, kind, self._stream))
        self._call(self._rt.cudaStreamSynchronize(self._stream))
        return host

    def __del__(self):
        try:
            for pointer in self._allocations:
                self._rt.cudaFree(pointer)
            self._rt.cudaStreamDestroy(self._stream)
        except Exception:  # interpreter shutdown: the runtime may already be gone
            pass


class _TorchCuda:
    """Device memory, copies and a stream through torch."""

    def __init__(self, index: int):
        import torch

        if not torch.cuda.is_available():
            raise BackendError(f"CUDA is not available to this torch ({torch.__version__})")
        self._torch, self._device = torch, torch.device("cuda", index)
        props = torch.cuda.get_device_properties(self._device)
        self.gpu_name, self.capability = props.name, (props.major, props.minor)
        self._stream = torch.cuda.Stream(self._device)
        self.stream_handle = self._stream.cuda_stream

    def empty(self, shape, dtype: np.dtype):
        try:
            return self._torch.from_numpy(np.empty(shape, dtype)).to(self._device)
        except self._torch.cuda.OutOfMemoryError as e:
            raise BackendError(f"out of GPU memory for the TensorRT buffers: {e}") from e

    @staticmethod
    def address(buffer) -> int:
        return buffer.data_ptr()

    def upload(self, buffer, array: np.ndarray) -> None:
        with self._torch.cuda.stream(self._stream):  # ordered before the engine's work on the same stream
            buffer[:len(array)].copy_(self._torch.from_numpy(array))

    def download(self, buffer, shape) -> np.ndarray:
        with self._torch.cuda.stream(self._stream):
            return buffer[:shape[0]].cpu().numpy()  # waits for the stream


def _cuda_memory(index: int):
    failures = []
    for cls in (_CudaPython, _TorchCuda):
        try:
            return cls(index)
        except ImportError as e:
            failures.append(str(e))
    raise BackendError("the tensorrt backend needs cuda-python (pip install cuda-python) or torch with CUDA for its "
                       f"device buffers: {'; '.join(failures)}")


class _Engine:
    """One engine (encode or decode) with device buffers for `max_batch` windows and its execution context."""

    def __init__(self, trt, engine, cuda, max_batch: int):
        self._engine, self._cuda, self.max_batch = engine, cuda, max_batch
        self._context = engine.create_execution_context()
        if self._context is None:
            raise BackendError("TensorRT could not create an execution context (out of GPU memory?)")
        self._buffers, self.inputs, self.outputs = {}, [], []
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(name)))
            self._buffers[name] = cuda.empty((max_batch,) + tuple(engine.get_tensor_shape(name))[1:], dtype)
            self._context.set_tensor_address(name, cuda.address(self._buffers[name]))
            (self.inputs if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT else self.outputs).append(name)

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        batch = len(next(iter(feeds.values())))
        if not 1 <= batch <= self.max_batch:
            raise ValueError(f"batch {batch} is outside the engine's range [1, {self.max_batch}]")
        for name, value in feeds.items():
            self._cuda.upload(self._buffers[name], value)
            self._context.set_input_shape(name, value.shape)
        if not self._context.execute_async_v3(self._cuda.stream_handle):
            raise BackendError("TensorRT execution failed (see the TensorRT log)")
        return [self._cuda.download(self._buffers[name], tuple(self._context.get_tensor_shape(name)))
                for name in self.outputs]


class TensorRTBackend:
    name = "tensorrt"

    def __init__(self, model_or_checkpoint, device: str = "cuda", precision: str = "fp16", cache_dir=None,
                 max_batch: int = 8):
        try:
            import tensorrt as trt
        except ImportError as e:
            raise BackendError(f"the tensorrt backend needs TensorRT's Python bindings ({e}); on a Jetson they come "
                               "with JetPack (python3-libnvinfer), on a desktop: pip install tensorrt") from e
        if not device.startswith("cuda"):
            raise BackendError(f"the tensorrt backend runs on a CUDA device, not {device!r}")
        if max_batch < 1:
            raise BackendError(f"max_batch must be >= 1, got {max_batch}")
        self.device, self.precision, self.max_batch = device, precision, max_batch
        self._trt = trt
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)  # kept: an engine must not outlive its runtime
        self._cuda = _cuda_memory(int(device.partition(":")[2] or 0))
        graphs = ModelSource.of(model_or_checkpoint).graphs(tuple(GRAPH_IO), cache_dir)
        engines = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "tensorrt"
        self._encoder, self._decoder = (_Engine(trt, self._deserialize(self._cached_engine(graphs[part], engines)),
                                                self._cuda, max_batch) for part in GRAPH_IO)

    def run(self, spec, words, seed, speaker, noise) -> np.ndarray:
        return self.decode(*self.encode(spec, words, speaker), seed, speaker, noise)

    def encode(self, spec, words, speaker) -> tuple[np.ndarray, np.ndarray]:
        """`HA2G.encode_window`: -> blends, texts (B, n_levels, 34, feat_dim)."""
        blends, texts = self._encoder.run(graph_feeds(spec=spec, words=words, speaker=speaker))
        return blends, texts

    def decode(self, blends, texts, seed, speaker, noise) -> np.ndarray:
        """`HA2G.decode_window`: the level chain on encoded windows -> poses (B, 34, pose_dim)."""
        check_features(blends, texts)
        return self._decoder.run(graph_feeds(blends=blends, texts=texts, seed=seed, speaker=speaker, noise=noise))[0]

    # --- engine files ---------------------------------------------------------------------------------------------

    def _cached_engine(self, onnx_path: Path, cache_dir: Path) -> Path:
        from ha2g_model.checkpoint import file_sha256

        gpu_name = re.sub(r"[^A-Za-z0-9]+", "-", self._cuda.gpu_name).strip("-")
        major, minor = self._cuda.capability
        path = cache_dir / (f"ha2g_{file_sha256(onnx_path)[:16]}_{onnx_path.stem}_{gpu_name}_sm{major}{minor}_"
                            f"trt{self._trt.__version__}_{self.precision}_b{self.max_batch}.engine")
        if path.is_file():
            return path
        log.info("building a TensorRT %s engine from %s for %s (takes a few minutes, cached in %s)", self.precision,
                 onnx_path.name, self._cuda.gpu_name, path)
        plan = self._build(onnx_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(plan)
        tmp.replace(path)
        return path

    def _build(self, onnx_path: Path) -> bytes:
        trt = self._trt
        builder = trt.Builder(self._logger)
        network = builder.create_network(0)  # TensorRT 10: explicit batch is the only mode
        parser = trt.OnnxParser(network, self._logger)
        if not parser.parse(onnx_path.read_bytes()):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise BackendError(f"TensorRT could not parse {onnx_path}: {errors}")
        builder_config = builder.create_builder_config()
        builder_config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
        if self.precision == "fp16":
            builder_config.set_flag(trt.BuilderFlag.FP16)
        profile = builder.create_optimization_profile()
        for i in range(network.num_inputs):  # every input: batch 1..max_batch, the rest as exported
            tensor = network.get_input(i)
            tail = tuple(tensor.shape)[1:]
            profile.set_shape(tensor.name, (1,) + tail, (1,) + tail, (self.max_batch,) + tail)
        builder_config.add_optimization_profile(profile)
        plan = builder.build_serialized_network(network, builder_config)
        if plan is None:
            raise BackendError(f"TensorRT failed to build an engine from {onnx_path} (see the TensorRT log above)")
        return bytes(plan)

    def _deserialize(self, path: Path):
        engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
        if engine is None:
            raise BackendError(f"TensorRT could not load the engine file {path}: corrupt, or built for another "
                               f"GPU / TensorRT version (this is {self._trt.__version__}); delete it to rebuild")
        return engine
