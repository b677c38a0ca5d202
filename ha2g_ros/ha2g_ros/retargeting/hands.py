"""Finger curl -> hand joints: joint by joint for multi-finger hands, from overall closure for one-DoF hands.

A human finger's flexion is read from its three phalanx directions: the angle at the knuckle (metacarpal vs proximal
phalanx) and at the middle joint (proximal vs middle phalanx). `curl_range_deg` maps their sum onto 0 (open) .. 1
(closed); single joints use half the range. The TED poses are estimated from video, so fingers are noisy: the
velocity limits applied after this mapping smooth them.
"""
from __future__ import annotations

import numpy as np

from ha2g_ros.retargeting.profile import FINGERS, HandJoint


def finger_flexion(unit: np.ndarray, valid: np.ndarray, finger_bones: np.ndarray) -> np.ndarray | None:
    """(5, 2) flexion angles in degrees (knuckle, middle joint) per finger; None when a phalanx is missing."""
    if not valid[finger_bones].all():
        return None
    phalanges = unit[finger_bones]  # (5, 3, 3): finger, phalanx, xyz
    cosines = np.einsum("fkx,fkx->fk", phalanges[:, :-1], phalanges[:, 1:])
    return np.degrees(np.arccos(np.minimum(np.maximum(cosines, -1.0), 1.0)))


class HandMapper:
    """The joints of one hand as a linear map of curls: q = open + curl * (closed - open)."""

    def __init__(self, joints: tuple[HandJoint, ...], curl_range_deg: tuple[float, float]):
        self.open = np.array([j.open for j in joints])
        self.closed = np.array([j.closed for j in joints])
        self.lo, self.hi = curl_range_deg
        # Each joint reads one entry of [closure, finger curls (5), knuckle curls (5), middle-joint curls (5)].
        self.source_index = np.array([self._source_index(j.source) for j in joints], dtype=np.int64)

    @staticmethod
    def _source_index(source: str) -> int:
        if source == "closure":
            return 0
        finger, _, joint = source.partition(".")
        return 1 + FINGERS.index(finger) + 5 * (int(joint) if joint else 0)

    def curls(self, flexion: np.ndarray) -> np.ndarray:
        """(16,) curls in [0, 1]: closure, then per finger the whole finger, its knuckle, its middle joint."""
        span = self.hi - self.lo
        finger = np.minimum(np.maximum((flexion.sum(axis=1) - self.lo) / span, 0.0), 1.0)
        joints = np.minimum(np.maximum((flexion - self.lo / 2) / (span / 2), 0.0), 1.0)  # (5, 2)
        return np.concatenate([[finger.mean()], finger, joints[:, 0], joints[:, 1]])

    def positions(self, flexion: np.ndarray) -> np.ndarray:
        curl = self.curls(flexion)[self.source_index]
        return self.open + curl * (self.closed - self.open)
