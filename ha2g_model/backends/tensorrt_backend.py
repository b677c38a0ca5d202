"""The `tensorrt` backend: a TensorRT engine built from the exported ONNX window graph, run with pycuda buffers.

For Jetson (JetPack ships TensorRT and pycuda) and desktop NVIDIA GPUs; written against the TensorRT 10 Python API.
Building an engine takes minutes, so it is cached on disk under a name made of everything it depends on: the model
hash, the GPU (name and compute capability), the TensorRT version, the precision and the largest batch. An engine
file from another GPU or TensorRT version would not load, and a stale one would silently run old weights.

tensorrt and pycuda are imported when this backend is created, never at package import.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

from ha2g_model.backends import BackendError, default_cache_dir, model_hash
from ha2g_model.backends.onnx_backend import INPUT_NAMES, OUTPUT_NAME, cached_onnx, example_inputs, onnx_inputs

log = logging.getLogger(__name__)
WORKSPACE_BYTES = 1 << 30


class TensorRTBackend:
    name = "tensorrt"

    def __init__(self, model, device: str = "cuda", precision: str = "fp16", cache_dir=None, max_batch: int = 8,
                 engine_path=None):
        try:
            import tensorrt as trt
            import pycuda.driver as cuda
        except ImportError as e:
            raise BackendError(f"the tensorrt backend needs the tensorrt and pycuda Python packages ({e}); on a "
                               "Jetson they come with JetPack, on a desktop: pip install tensorrt pycuda") from e
        if not device.startswith("cuda"):
            raise BackendError(f"the tensorrt backend runs on a CUDA device, not {device!r}")
        if max_batch < 1:
            raise BackendError(f"max_batch must be >= 1, got {max_batch}")
        self.device, self.precision, self.max_batch = device, precision, max_batch
        self._trt, self._cuda = trt, cuda
        self._logger = trt.Logger(trt.Logger.WARNING)
        try:
            cuda.init()
            gpu = cuda.Device(int(device.partition(":")[2] or 0))
            # The primary context is the one the CUDA runtime (and torch) use, so buffers can be shared with them.
            self._context = gpu.retain_primary_context()
        except cuda.Error as e:
            raise BackendError(f"no usable CUDA device {device!r}: {e}") from e
        self._context.push()
        try:
            if engine_path is None:
                engine_path = self._cached_engine(model, gpu, cache_dir)
            self._engine = self._deserialize(Path(engine_path))
            self._execution = self._engine.create_execution_context()
            if self._execution is None:
                raise BackendError("TensorRT could not create an execution context (out of GPU memory?)")
            self._stream = cuda.Stream()
            self._buffers = self._allocate()
        except cuda.MemoryError as e:
            raise BackendError(f"out of GPU memory while loading the TensorRT engine: {e}") from e
        finally:
            self._context.pop()

    # --- engine file ----------------------------------------------------------------------------------------------

    def _cached_engine(self, model, gpu, cache_dir) -> Path:
        trt = self._trt
        cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "tensorrt"
        gpu_name = re.sub(r"[^A-Za-z0-9]+", "-", gpu.name()).strip("-")
        major, minor = gpu.compute_capability()
        path = cache_dir / (f"ha2g_{model_hash(model)}_{gpu_name}_sm{major}{minor}_trt{trt.__version__}_"
                            f"{self.precision}_b{self.max_batch}.engine")
        if path.is_file():
            return path
        onnx_path = cached_onnx(model, cache_dir, dynamic_batch=True)
        log.info("building TensorRT %s engine for %s (takes a few minutes, cached in %s)", self.precision,
                 gpu.name(), path)
        plan = self._build(onnx_path, model.config)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(plan)
        tmp.replace(path)
        return path

    def _build(self, onnx_path: Path, config) -> bytes:
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
        for name, example in zip(INPUT_NAMES, example_inputs(config)):
            shape = tuple(example.shape[1:])  # without the batch dimension
            profile.set_shape(name, (1,) + shape, (1,) + shape, (self.max_batch,) + shape)
        builder_config.add_optimization_profile(profile)
        plan = builder.build_serialized_network(network, builder_config)
        if plan is None:
            raise BackendError(f"TensorRT failed to build an engine from {onnx_path} (see the TensorRT log above)")
        return bytes(plan)

    def _deserialize(self, path: Path):
        if not path.is_file():
            raise BackendError(f"TensorRT engine file {path} does not exist")
        self._runtime = self._trt.Runtime(self._logger)  # kept: an engine must not outlive its runtime
        engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
        if engine is None:
            raise BackendError(f"TensorRT could not load the engine file {path}: corrupt, or built for another "
                               f"GPU / TensorRT version (this is {self._trt.__version__}); delete it to rebuild")
        return engine

    # --- buffers and execution ------------------------------------------------------------------------------------

    def _allocate(self) -> dict:
        """Page-locked host and device buffers for every I/O tensor, sized for max_batch."""
        trt, cuda = self._trt, self._cuda
        buffers = {}
        for i in range(self._engine.num_io_tensors):
            name = self._engine.get_tensor_name(i)
            dtype = np.dtype(trt.nptype(self._engine.get_tensor_dtype(name)))
            if self._engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                shape = tuple(self._engine.get_tensor_profile_shape(name, 0)[2])  # the profile's max: max_batch
            else:  # output: (max_batch,) + the static tail
                shape = (self.max_batch,) + tuple(self._engine.get_tensor_shape(name))[1:]
            host = cuda.pagelocked_empty(shape, dtype)
            buffers[name] = (host, cuda.mem_alloc(host.nbytes))
        if set(buffers) != set(INPUT_NAMES) | {OUTPUT_NAME}:
            raise BackendError(f"the TensorRT engine has tensors {sorted(buffers)}, expected "
                               f"{sorted(INPUT_NAMES + (OUTPUT_NAME,))}: an engine of another model?")
        return buffers

    def run(self, spec, words, seed, speaker, noise) -> np.ndarray:
        feeds = onnx_inputs(spec, words, seed, speaker, noise)
        batch = feeds["spec"].shape[0]
        if not 1 <= batch <= self.max_batch:
            raise ValueError(f"batch {batch} is outside the engine's range [1, {self.max_batch}]")
        cuda = self._cuda
        self._context.push()
        try:
            for name, value in feeds.items():
                host, device = self._buffers[name]
                host[:batch] = value.astype(host.dtype, copy=False)
                self._execution.set_input_shape(name, value.shape)
                self._execution.set_tensor_address(name, int(device))
                cuda.memcpy_htod_async(device, host[:batch], self._stream)
            out_host, out_device = self._buffers[OUTPUT_NAME]
            self._execution.set_tensor_address(OUTPUT_NAME, int(out_device))
            if not self._execution.execute_async_v3(stream_handle=self._stream.handle):
                raise BackendError("TensorRT execution failed (see the TensorRT log)")
            cuda.memcpy_dtoh_async(out_host[:batch], out_device, self._stream)
            self._stream.synchronize()
            return np.array(out_host[:batch], dtype=np.float32)
        finally:
            self._context.pop()

    def __del__(self):
        context = getattr(self, "_context", None)
        if context is not None:
            try:
                context.detach()
            except Exception:  # interpreter shutdown: the driver may already be gone
                pass
