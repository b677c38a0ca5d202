"""HA2GConfig: every size of the model in one typed dataclass, plus named presets.

The defaults are the official layout (alvinliu0/HA2G, `config*/hierarchy.yml`), so an official checkpoint maps onto
`HA2GConfig(skeleton=..., hidden_size=args.hidden_size, n_layers=args.n_layers, n_words=..., n_speakers=...)`.
The audio-encoder widths/blocks exist for OUR smaller checkpoints only.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

from ha2g_model.skeleton import Skeleton, get_skeleton


@dataclass(frozen=True)
class HA2GConfig:
    skeleton: str = "ted_expressive"  # "ted_gesture" (27-d, 3 levels) or "ted_expressive" (126-d, 6 levels)
    # pose generators (one per hierarchy level) and the TCN text encoders: the official code ties both to these two
    hidden_size: int = 300
    n_layers: int = 4
    dropout: float = 0.3  # GRU between layers and TCN blocks
    emb_dropout: float = 0.1  # on the looked-up word vectors
    # text
    n_words: int = 50  # vocabulary size (PAD 0, SOS 1, EOS 2, UNK 3, then words)
    word_dim: int = 300  # FastText vectors are 300-d
    # One embedding table for all text encoders. The official code builds N+1 tables (one per generator + the
    # contrastive encoder) from the same float32 FastText array with `torch.FloatTensor(array)`, which does not
    # copy: they are one table that every encoder trains. False (N+1 separate tables) exists only for checkpoints
    # whose tables differ (`checkpoint.share_identical_word_tables` merges those that do not): at 30,000 words a
    # table is 36 MB, so N+1 of them would dominate a full-size model's memory.
    shared_word_embedding: bool = True
    tcn_kernel: int = 2
    # speaker style: an embedding table of n_speakers ids (official: the speaker Vocab's n_words, id 0 unused)
    n_speakers: int = 8
    z_dim: int = 16
    # audio encoder (ResNetSE34V2-like); feat_dim is the per-frame width of every audio and text feature
    audio_widths: tuple[int, ...] = (32, 64, 128, 256)
    audio_blocks: tuple[int, ...] = (3, 4, 6, 3)
    se_reduction: int = 8
    feat_dim: int = 32
    n_mels: int = 128
    # window: 34 frames at 15 fps, the first 4 are seed (constraint) frames; 70 spectrogram columns per window
    n_poses: int = 34
    n_pre_poses: int = 4
    spec_cols: int = 70
    # The official code copies the head ("last 5 joints") of level k-1 into pre_seq_k off by one channel, which
    # also overwrites the constraint bit (see generator.py). True reproduces official checkpoints exactly; our
    # own models are trained with the corrected copy.
    official_head_copy_bug: bool = False
    disc_hidden: int = 64  # fixed in the official discriminator
    disc_layers: int = 4

    def __post_init__(self):
        object.__setattr__(self, "audio_widths", tuple(self.audio_widths))
        object.__setattr__(self, "audio_blocks", tuple(self.audio_blocks))
        self.skeleton_def  # unknown skeleton names fail here, with the list of known ones
        problems = []
        if len(self.audio_widths) != 4 or len(self.audio_blocks) != 4:
            problems.append("audio_widths and audio_blocks need 4 entries (one per ResNet stage)")
        elif self.audio_widths[2] % 4 or self.audio_widths[3] % 16:
            problems.append("audio_widths[2] must be a multiple of 4 and audio_widths[3] of 16 (pixel shuffle)")
        if self.n_mels % 8:
            problems.append(f"n_mels must be a multiple of 8, got {self.n_mels}")
        if (self.n_poses, self.spec_cols) != (34, 70):
            problems.append("the audio heads are built for 34-frame windows of 70 spectrogram columns")
        if self.hidden_size < 2 or self.n_layers < 1:
            problems.append("hidden_size >= 2 and n_layers >= 1 are required")
        if self.n_words < 4:
            problems.append("n_words must include the 4 special tokens")
        if self.official_head_copy_bug and self.skeleton != "ted_expressive":
            problems.append("official_head_copy_bug exists only in the official TED Expressive code")
        if problems:
            raise ValueError("invalid HA2GConfig: " + "; ".join(problems))

    @property
    def skeleton_def(self) -> Skeleton:
        return get_skeleton(self.skeleton)

    @property
    def pose_dim(self) -> int:
        return self.skeleton_def.pose_dim

    @property
    def n_levels(self) -> int:
        return len(self.skeleton_def.levels)

    @property
    def level_dims(self) -> tuple[int, ...]:
        return self.skeleton_def.level_dims

    def to_dict(self) -> dict:
        d = asdict(self)
        d["audio_widths"] = list(self.audio_widths)
        d["audio_blocks"] = list(self.audio_blocks)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "HA2GConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown HA2GConfig fields {unknown}; known: {sorted(known)}")
        return cls(**d)

    def replace(self, **changes) -> "HA2GConfig":
        return replace(self, **changes)

    @classmethod
    def preset(cls, name: str, **overrides) -> "HA2GConfig":
        try:
            base = PRESETS[name]
        except KeyError:
            raise ValueError(f"unknown preset {name!r}; known: {sorted(PRESETS)}") from None
        return replace(base, **overrides)


PRESETS: dict[str, HA2GConfig] = {
    # The paper's models, layer for layer (train with these to reproduce the paper, bug included).
    "ted_gesture": HA2GConfig(skeleton="ted_gesture"),
    "ted_expressive": HA2GConfig(skeleton="ted_expressive", official_head_copy_bug=True),
    # Our shipped default: same architecture, narrower, the head copy fixed. 4.0 M
    # parameters + 0.3 M per 1000 words (16 MB + 1.2 MB per 1000 words as float32); hidden 128 would be 5.7 M.
    "compact_expressive": HA2GConfig(skeleton="ted_expressive", hidden_size=96, n_layers=2,
                                     audio_widths=(16, 32, 64, 128),
                                     audio_blocks=(2, 2, 2, 2)),
    # Tiny, for unit tests only.
    "tiny_gesture": HA2GConfig(skeleton="ted_gesture", hidden_size=16, n_layers=1, word_dim=8, n_words=20,
                               n_speakers=3, audio_widths=(8, 16, 32, 64),
                               audio_blocks=(1, 1, 1, 1)),
    "tiny_expressive": HA2GConfig(skeleton="ted_expressive", hidden_size=16, n_layers=1, word_dim=8, n_words=20,
                                  n_speakers=3, audio_widths=(8, 16, 32, 64), audio_blocks=(1, 1, 1, 1)),
}
