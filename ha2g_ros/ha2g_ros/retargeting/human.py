"""The human side: which bones of a HA2G skeleton retargeting reads, and the speaker's torso frame.

Bone directions come in the frame of the data set: TED Expressive has x = the person's left, y = down, z = backwards;
TED Gesture's mean pose (ted_statistics.json) has x = the person's right, y = down, z = forwards (its left shoulder
sits at -x, its forearms point to +z). Robots only care about arm motion relative to the body, so every direction is
re-expressed in the speaker's own torso frame, built from the spine and the two clavicles, with the axes robots use:
x forward, y left, z up. That handles both data frames, and a speaker who turns or leans does not turn the robot.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from ha2g_model.skeleton import SKELETONS, Skeleton
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
    rest_torso: np.ndarray  # (3, 3) torso_rotation of the skeleton's mean pose: the fallback while none is seen


def bone_map(skeleton: Skeleton) -> BoneMap:
    b = skeleton.bone_index
    fingers = None
    if f"left_{FINGERS[0]}_1" in skeleton.joint_names:
        fingers = {side: np.array([[b(f"{side}_wrist", f"{side}_{finger}_1"),
                                    b(f"{side}_{finger}_1", f"{side}_{finger}_2"),
                                    b(f"{side}_{finger}_2", f"{side}_{finger}_3")] for finger in FINGERS])
                   for side in SIDES}
    spine, clavicle = b("spine", "neck"), {side: b("neck", f"{side}_shoulder") for side in SIDES}
    rest = skeleton.rest_directions().astype(np.float64)
    return BoneMap(skeleton=skeleton, spine=spine, clavicle=clavicle,
                   upper_arm={side: b(f"{side}_shoulder", f"{side}_elbow") for side in SIDES},
                   forearm={side: b(f"{side}_elbow", f"{side}_wrist") for side in SIDES},
                   fingers=fingers,
                   rest_torso=_torso_axes(rest[spine], rest[clavicle["left"]], rest[clavicle["right"]]))


def bone_map_for(directions: np.ndarray) -> BoneMap:
    """The bone map of the skeleton whose shape `directions` (n_bones, 3) has; a clear error for any other shape."""
    return _bone_map_of_shape(directions.shape)


@functools.lru_cache(maxsize=None)  # one map per skeleton, built on first use: callers look it up every frame
def _bone_map_of_shape(shape: tuple[int, ...]) -> BoneMap:
    for skeleton in SKELETONS.values():
        if shape == (skeleton.n_bones, 3):
            return bone_map(skeleton)
    raise ValueError("directions must have shape (n_bones, 3): "
                     + " or ".join(f"({s.n_bones}, 3) for {s.name}" for s in SKELETONS.values())
                     + f"; got {shape}")


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
    return _torso_axes(unit[bones.spine], unit[bones.clavicle["left"]], unit[bones.clavicle["right"]])


def _torso_axes(spine: np.ndarray, left_clavicle: np.ndarray, right_clavicle: np.ndarray) -> np.ndarray | None:
    up = spine
    left = left_clavicle - right_clavicle
    left = left - left.dot(up) * up
    norm = np.linalg.norm(left)
    if norm < MIN_NORM:  # shoulders along the spine: a degenerate pose estimate
        return None
    left = left / norm
    forward = np.array([left[1] * up[2] - left[2] * up[1], left[2] * up[0] - left[0] * up[2],
                        left[0] * up[1] - left[1] * up[0]])  # left x up, without np.cross's overhead
    return np.array([forward, left, up])


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
    return np.array([forward, side / norm])
