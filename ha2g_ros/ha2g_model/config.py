"""HA2GConfig: every size of the model in one typed dataclass, plus named presets.

The defaults are the official layout (alvinliu0/HA2G, `config*/hierarchy.yml`), so an official checkpoint maps onto
`HA2GConfig(skeleton=..., hidden_size=args.hidden_size, n_layers=args.n_layers, n_words=..., n_speakers=...)`.
The audio-encoder widths/blocks exist for OUR smaller checkpoints only.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace

from ha2g_model.skeleton import Skeleton, get_skeleton
from ha2g_model.untrusted import short_repr as _short

# Bounds far above any HA2G (the paper's: hidden 300, 4 layers, 30,000 words, ~1,000 speakers). A config.json beyond
# them is damaged or hostile: refused by name before a model is built, since building it would allocate until killed
# (hidden_size 10^7 asked for terabytes). MAX_PARAMETERS = 2 GB of float32, 4x a full-size model with 30,000 words.
SIZE_LIMITS = {"hidden_size": 8192, "n_layers": 64, "n_words": 5_000_000, "word_dim": 4096, "tcn_kernel": 16,
               "n_speakers": 1_000_000, "z_dim": 4096, "audio_widths": 8192, "audio_blocks": 64, "se_reduction": 8192,
               "feat_dim": 4096, "n_mels": 1024, "n_poses": 1024, "n_pre_poses": 1024, "spec_cols": 4096,
               "disc_hidden": 4096, "disc_layers": 64}
MAX_PARAMETERS = 500_000_000


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
        _check_types(self)  # a string or nested value would otherwise fail deep inside the checks below
        object.__setattr__(self, "audio_widths", tuple(self.audio_widths))
        object.__setattr__(self, "audio_blocks", tuple(self.audio_blocks))
        problems = [f"{name} must be in [1, {limit:,}], got {value:,}" for name, limit in SIZE_LIMITS.items()
                    for value in _values(getattr(self, name)) if not 1 <= value <= limit]
        if problems:
            raise ValueError("invalid HA2GConfig: " + "; ".join(problems))
        self.skeleton_def  # unknown skeleton names fail here, with the list of known ones
        if len(self.audio_widths) != 4 or len(self.audio_blocks) != 4:
            problems.append("audio_widths and audio_blocks need 4 entries (one per ResNet stage)")
        elif self.audio_widths[2] % 4 or self.audio_widths[3] % 16:
            problems.append("audio_widths[2] must be a multiple of 4 and audio_widths[3] of 16 (pixel shuffle)")
        if self.n_mels % 8:
            problems.append(f"n_mels must be a multiple of 8, got {self.n_mels}")
        if (self.n_poses, self.spec_cols) != (34, 70):
            problems.append("the audio heads are built for 34-frame windows of 70 spectrogram columns")
        if self.hidden_size < 2:
            problems.append("hidden_size >= 2 is required")
        if self.n_words < 4:
            problems.append("n_words must include the 4 special tokens")
        if not (0 <= self.dropout < 1 and 0 <= self.emb_dropout < 1):
            problems.append(f"dropout and emb_dropout must be in [0, 1), got {self.dropout} and {self.emb_dropout}")
        if self.official_head_copy_bug and self.skeleton != "ted_expressive":
            problems.append("official_head_copy_bug exists only in the official TED Expressive code")
        if not problems and self.n_parameters() > MAX_PARAMETERS:
            parts = sorted(self.parameter_counts().items(), key=lambda part: -part[1])
            problems.append(f"it would have {self.n_parameters():,} parameters, more than the {MAX_PARAMETERS:,} "
                            f"accepted; the largest parts: " + ", ".join(f"{name} {n:,}" for name, n in parts[:2]))
        if problems:
            raise ValueError("invalid HA2GConfig: " + "; ".join(problems))

    def parameter_counts(self) -> dict[str, int]:
        """The weights of HA2G with this config by part, named by the fields that size them: counted from the sizes
        alone (no model is built), so that absurd sizes are refused before anything is allocated. Biases, norms and
        the squeeze-excitation gates are left out (a few percent: tests/test_hostile_files.py compares with the
        built model)."""
        h, layers, feat, z, levels = self.hidden_size, self.n_layers, self.feat_dim, self.z_dim, self.n_levels
        tcn = (self.word_dim * (self.tcn_kernel + (self.word_dim != h)) * h  # first block, with its 1x1 shortcut
               + (2 * layers - 1) * h * h * self.tcn_kernel)
        gru_input = sum(self.level_dims) + levels * (1 + 2 * feat + z)
        w, n = self.audio_widths, self.audio_blocks
        stages = zip((w[0],) + w[:3], w, n)
        return {
            "word tables (n_words x word_dim)": self.n_words * self.word_dim * (
                1 if self.shared_word_embedding else levels + 1),
            "speaker tables (n_speakers)": self.n_speakers * (z * levels + 16),
            "text encoders (hidden_size, n_layers, word_dim)": (levels + 1) * (tcn + h * feat),
            "pose GRUs (hidden_size, n_layers)": 6 * h * (gru_input + levels * (h + (layers - 1) * 3 * h))
                                                 + levels * h * h // 2,
            # per stage: its first block (3x3 in->out, out->out, 1x1 shortcut), k-1 more blocks, squeeze-excitation
            # gates; then the three heads (a convolution and a per-frame linear layer each)
            "audio encoder (audio_widths, audio_blocks)": sum(
                10 * a * b + 9 * b * b + 18 * (k - 1) * b * b + 2 * k * b * b // self.se_reduction
                for a, b, k in stages) + 4 * w[1] ** 2 + 9 * (w[2] // 4) ** 2 + 9 * (w[3] // 16) ** 2
                + (self.n_mels // 2) * (w[1] + w[2] // 4 + w[3] // 16) * feat,
            "discriminator (disc_hidden, disc_layers)": 6 * self.disc_hidden * (
                8 + self.disc_hidden + (self.disc_layers - 1) * 3 * self.disc_hidden),
        }

    def n_parameters(self) -> int:
        """About how many weights HA2G with this config has (see parameter_counts)."""
        return sum(self.parameter_counts().values())

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
        if not isinstance(d, dict):
            raise ValueError(f"an HA2GConfig is a mapping of field names to values, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown HA2GConfig fields {_short(unknown)}; known: {sorted(known)}")
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


def _values(value) -> tuple:
    return value if isinstance(value, tuple) else (value,)


def _check_types(config: HA2GConfig) -> None:
    """Every field of the type its annotation names (bool is not an int here, an int is a float), all problems in
    one line naming the fields."""
    problems = []
    for field in fields(config):
        value = getattr(config, field.name)
        if field.type == "int":
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif field.type == "float":
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        elif field.type == "bool":
            ok = isinstance(value, bool)
        elif field.type == "str":
            ok = isinstance(value, str)
        else:  # tuple[int, ...]
            ok = isinstance(value, (tuple, list)) and all(isinstance(v, int) and not isinstance(v, bool)
                                                          for v in value)
        if not ok:
            problems.append(f"{field.name} must be {_KINDS[field.type]}, got {type(value).__name__} {_short(value)}")
    if problems:
        raise ValueError("invalid HA2GConfig: " + "; ".join(problems))


_KINDS = {"int": "an integer", "float": "a finite number", "bool": "true or false", "str": "a string",
          "tuple[int, ...]": "a list of integers"}


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
