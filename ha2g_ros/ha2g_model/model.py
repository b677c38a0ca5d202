"""HA2G (Hierarchical Audio-to-Gesture, Liu et al., CVPR 2022): the whole model, owning every sub-module.

    spec (B,128,70) ──AudioEncoder──▶ low/mid/high (B,34,32) ──style weights per level──▶ blend_1..blend_L
    words (B,34) ──word_embeddings──▶ (B,34,300) ──▶ each level's TextEncoder (and the contrastive one)
    seed (B,4,pose_dim), speaker (B,) ──HierarchicalPoseGenerator──▶ level outputs (B,34,d_1) ... (B,34,pose_dim)

`generate_window` is the inference entry point (exported to ONNX/TensorRT by the engine): no data-dependent Python
control flow, deterministic unless a noise tensor is given. `forward` is the training pass: it returns everything
the losses need and samples z in training mode.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from ha2g_model.audio_encoder import AudioEncoder
from ha2g_model.config import HA2GConfig
from ha2g_model.discriminator import Discriminator
from ha2g_model.generator import HierarchicalPoseGenerator
from ha2g_model.text_encoder import TextEncoder


@dataclass
class HA2GOutput:
    """Everything one training pass produces; lists have one entry per hierarchy level (coarse to fine)."""

    poses: list[torch.Tensor]  # (B, 34, d_k); poses[-1] is the full skeleton (B, 34, pose_dim)
    pre_seqs: list[torch.Tensor]  # (B, 34, d_k + 1)
    z: list[torch.Tensor]  # (B, z_dim) style vectors actually used
    z_mu: list[torch.Tensor]
    z_logvar: list[torch.Tensor]
    level_text_feats: list[torch.Tensor]  # (B, 34, 32) each generator's own text features
    audio_weight: torch.Tensor  # (B, 3, L) softmax over (low, mid, high) per level
    audio_low: torch.Tensor  # (B, 34, 32)
    audio_mid: torch.Tensor
    audio_high: torch.Tensor
    audio_blends: list[torch.Tensor]  # (B, 34, 32) per level
    text_feat: torch.Tensor  # (B, 34, 32) the standalone text encoder, for the contrastive loss

    @property
    def pose(self) -> torch.Tensor:
        return self.poses[-1]


class HA2G(nn.Module):
    def __init__(self, config: HA2GConfig):
        super().__init__()
        self.config = config
        self.audio_encoder = AudioEncoder(config)
        self.generator = HierarchicalPoseGenerator(config)
        self.text_encoder = TextEncoder(config)  # standalone, only for the audio-text contrastive loss
        # One table that every text encoder reads (the official model's N+1 tables alias one array, see config.py);
        # one table per encoder (levels..., contrastive) only for checkpoints whose tables differ.
        n_tables = 1 if config.shared_word_embedding else config.n_levels + 1
        self.word_embeddings = nn.ModuleList(nn.Embedding(config.n_words, config.word_dim) for _ in range(n_tables))
        self.discriminator = Discriminator(config)

    # --- pieces ------------------------------------------------------------------------------------------------

    def word_vectors(self, words) -> list[torch.Tensor]:
        """words (B, T) -> one (B, T, word_dim) tensor per text encoder (levels 0..L-1, then the contrastive one).
        A shared table is looked up once (one Gather in the exported graphs)."""
        if len(self.word_embeddings) == 1:
            return [self.word_embeddings[0](words)] * (self.config.n_levels + 1)
        return [table(words) for table in self.word_embeddings]

    def encode_audio(self, spec, speaker) -> dict:
        return self.audio_encoder(spec, speaker)

    def decode(self, blends, words, seed, speaker, noise=None, sample: bool = False) -> dict:
        """Run the level chain on given audio blends. noise (B, L, z_dim) eps, or None: sampled if `sample`,
        else z = mu. (The diversity regulariser re-runs this with permuted speakers on the same blends.)"""
        n_levels = self.config.n_levels
        if noise is None and sample:
            noise = torch.randn(seed.shape[0], n_levels, self.config.z_dim, device=seed.device, dtype=seed.dtype)
        return self.generator(blends, self.word_vectors(words)[:n_levels], seed, speaker, noise)

    def discriminate(self, poses):
        return self.discriminator(poses)

    def sample_noise(self, batch: int, generator: torch.Generator | None = None):
        """Standard-normal eps (B, n_levels, z_dim) for `generate_window(noise=...)`; reproducible with a generator."""
        device = next(self.parameters()).device
        return torch.randn(batch, self.config.n_levels, self.config.z_dim, generator=generator,
                           device=device if generator is None else generator.device).to(device)

    # --- entry points ------------------------------------------------------------------------------------------

    def forward(self, spec, words, seed, speaker, noise=None) -> HA2GOutput:
        """Training pass. z is sampled in training mode unless `noise` is given; in eval mode z = mu."""
        self._check_inputs(spec, words, seed, speaker, noise)
        audio = self.encode_audio(spec, speaker)
        chain = self.decode(audio["blends"], words, seed, speaker, noise, sample=self.training)
        text_feat = self.text_encoder(self.word_vectors(words)[-1])
        return HA2GOutput(poses=chain["out"], pre_seqs=chain["pre_seq"], z=chain["z"], z_mu=chain["mu"],
                          z_logvar=chain["logvar"], level_text_feats=chain["text"],
                          audio_weight=audio["weight"], audio_low=audio["low"], audio_mid=audio["mid"],
                          audio_high=audio["high"], audio_blends=audio["blends"], text_feat=text_feat)

    def generate_window(self, spec, words, seed, speaker, noise=None):
        """One 34-frame window.

        spec (B, 128, 70) float32 log-mel dB; words (B, 34) int64 frame-aligned word ids (0 = PAD); seed
        (B, 4, pose_dim) normalised direction vectors of the 4 seed frames; speaker (B,) int64; noise None
        (deterministic: z = mu) or (B, n_levels, 16) standard-normal eps. -> (B, 34, pose_dim) normalised
        direction vectors of the full skeleton (the last level's output).
        """
        self._check_inputs(spec, words, seed, speaker, noise)
        audio = self.encode_audio(spec, speaker)
        return self.decode(audio["blends"], words, seed, speaker, noise)["out"][-1]

    def encode_window(self, spec, words, speaker):
        """The part of `generate_window` that needs neither the seed frames nor the style noise: the audio blends
        and every level's text features, (B, n_levels, 34, feat_dim) each. A whole utterance encodes all its windows
        at once (batched, or beside the level chain) and only `decode_window` runs window after window."""
        self._check_inputs(spec, words, None, speaker, None)
        blends = torch.stack(self.encode_audio(spec, speaker)["blends"], dim=1)
        texts = torch.stack([level.text_encoder(vectors)
                             for level, vectors in zip(self.generator.levels, self.word_vectors(words))], dim=1)
        return blends, texts

    def decode_window(self, blends, texts, seed, speaker, noise=None):
        """The level chain of `generate_window` on `encode_window`'s outputs: generate_window(spec, words, seed,
        speaker, noise) == decode_window(*encode_window(spec, words, speaker), seed, speaker, noise)."""
        n = self.config.n_levels
        chain = self.generator([blends[:, k] for k in range(n)], None, seed, speaker, noise,
                               texts=[texts[:, k] for k in range(n)])
        return chain["out"][-1]

    # --- input validation: eager mode only (a traced/exported graph has fixed shapes and cannot raise); value
    # checks also not while a CUDA graph is being captured (they read tensors back to the host) -----------------

    def _check_inputs(self, spec, words, seed, speaker, noise):
        if torch.jit.is_tracing() or torch.compiler.is_compiling():
            return
        c = self.config
        expected = {"spec": (spec, (c.n_mels, c.spec_cols)), "words": (words, (c.n_poses,)),
                    "seed": (seed, (c.n_pre_poses, c.pose_dim)), "speaker": (speaker, ()),
                    "noise": (noise, (c.n_levels, c.z_dim))}
        batch = spec.shape[0] if spec.dim() > 0 else None
        for name, (tensor, tail) in expected.items():
            if tensor is None:  # noise is optional; encode_window has no seed
                continue
            if tensor.dim() != len(tail) + 1 or tuple(tensor.shape[1:]) != tail or tensor.shape[0] != batch:
                wanted = "(" + ", ".join(["B"] + [str(n) for n in tail]) + ("," if not tail else "") + ")"
                raise ValueError(f"{name} must have shape {wanted} with the batch size of spec, got "
                                 f"{tuple(tensor.shape)} (model: {c.skeleton}, pose_dim {c.pose_dim}, "
                                 f"{c.n_levels} levels)")
        for name, tensor in (("words", words), ("speaker", speaker)):
            if tensor.dtype not in (torch.int64, torch.int32):
                raise ValueError(f"{name} must be an integer tensor (int64), got {tensor.dtype}")
        if torch.cuda.is_available() and torch.cuda.is_current_stream_capturing():
            return
        if words.numel() and (int(words.min()) < 0 or int(words.max()) >= c.n_words):
            raise ValueError(f"word ids must be in [0, {c.n_words}), got [{int(words.min())}, {int(words.max())}]")
        if speaker.numel() and (int(speaker.min()) < 0 or int(speaker.max()) >= c.n_speakers):
            raise ValueError(f"speaker ids must be in [0, {c.n_speakers}), "
                             f"got [{int(speaker.min())}, {int(speaker.max())}]")
        for name, tensor in (("spec", spec), ("seed", seed), ("noise", noise)):
            if tensor is not None and not bool(torch.isfinite(tensor).all()):
                raise ValueError(f"{name} contains NaN or Inf values")

    def n_parameters(self, include_discriminator: bool = True) -> int:
        params = self.parameters() if include_discriminator else (
            p for name, p in self.named_parameters() if not name.startswith("discriminator."))
        return sum(p.numel() for p in params)
