"""The human side: which bones of a HA2G skeleton retargeting reads, and the speaker's torso frame.

Bone directions come in the TED frame (x = the person's left, y = down, z = backwards). Robots only care about arm
motion relative to the body, so every direction is re-expressed in the speaker's own torso frame, built from the spine
and the two clavicles, with the axes robots use: x forward, y left, z up. A speaker who turns or leans does not turn
the robot's arms.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ha2g_model.skeleton import Skeleton, skeleton_for_pose_dim
from ha2g_ros.retargeting.profile import FINGERS, SIDES

MIN_NORM = 1e-6  # a bone shorter than this (or non-finite) counts as missing


@dataclass(frozen=True)
class BoneMap:
    """Indices of the bones retargeting reads in one skeleton; `fingers` is None when it has no hands."""

    skeleton: Skeleton
    spine: int
    clavicle: dict[str, int]
    upper_arm: dict[str, int]
    forearm: dict[str, int]
    fingers: dict[str, np.ndarray] | None  # side -> (5, 3) phalanx bone indices, FINGERS order, wrist outward


def bone_map(skeleton: Skeleton) -> BoneMap:
    b = skeleton.bone_index
    fingers = None
    if f"left_{FINGERS[0]}_1" in skeleton.joint_names:
        fingers = {side: np.array([[b(f"{side}_wrist", f"{side}_{finger}_1"),
                                    b(f"{side}_{finger}_1", f"{side}_{finger}_2"),
                                    b(f"{side}_{finger}_2", f"{side}_{finger}_3")] for finger in FINGERS])
                   for side in SIDES}
    return BoneMap(skeleton=skeleton, spine=b("spine", "neck"),
                   clavicle={side: b("neck", f"{side}_shoulder") for side in SIDES},
                   upper_arm={side: b(f"{side}_shoulder", f"{side}_elbow") for side in SIDES},
                   forearm={side: b(f"{side}_elbow", f"{side}_wrist") for side in SIDES},
                   fingers=fingers)


def bone_map_for(directions: np.ndarray) -> BoneMap:
    """The bone map of the skeleton whose shape `directions` (n_bones, 3) has; a clear error for any other shape."""
    if directions.ndim != 2 or directions.shape[1] != 3:
        raise ValueError(f"directions must have shape (n_bones, 3), got {directions.shape}")
    return bone_map(skeleton_for_pose_dim(3 * directions.shape[0]))


def unit_bones(directions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(unit directions, valid mask): bones that are non-finite or (near) zero are marked invalid, not raised on."""
    d = np.asarray(directions, dtype=np.float64)
    norms = np.linalg.norm(d, axis=-1)
    valid = np.isfinite(norms) & (norms > MIN_NORM)
    unit = np.zeros_like(d)
    unit[valid] = d[valid] / norms[valid, None]
    return unit, valid


def torso_rotation(unit: np.ndarray, valid: np.ndarray, bones: BoneMap) -> np.ndarray | None:
    """Rows = the speaker's forward, left, up axes in the TED frame (3, 3); None when the torso bones are missing."""
    idx = [bones.spine, bones.clavicle["left"], bones.clavicle["right"]]
    if not valid[idx].all():
        return None
    up = unit[bones.spine]
    left = unit[bones.clavicle["left"]] - unit[bones.clavicle["right"]]
    left = left - left.dot(up) * up
    norm = np.linalg.norm(left)
    if norm < MIN_NORM:  # shoulders along the spine: degenerate pose estimate
        return None
    left /= norm
    return np.stack([np.cross(left, up), left, up])


# The TED frame's fixed relation to a body frame (x forward = -z, y left = +x, z up = -y): the torso frame of an
# upright speaker facing the camera, used until a frame with valid torso bones arrives.
TED_TO_BODY = np.array([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def hand_axes(unit: np.ndarray, valid: np.ndarray, finger_bones: np.ndarray) -> np.ndarray | None:
    """(2, 3): the hand's forward axis (wrist -> middle knuckle) and thumb-side axis (little -> index knuckle)."""
    index, middle, pinky = finger_bones[0, 0], finger_bones[1, 0], finger_bones[2, 0]
    if not valid[[index, middle, pinky]].all():
        return None
    forward = unit[middle]
    side = unit[index] - unit[pinky]
    side = side - side.dot(forward) * forward
    norm = np.linalg.norm(side)
    if norm < MIN_NORM:
        return None
    return np.stack([forward, side / norm])
