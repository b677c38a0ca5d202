"""The two HA2G skeletons and the conversions between joint positions and direction vectors.

HA2G does not predict joint positions: it predicts, per bone, the unit vector from parent to child joint with the
data set's mean direction subtracted ("normalised direction vectors", 3 values per bone). Everything in this package
(model, engine, retargeting, training) speaks that representation, defined once here.

Layouts and numbers follow the official code (alvinliu0/HA2G at 5e1fd33, see shared/spec/ha2g.md):
TED Gesture has 10 joints / 9 bones / 3 hierarchy levels, TED Expressive 43 joints / 42 bones (fingers) / 6 levels.
Coordinates are those of the data sets, and the two differ (checked on the official mean vectors and the real clips):
TED Expressive has x = the person's left, y = down, z = backwards; TED Gesture has x = the person's right, y = down,
z = forwards. Both are right-handed. `to_body_frame` rotates either into the ROS body convention (REP 103:
x forward, y left, z up), which is what robot-facing code should use. See docs/skeleton.md for a picture.

Every function accepts numpy arrays or torch tensors with any leading batch/time dimensions and returns the same type.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from importlib import resources

import numpy as np

FPS = 15  # every HA2G sequence is at 15 frames per second


@dataclass(frozen=True)
class Skeleton:
    """A kinematic tree of joints with fixed bone lengths, and the HA2G level hierarchy over its bones.

    `levels[k]` lists the bone (direction vector) indices predicted by hierarchy level k+1, in ascending order; each
    level contains the previous one and the last contains every bone.
    """

    name: str
    joint_names: tuple[str, ...]
    bones: tuple[tuple[int, int], ...]  # (parent joint, child joint), in direction-vector order
    bone_lengths: tuple[float, ...]  # metres-like units of the official code (shoulder width ~0.44)
    levels: tuple[tuple[int, ...], ...]
    mean_dir_vec: tuple[float, ...]  # (n_bones * 3,) subtracted from unit vectors to normalise
    body_from_data: tuple[tuple[float, ...], ...]  # 3x3 rotation: data-set frame -> body frame (x fwd, y left, z up)

    @property
    def n_joints(self) -> int:
        return len(self.joint_names)

    @property
    def n_bones(self) -> int:
        return len(self.bones)

    @property
    def pose_dim(self) -> int:
        """Size of one frame of normalised direction vectors, the model's output width."""
        return 3 * self.n_bones

    @property
    def level_dims(self) -> tuple[int, ...]:
        return tuple(3 * len(level) for level in self.levels)

    @property
    def level_channels(self) -> tuple[tuple[int, ...], ...]:
        """Per level, the positions of its bones' 3 values in a pose_dim vector: level k's part of a full pose."""
        return tuple(tuple(3 * b + c for b in level for c in range(3)) for level in self.levels)

    def bone_index(self, parent: str, child: str) -> int:
        """Index of the bone from joint `parent` to joint `child` (by name)."""
        pair = (self.joint_names.index(parent), self.joint_names.index(child))
        try:
            return self.bones.index(pair)
        except ValueError:
            raise KeyError(f"skeleton {self.name!r} has no bone {parent} -> {child}") from None

    def mean_directions(self) -> np.ndarray:
        """(n_bones, 3) mean direction vectors (not unit length: they are averages of unit vectors)."""
        return np.asarray(self.mean_dir_vec, dtype=np.float32).reshape(self.n_bones, 3)

    def rest_directions(self) -> np.ndarray:
        """(n_bones, 3) unit direction vectors of the mean pose: a neutral rest pose in this skeleton's frame."""
        mean = self.mean_directions()
        return mean / np.linalg.norm(mean, axis=-1, keepdims=True)


def _statistics() -> dict:
    with resources.files("ha2g_model").joinpath("data/ted_statistics.json").open() as f:
        return json.load(f)


def _finger_chains(wrist: int, first_joint: int) -> list[tuple[int, int]]:
    """Bones of the five fingers (index, middle, pinky, ring, thumb), three phalanges each, from `wrist`."""
    bones = []
    for finger in range(5):
        base = first_joint + 3 * finger
        bones += [(wrist, base), (base, base + 1), (base + 1, base + 2)]
    return bones


FINGER_NAMES = ("index", "middle", "pinky", "ring", "thumb")
_FINGER_LENGTHS = (0.137, 0.044, 0.031, 0.144, 0.042, 0.033, 0.127, 0.027, 0.026, 0.134, 0.039, 0.033,
                   0.068, 0.042, 0.036)


def _hand_joint_names(side: str) -> list[str]:
    return [f"{side}_{finger}_{phalanx}" for finger in FINGER_NAMES for phalanx in (1, 2, 3)]


def _make_ted_gesture(stats: dict) -> Skeleton:
    bones = ((0, 1), (1, 2), (2, 3), (1, 4), (4, 5), (5, 6), (1, 7), (7, 8), (8, 9))
    return Skeleton(
        name="ted_gesture",
        joint_names=("spine", "neck", "nose", "head", "left_shoulder", "left_elbow", "left_wrist",
                     "right_shoulder", "right_elbow", "right_wrist"),
        bones=bones,
        bone_lengths=(0.26, 0.18, 0.14, 0.22, 0.36, 0.33, 0.22, 0.36, 0.33),
        levels=((0, 1, 2, 3, 6), (0, 1, 2, 3, 4, 6, 7), tuple(range(9))),
        mean_dir_vec=tuple(stats["mean_dir_vec"]),
        body_from_data=((0, 0, 1), (-1, 0, 0), (0, -1, 0)),  # x right, y down, z forward
    )


def _make_ted_expressive(stats: dict) -> Skeleton:
    # Joints: 0 spine, 1 neck, 2/3 L/R shoulder, 4/5 elbows, 6/7 wrists, 8-22 L fingers, 23-37 R fingers,
    # 38 nose, 39/40 R/L eye, 41/42 R/L ear.
    joint_names = (["spine", "neck", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
                    "left_wrist", "right_wrist"] + _hand_joint_names("left") + _hand_joint_names("right")
                   + ["nose", "right_eye", "left_eye", "right_ear", "left_ear"])
    bones = ([(0, 1), (1, 2), (1, 3), (2, 4), (4, 6)] + _finger_chains(6, 8)
             + [(3, 5), (5, 7)] + _finger_chains(7, 23)
             + [(1, 38), (38, 39), (38, 40), (39, 41), (40, 42)])
    lengths = ((0.26, 0.22, 0.22, 0.36, 0.33) + _FINGER_LENGTHS + (0.36, 0.33) + _FINGER_LENGTHS
               + (0.18, 0.14, 0.14, 0.15, 0.15))
    head = (37, 38, 39, 40, 41)
    first_phalanges = (5, 8, 11, 14, 17, 22, 25, 28, 31, 34)
    second_phalanges = tuple(i + 1 for i in first_phalanges)
    level1 = (0, 1, 2) + head
    level2 = tuple(sorted(level1 + (3, 20)))
    level3 = tuple(sorted(level2 + (4, 21)))
    level4 = tuple(sorted(level3 + first_phalanges))
    level5 = tuple(sorted(level4 + second_phalanges))
    return Skeleton(
        name="ted_expressive",
        joint_names=tuple(joint_names),
        bones=tuple(bones),
        bone_lengths=lengths,
        levels=(level1, level2, level3, level4, level5, tuple(range(42))),
        mean_dir_vec=tuple(stats["mean_dir_vec"]),
        body_from_data=((0, 0, -1), (1, 0, 0), (0, -1, 0)),  # x left, y down, z backward
    )


_STATS = _statistics()
TED_GESTURE = _make_ted_gesture(_STATS["ted_gesture"])
TED_EXPRESSIVE = _make_ted_expressive(_STATS["ted_expressive"])
SKELETONS = {s.name: s for s in (TED_GESTURE, TED_EXPRESSIVE)}


def get_skeleton(name: str) -> Skeleton:
    try:
        return SKELETONS[name]
    except KeyError:
        raise ValueError(f"unknown skeleton {name!r}; known: {sorted(SKELETONS)}") from None


def skeleton_statistics(name: str) -> dict:
    """Official statistics of a skeleton: mean pose, angle-prior pairs/mean/variance, BC normalisers."""
    get_skeleton(name)
    return _STATS[name]


def skeleton_for_pose_dim(pose_dim: int) -> Skeleton:
    for skeleton in SKELETONS.values():
        if skeleton.pose_dim == pose_dim:
            return skeleton
    raise ValueError(f"no skeleton has pose_dim {pose_dim}; known: "
                     + ", ".join(f"{s.name}={s.pose_dim}" for s in SKELETONS.values()))


# --- array helpers: one implementation for numpy and torch ----------------------------------------------------------

def _torch():
    """The torch module if something already imported it, else None.

    The skeleton never imports torch itself: the retargeting (numpy only) imports this module, and importing torch
    costs seconds. A tensor can only exist once torch is imported, so the check below is exact.
    """
    return sys.modules.get("torch")


def _is_torch(x) -> bool:
    torch = _torch()
    return torch is not None and isinstance(x, torch.Tensor)


def _check_finite(x, what: str) -> None:
    finite = bool(_torch().isfinite(x).all()) if _is_torch(x) else bool(np.isfinite(x).all())
    if not finite:
        raise ValueError(f"{what} contains NaN or Inf values")


def _norm(x):
    if _is_torch(x):
        return _torch().linalg.vector_norm(x, dim=-1, keepdim=True)
    return np.linalg.norm(x, axis=-1, keepdims=True)


def _like(values: np.ndarray, ref):
    if _is_torch(ref):
        return _torch().as_tensor(values, dtype=ref.dtype, device=ref.device)
    return values.astype(ref.dtype if np.issubdtype(ref.dtype, np.floating) else np.float32)


# Bones shorter than this (in the units of the input) have no direction: refuse rather than divide by ~0.
MIN_BONE_LENGTH = 1e-6


def positions_to_directions(positions, skeleton: Skeleton):
    """Joint positions (..., n_joints, 3) -> unit bone direction vectors (..., n_bones, 3)."""
    if positions.shape[-2:] != (skeleton.n_joints, 3):
        raise ValueError(f"{skeleton.name} positions must have shape (..., {skeleton.n_joints}, 3), "
                         f"got {tuple(positions.shape)}")
    _check_finite(positions, "joint positions")
    parents = [p for p, _ in skeleton.bones]
    children = [c for _, c in skeleton.bones]
    vectors = positions[..., children, :] - positions[..., parents, :]
    lengths = _norm(vectors)
    short = lengths[..., 0] < MIN_BONE_LENGTH
    if bool(short.any()):
        bone = int(np.argwhere(np.asarray(short.cpu() if _is_torch(short) else short))[0][-1])
        p, c = skeleton.bones[bone]
        raise ValueError(f"zero-length bone {bone} ({skeleton.joint_names[p]} -> {skeleton.joint_names[c]}): "
                         "its direction is undefined")
    return vectors / lengths


def directions_to_positions(directions, skeleton: Skeleton, bone_lengths=None):
    """Bone directions (..., n_bones, 3) -> joint positions (..., n_joints, 3), joint 0 (spine) at the origin.

    Directions are re-normalised to unit length first, so denormalised network outputs can be passed directly.
    `bone_lengths` defaults to the skeleton's.
    """
    _check_bone_shape(directions, skeleton, "directions")
    _check_finite(directions, "direction vectors")
    lengths = np.asarray(skeleton.bone_lengths if bone_lengths is None else bone_lengths, dtype=np.float64)
    if lengths.shape != (skeleton.n_bones,):
        raise ValueError(f"bone_lengths must have {skeleton.n_bones} values, got shape {lengths.shape}")
    norms = _norm(directions)
    if bool((norms < MIN_BONE_LENGTH).any()):
        raise ValueError("a direction vector has (near) zero length: cannot reconstruct positions")
    bones = directions / norms * _like(lengths[:, None], directions)
    joints = [None] * skeleton.n_joints
    joints[0] = bones[..., 0, :] * 0
    for i, (parent, child) in enumerate(skeleton.bones):  # bones are listed parent-before-child
        joints[child] = joints[parent] + bones[..., i, :]
    return _torch().stack(joints, dim=-2) if _is_torch(directions) else np.stack(joints, axis=-2)


def normalize_directions(directions, skeleton: Skeleton):
    """Unit directions (..., n_bones, 3) -> model space (..., pose_dim): flattened, mean direction subtracted."""
    _check_bone_shape(directions, skeleton, "directions")
    _check_finite(directions, "direction vectors")
    flat = directions.reshape(*directions.shape[:-2], skeleton.pose_dim)
    return flat - _like(np.asarray(skeleton.mean_dir_vec, dtype=np.float32), flat)


def denormalize_directions(vectors, skeleton: Skeleton, unit: bool = True):
    """Model space (..., pose_dim) -> directions (..., n_bones, 3), mean added back (re-normalised if `unit`)."""
    if vectors.shape[-1] != skeleton.pose_dim:
        raise ValueError(f"{skeleton.name} vectors must have {skeleton.pose_dim} values in the last dimension, "
                         f"got shape {tuple(vectors.shape)}")
    _check_finite(vectors, "direction vectors")
    flat = vectors + _like(np.asarray(skeleton.mean_dir_vec, dtype=np.float32), vectors)
    directions = flat.reshape(*vectors.shape[:-1], skeleton.n_bones, 3)
    if unit:
        directions = directions / (_norm(directions) + 1e-8)
    return directions


def to_body_frame(vectors, skeleton: Skeleton):
    """Vectors (..., 3) in the skeleton's data-set frame -> the body frame (x forward, y left, z up, REP 103)."""
    if vectors.shape[-1] != 3:
        raise ValueError(f"vectors must have 3 values in the last dimension, got shape {tuple(vectors.shape)}")
    rotation = np.asarray(skeleton.body_from_data, dtype=np.float32)
    return vectors @ _like(rotation.T, vectors)


def mirrored_bones(skeleton: Skeleton) -> tuple[int, ...]:
    """For each bone, the bone that is its left-right mirror image (itself for bones on the midline)."""
    def other_side(name: str) -> str:
        for a, b in (("left_", "right_"), ("right_", "left_")):
            if name.startswith(a):
                return b + name[len(a):]
        return name
    joint = {name: i for i, name in enumerate(skeleton.joint_names)}
    mirror = [joint[other_side(name)] for name in skeleton.joint_names]
    return tuple(skeleton.bones.index((mirror[p], mirror[c])) for p, c in skeleton.bones)


def lateral_axis(skeleton: Skeleton) -> int:
    """The data-set axis that points to the person's left or right (x on both skeletons, with opposite signs)."""
    left_in_data = np.asarray(skeleton.body_from_data, dtype=np.float64)[1]  # the body frame's y row: left
    return int(np.argmax(np.abs(left_in_data)))


def mirror_directions(directions, skeleton: Skeleton):
    """Unit directions (..., n_bones, 3) -> the person's left-right mirror image: every bone takes the direction of
    its mirror bone with the lateral coordinate negated (the left wrist goes where the right one was, reflected
    through the midline). A reflection: bone lengths and every distance between joints are kept, and
    mirroring twice gives the input back."""
    _check_bone_shape(directions, skeleton, "directions")
    flip = np.ones(3, dtype=np.float32)
    flip[lateral_axis(skeleton)] = -1.0
    return directions[..., list(mirrored_bones(skeleton)), :] * _like(flip, directions)


ARM_CHAIN_JOINTS = ("neck", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist",
                    "right_wrist")


def posture_bones(skeleton: Skeleton) -> tuple[int, ...]:
    """The bones that place the arms (trunk, shoulders, upper arms, forearms: those ending at an ARM_CHAIN_JOINTS
    joint): what a speaker's average posture is made of."""
    chain = {skeleton.joint_names.index(name) for name in ARM_CHAIN_JOINTS if name in skeleton.joint_names}
    return tuple(b for b, (_, child) in enumerate(skeleton.bones) if child in chain)


def offset_posture(directions: np.ndarray, offsets: np.ndarray, skeleton: Skeleton) -> np.ndarray:
    """Unit directions (T, n_bones, 3) moved to another average posture: `offsets` ((n_bones, 3), or (T, n_bones, 3)
    to vary it per frame) added to the posture_bones (re-normalised; other bones' offsets are ignored), and each
    hand turned with its forearm (the rotation that takes the old forearm direction to the new one), so that the
    fingers keep their pose relative to it. A NumPy float32 array out."""
    _check_bone_shape(directions, skeleton, "directions")
    offsets = np.broadcast_to(np.asarray(offsets, np.float32), directions.shape)
    out = np.array(directions, dtype=np.float32)
    arm = list(posture_bones(skeleton))
    moved = out[:, arm] + offsets[:, arm]
    out[:, arm] = moved / (np.linalg.norm(moved, axis=-1, keepdims=True) + 1e-8)
    for side in ("left", "right"):
        if f"{side}_wrist" not in skeleton.joint_names or f"{side}_index_1" not in skeleton.joint_names:
            continue
        forearm = skeleton.bone_index(f"{side}_elbow", f"{side}_wrist")
        hand = [b for b, (_, child) in enumerate(skeleton.bones)
                if skeleton.joint_names[child].startswith(f"{side}_")
                and skeleton.joint_names[child].split("_")[1] in FINGER_NAMES]
        a, b = directions[:, forearm], out[:, forearm]  # (T, 3) unit, before and after
        axis, cos = np.cross(a, b), np.sum(a * b, axis=-1)
        v = axis[:, None, :]
        h = out[:, hand]
        # Rodrigues with an unnormalised axis: R h = h + v x h + v x (v x h) / (1 + cos)
        out[:, hand] = h + np.cross(v, h) + np.cross(v, np.cross(v, h)) / np.maximum(1 + cos, 1e-6)[:, None, None]
    return out


def resample_frames(frames, src_fps: float, dst_fps: float = FPS):
    """Resample a sequence (T, ...) from `src_fps` to `dst_fps` by linear interpolation in time.

    For direction vectors, re-normalise afterwards if unit length matters (interpolation shortens them slightly).
    """
    if src_fps <= 0 or dst_fps <= 0:
        raise ValueError(f"frame rates must be positive, got src_fps={src_fps}, dst_fps={dst_fps}")
    n_src = frames.shape[0]
    if n_src == 0:
        raise ValueError("cannot resample an empty sequence")
    _check_finite(frames, "frames")
    duration = (n_src - 1) / src_fps
    n_dst = int(np.floor(duration * dst_fps + 1e-9)) + 1
    t = np.arange(n_dst) / dst_fps * src_fps  # fractional source index of each output frame
    lo = np.clip(np.floor(t).astype(np.int64), 0, n_src - 1)
    hi = np.clip(lo + 1, 0, n_src - 1)
    w = (t - lo).astype(np.float32).reshape((-1,) + (1,) * (frames.ndim - 1))
    if _is_torch(frames):
        torch = _torch()
        w_t = torch.as_tensor(w, dtype=frames.dtype, device=frames.device)
        return frames[torch.as_tensor(lo)] * (1 - w_t) + frames[torch.as_tensor(hi)] * w_t
    return (frames[lo] * (1 - w) + frames[hi] * w).astype(frames.dtype)


def _check_bone_shape(x, skeleton: Skeleton, what: str) -> None:
    if x.shape[-2:] != (skeleton.n_bones, 3):
        raise ValueError(f"{skeleton.name} {what} must have shape (..., {skeleton.n_bones}, 3), "
                         f"got {tuple(x.shape)}")
