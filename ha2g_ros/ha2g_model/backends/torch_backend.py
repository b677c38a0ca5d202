"""The `torch` backend: `HA2G.generate_window` itself, on CPU or CUDA, fp32 (or fp16 on CUDA).

`threads` sets torch's intra-op thread count, which is process-wide: None or 0 leave it as the process set it (a
training or evaluation script sets its own), the robot entry points (gesture node, ha2g-generate) pass 1.

With `cuda_graph=True` the batch-1 window is captured once as a CUDA graph and replayed: HA2G's 6 levels x 4-layer
bi-GRUs launch hundreds of small kernels per window, so on a GPU the launch overhead, not arithmetic, dominates.
"""
from __future__ import annotations

import copy

import numpy as np
import torch

from ha2g_model.backends import BackendError


class TorchBackend:
    name = "torch"

    def __init__(self, model, device: str = "cpu", precision: str = "fp32", cuda_graph: bool = False,
                 threads: int | None = None):
        cuda = device.startswith("cuda")
        if cuda and not torch.cuda.is_available():
            raise BackendError(f"device {device!r} requested but CUDA is not available to this torch "
                               f"({torch.__version__}); use device='cpu'")
        if precision == "fp16" and not cuda:
            raise BackendError("fp16 needs a CUDA device (CPU half-precision GRUs are slower than fp32)")
        if cuda_graph and not cuda:
            raise BackendError("cuda_graph=True needs a CUDA device")
        if threads:
            torch.set_num_threads(threads)
        self.device, self.precision = device, precision
        self.dtype = torch.float16 if precision == "fp16" else torch.float32
        self.config = model.config
        # The caller's module is left as it is (device, dtype) unless nothing changes but eval mode.
        if cuda or precision != "fp32":
            model = copy.deepcopy(model)
        try:
            self.model = model.eval().to(device=device, dtype=self.dtype)
            self._graph = self._capture_graph() if cuda_graph else None
        except torch.cuda.OutOfMemoryError as e:
            raise BackendError(f"out of GPU memory while loading the model on {device}: {e}") from e

    def run(self, spec, words, seed, speaker, noise) -> np.ndarray:
        inputs = self._tensors(spec, words, seed, speaker, noise)
        with torch.inference_mode():
            if self._graph is not None and inputs[0].shape[0] == 1:
                graph, static_inputs, static_out = self._graph
                for static, value in zip(static_inputs, inputs):
                    static.copy_(value)
                graph.replay()
                out = static_out
            else:
                out = self.model.generate_window(*inputs)
            return out.float().cpu().numpy()

    def encode(self, spec, words, speaker) -> tuple[np.ndarray, np.ndarray]:
        """`HA2G.encode_window` (any batch): -> blends, texts (B, n_levels, 34, feat_dim)."""
        with torch.inference_mode():
            encoded = self.model.encode_window(self._floats(spec), self._ids(words), self._ids(speaker))
            return tuple(x.float().cpu().numpy() for x in encoded)

    def decode(self, blends, texts, seed, speaker, noise) -> np.ndarray:
        """`HA2G.decode_window`: the level chain on encoded windows -> poses (B, 34, pose_dim)."""
        with torch.inference_mode():
            out = self.model.decode_window(self._floats(blends), self._floats(texts), self._floats(seed),
                                           self._ids(speaker), self._floats(noise))
            return out.float().cpu().numpy()

    def _tensors(self, spec, words, seed, speaker, noise):
        return (self._floats(spec), self._ids(words), self._floats(seed), self._ids(speaker), self._floats(noise))

    def _floats(self, x) -> torch.Tensor:
        """A numpy array as a tensor on this backend's device, in its precision."""
        return torch.as_tensor(np.ascontiguousarray(x)).to(device=self.device, dtype=self.dtype)

    def _ids(self, x) -> torch.Tensor:
        """Word or speaker ids as an int64 tensor on this backend's device (embedding indices)."""
        return torch.as_tensor(np.ascontiguousarray(x)).to(device=self.device, dtype=torch.int64)

    def _capture_graph(self):
        """Record one batch-1 window on static buffers (warm-up on a side stream first, as CUDA graphs require)."""
        c = self.config
        static_inputs = (torch.zeros(1, c.n_mels, c.spec_cols, device=self.device, dtype=self.dtype),
                         torch.zeros(1, c.n_poses, device=self.device, dtype=torch.int64),
                         torch.zeros(1, c.n_pre_poses, c.pose_dim, device=self.device, dtype=self.dtype),
                         torch.zeros(1, device=self.device, dtype=torch.int64),
                         torch.zeros(1, c.n_levels, c.z_dim, device=self.device, dtype=self.dtype))
        with torch.inference_mode():
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(3):
                    self.model.generate_window(*static_inputs)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                static_out = self.model.generate_window(*static_inputs)
        return graph, static_inputs, static_out
