"""Retargeter: human bone directions in, robot joint angles out, one frame at a time, limits guaranteed.

Per frame:
1. the human bones are re-expressed in the speaker's torso frame (human.py) and then in the robot's world frame
   through the robot's torso frame, so "forward, left, up" of the speaker become those of the robot;
2. amplitude rotates each target direction away from (or back toward) the robot's rest-pose direction;
3. the arm joints follow by damped least squares inside the position and velocity limits (solver.py), warm-started
   from the previous frame; the hand joints follow the finger curls (hands.py);
4. rest_blend mixes the answer with the rest pose, and a last clip to the limits makes them hold whatever happens;
5. the self-collision filter (profile `collision`) moves that answer as little as possible, inside the same position
   and velocity box, so that the declared body parts stay `margin` apart (collision.py): a QP on distances
   linearised at the last published pose, re-checked at its answer. The projection of the target onto the
   (locally convex) safe set is continuous, so nothing jumps when a constraint becomes active.

Missing data (NaN or zero-length bones, or a TED Gesture skeleton without fingers) does not stop it: the affected
targets hold their last value (the start pose of reset() until data arrives).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pinocchio as pin

from ha2g_ros.retargeting.collision import SelfCollision
from ha2g_ros.retargeting.hands import HandMapper, finger_flexion
from ha2g_ros.retargeting.human import BoneMap, bone_map_for, hand_axes, torso_rotation, unit_bones
from ha2g_ros.retargeting.profile import (RobotProfile, SIDES, validate_against_model, validate_amplitude,
                                          validate_margin, validate_rest_blend)
from ha2g_ros.retargeting.robot import RobotLoadError, frame_id, load_model, reduced_model, resolve_urdf
from ha2g_ros.retargeting.solver import AxisTerm, DirectionIK, SegmentTerm, solve_qp

# Budgets are shrunk by this relative margin so that |q - q_prev| <= v * dt holds exactly in floating point too.
_VELOCITY_MARGIN = 1e-9
_MARGIN_PASSES = 4  # linearise, solve, re-check at the answer (the distances are not linear in the joints)
_MARGIN_TOLERANCE = 1e-4  # metres: a re-check this close to the margin is accepted
_MARGIN_BUFFER = 2e-3  # metres the QP aims beyond the margin, for the curvature its linearisation misses


@dataclass(frozen=True)
class JointCommand:
    """Positions (and velocities) for the joints of one controller group, in the group's joint order."""

    group: str
    joint_names: tuple[str, ...]
    positions: np.ndarray
    velocities: np.ndarray


@dataclass(frozen=True)
class Term:
    """What one IK target means: the `kind` of direction ('upper_arm', 'forearm', 'hand_forward', 'hand_side')."""

    side: str
    kind: str


class Retargeter:
    """Joint angles for `profile`'s robot from HA2G direction vectors (TED Expressive (42, 3) or TED Gesture (9, 3))."""

    def __init__(self, profile: RobotProfile, urdf_xml: str | None = None):
        full = load_model(profile.urdf, xml=urdf_xml)
        validate_against_model(profile, full)
        self.profile = profile
        self.full_model = full  # every joint, for drawing the whole robot
        self.model = reduced_model(full, list(profile.joint_names))
        self.joint_names = list(profile.joint_names)
        self.groups = {group: list(joints) for group, joints in profile.groups.items()}
        # After locking every other joint all joints are 1-DoF, so configuration and velocity indices coincide.
        self._qi = np.array([self.model.joints[self.model.getJointId(n)].idx_q for n in self.joint_names])
        self.lower = self.model.lowerPositionLimit[self._qi].copy()
        self.upper = self.model.upperPositionLimit[self._qi].copy()
        self.velocity_limits = self.model.velocityLimit[self._qi].copy()
        self.speed_scale = np.array([profile.speed_scale_of(n) for n in self.joint_names])
        self._rest = np.clip([profile.rest.get(n, 0.0) for n in self.joint_names], self.lower, self.upper)
        self._n_arm = len(profile.arm_joints)
        self._identity = np.eye(len(self.joint_names))  # the margin's QP: the nearest joint vector

        torso = frame_id(self.model, profile.torso, "torso")
        if self.model.frames[torso].parentJoint != 0:
            raise RobotLoadError(f"torso frame {profile.torso!r} moves with a commanded joint "
                                 f"({self.model.names[self.model.frames[torso].parentJoint]!r}); pick a frame above "
                                 "the arms (the chest or torso link)")
        self._world_R_torso = self._torso_rotation(torso)
        self._ik, self.terms = self._build_ik()
        self._rest_dirs = self._ik.directions(self._to_model(self._rest))
        self._check_sides(torso)
        self._arm_term = np.array([t.kind in ("upper_arm", "forearm") for t in self.terms])
        self._weights_full = np.where(self._arm_term, 1.0, profile.solver.hand_weight)
        self._weights_no_hands = np.where(self._arm_term, 1.0, 0.0)  # skeletons without fingers: the wrist rests
        self._hand_mappers = {side: HandMapper(joints, profile.solver.curl_range_deg)
                              for side, joints in profile.hands.items() if joints}
        offset = self._n_arm
        self._hand_slices = {}
        for side in SIDES:
            n = len(profile.hands.get(side, ()))
            if n:
                self._hand_slices[side] = slice(offset, offset + n)
            offset += n
        self.collision = None
        if profile.collision is not None:
            path = None if urdf_xml is not None else str(resolve_urdf(profile.urdf))
            self.collision = SelfCollision(profile.collision, self.model, path, urdf_xml, profile.origin)
        self.margin = profile.collision.margin if profile.collision is not None else 0.0
        self.amplitude = profile.solver.amplitude
        self.rest_blend = profile.solver.rest_blend
        self.reset()

    # --- construction helpers -----------------------------------------------------------------------------------

    def _build_ik(self) -> tuple[DirectionIK, list[Term]]:
        m, terms, meanings = self.model, [], []
        for side, arm in self.profile.arms.items():
            shoulder, elbow, wrist = (frame_id(m, getattr(arm, r), f"arms.{side}.{r}")
                                      for r in ("shoulder", "elbow", "wrist"))
            terms += [SegmentTerm(shoulder, elbow), SegmentTerm(elbow, wrist)]
            meanings += [Term(side, "upper_arm"), Term(side, "forearm")]
            if arm.hand is not None:
                hand = frame_id(m, arm.hand.frame, f"arms.{side}.hand.frame")
                if arm.hand.forward is not None:
                    terms.append(AxisTerm(hand, np.array(arm.hand.forward)))
                    meanings.append(Term(side, "hand_forward"))
                terms.append(AxisTerm(hand, np.array(arm.hand.thumb_side)))
                meanings.append(Term(side, "hand_side"))
        columns = self._qi[:self._n_arm]
        solver = self.profile.solver
        front = self._world_R_torso[:, 0]  # the torso's x axis, in the world frame
        return DirectionIK(m, terms, columns, solver.damping, solver.posture_weight, front), meanings

    def _check_sides(self, torso: int) -> None:
        """A mirrored profile (left arm on the robot's right) or a torso frame whose y axis does not point left."""
        if len(self.profile.arms) < 2:
            return
        data = self.model.createData()
        pin.framesForwardKinematics(self.model, data, self._to_model(self._rest))
        torso_inv = data.oMf[torso].inverse()
        y = {side: (torso_inv * data.oMf[self.model.getFrameId(arm.shoulder)]).translation[1]
             for side, arm in self.profile.arms.items()}
        if y["left"] <= y["right"]:
            left = self.profile.arms["left"].shoulder
            raise RobotLoadError(f"profile {self.profile.origin}: the left shoulder ({left}, y = {y['left']:+.3f} m) "
                                 f"is not left of the right one (y = {y['right']:+.3f} m) in torso frame "
                                 f"{self.profile.torso!r}: are the sides swapped, or does that frame's y axis not "
                                 "point to the robot's left?")

    def _torso_rotation(self, torso: int) -> np.ndarray:
        data = self.model.createData()
        pin.framesForwardKinematics(self.model, data, pin.neutral(self.model))
        return data.oMf[torso].rotation.copy()  # constant: no commanded joint moves the torso

    def _to_model(self, q: np.ndarray) -> np.ndarray:
        q_model = np.empty(self.model.nq)
        q_model[self._qi] = q
        return q_model

    # --- run-time parameters ------------------------------------------------------------------------------------

    @property
    def amplitude(self) -> float:
        return self._amplitude

    @amplitude.setter
    def amplitude(self, value: float) -> None:
        self._amplitude = validate_amplitude(value)

    @property
    def margin(self) -> float:
        """Metres kept between the declared body parts (profile `collision.margin`; settable at run time)."""
        return self._margin

    @margin.setter
    def margin(self, value: float) -> None:
        value = validate_margin(value)
        if self.collision is None:
            if value > 0:
                raise ValueError(f"profile {self.profile.origin} declares no collision parts: no margin can be kept")
        else:
            close = {parts: d for parts, d in self.collision.part_distances(self._to_model(self._rest)).items()
                     if d < value}
            if close:
                raise RobotLoadError(f"profile {self.profile.origin}: the rest pose already violates the collision "
                                     f"margin of {value} m: " + ", ".join(f"{a}-{b} {d:.3f} m apart"
                                                                         for (a, b), d in close.items())
                                     + "; lower the margin, move the rest pose or shrink those shapes")
        self._margin = value

    @property
    def rest_blend(self) -> float:
        return self._rest_blend

    @rest_blend.setter
    def rest_blend(self, value: float) -> None:
        self._rest_blend = validate_rest_blend(value)

    # --- state ----------------------------------------------------------------------------------------------------

    def rest_pose(self) -> np.ndarray:
        return self._rest.copy()

    def reset(self, q: np.ndarray | None = None) -> None:
        """Start from `q` (e.g. the robot's joint_states, aligned with joint_names; clipped into the limits) or rest."""
        if q is None:
            q = self._rest
        q = np.asarray(q, dtype=np.float64)
        if q.shape != (len(self.joint_names),) or not np.isfinite(q).all():
            raise ValueError(f"reset needs {len(self.joint_names)} finite joint positions aligned with joint_names, "
                             f"got shape {q.shape}")
        self._q_out = np.clip(q, self.lower, self.upper)
        self._q_ik = self._q_out.copy()
        self.velocity = np.zeros(len(self.joint_names))  # of the last solve (rad/s), for JointCommand
        self.margin_correction = np.zeros(len(self.joint_names))  # what the collision filter changed last frame
        if self.collision is not None:
            self.collision.forget()
        # Targets are held while their data is missing: until the first valid frame, the start pose is held.
        self._targets_body = self.link_directions(self._q_out)  # in the robot's torso frame
        self._hand_targets = self._q_out.copy()
        self._torso = None  # the speaker's last seen torso frame; the skeleton's mean pose until one is seen

    # --- solving --------------------------------------------------------------------------------------------------

    def solve(self, directions: np.ndarray, dt: float = 1 / 15) -> np.ndarray:
        """Joint positions (aligned with joint_names) for one frame of bone directions in the data set's frame.

        Within the position limits, and |q - q_prev| <= velocity_limits * speed_scale * dt for every joint.
        """
        if not (np.isfinite(dt) and dt > 0):
            raise ValueError(f"dt must be a positive number of seconds, got {dt}")
        directions = np.asarray(directions)
        bones = bone_map_for(directions)
        unit, valid = unit_bones(directions)
        torso = torso_rotation(unit, valid, bones)
        if torso is not None:
            self._torso = torso
        elif self._torso is None:
            self._torso = bones.rest_torso
        human = self._human_targets(unit, valid, bones)
        found = ~np.isnan(human[:, 0])
        # Hand targets come from noisy finger estimates: a first-order low-pass keeps the wrists from chattering.
        tau = self.profile.solver.hand_smoothing_s
        smooth = 1.0 - np.exp(-dt / tau) if tau > 0 else 1.0
        gain = np.where(self._arm_term[found], 1.0, smooth)[:, None]
        moved = self._targets_body[found] + gain * (human[found] @ self._torso.T - self._targets_body[found])
        self._targets_body[found] = moved / np.linalg.norm(moved, axis=1, keepdims=True)
        weights = self._weights_full if bones.fingers is not None else self._weights_no_hands
        targets = _rotate_toward(self._rest_dirs, self._targets_body @ self._world_R_torso.T, self._amplitude)

        step = self.velocity_limits * self.speed_scale * dt * (1 - _VELOCITY_MARGIN)
        arm = slice(0, self._n_arm)
        q_ik = self._q_ik.copy()
        lo = np.maximum(self.lower[arm], q_ik[arm] - step[arm])
        hi = np.minimum(self.upper[arm], q_ik[arm] + step[arm])
        q_model = self._ik.solve(self._to_model(q_ik), targets, weights, self._rest[arm], lo, hi,
                                 self.profile.solver.iterations)
        q_ik[arm] = q_model[self._qi[arm]]
        if bones.fingers is not None:
            for side, mapper in self._hand_mappers.items():
                flexion = finger_flexion(unit, valid, bones.fingers[side])
                if flexion is not None:
                    held = self._hand_targets[self._hand_slices[side]]
                    self._hand_targets[self._hand_slices[side]] = held + smooth * (mapper.positions(flexion) - held)
        for s in self._hand_slices.values():
            q_ik[s] = self._hand_targets[s]
        self._q_ik = np.minimum(np.maximum(q_ik, self.lower), self.upper)

        q = self._q_ik + self._rest_blend * (self._rest - self._q_ik)
        lo, hi = np.maximum(self.lower, self._q_out - step), np.minimum(self.upper, self._q_out + step)
        q = np.minimum(np.maximum(q, lo), hi)
        kept = self.keep_margin(self._q_out, q, lo, hi)
        self.margin_correction = kept - q
        q = kept
        self.velocity = (q - self._q_out) / dt
        self._q_out = q
        return q.copy()

    def keep_margin(self, prev: np.ndarray, q: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """The joint vector in [lo, hi] closest to q whose declared pairs stay `margin` apart (never closer than they
        are at `prev`, the pose the step starts from). Minimises |x - q|^2 under d(x) >= margin, with d linearised at
        `prev` for the pairs the step could bring that close; when the answer's true distances miss the margin, the
        constraints linearised there are added too. Holding still at `prev`, which always keeps the margin, is the
        answer if no pass verifies. The solver applies it to every frame; the gesture node's planner to every
        planned point, inside the box its acceleration limits allow (safe_motion.SafeMotion.step)."""
        if self.collision is None or self._margin <= 0:
            return q
        columns = self._qi
        within = self._margin + _MARGIN_BUFFER
        step = q - prev
        d, J, pairs = self.collision.linearise(self._to_model(prev), columns, within, step=step)
        if not len(d):
            return q  # no pair can come within the margin over this step (a bound, not an estimate)
        floors = {p: min(self._margin, dist) for p, dist in zip(pairs.tolist(), d.tolist())}
        rows, bounds = [], []
        x = at = prev
        for k in range(_MARGIN_PASSES):
            target = np.array([floors.get(p, self._margin) for p in pairs.tolist()])
            rows.append(J)
            bounds.append(target + _MARGIN_BUFFER - d + J @ (at - prev))  # d + J (x - at) >= target, in x - prev
            A, b = np.concatenate(rows), np.concatenate(bounds)
            if k == 0 and (A @ step >= b).all():
                x = q  # the target already keeps the margin (to first order): checked below
            else:
                solved = solve_qp(self._identity, step, lo - prev, hi - prev, A, b)
                if solved is None:
                    break
                x = prev + solved
            x_model = self._to_model(x)
            d, pairs = self.collision.near(x_model, within)
            target = np.array([floors.get(p, self._margin) for p in pairs.tolist()])
            if (d >= target - _MARGIN_TOLERANCE).all():
                return x
            d, J, pairs = self.collision.linearise(x_model, columns, within)  # the same pairs, with Jacobians
            at = x
        return prev

    def keeps_margin(self, q: np.ndarray, floor: float | None = None) -> bool:
        """Whether the declared pairs are at least `floor` (default: the margin) apart at q."""
        if self.collision is None or self._margin <= 0:
            return True
        floor = self._margin if floor is None else floor
        return self.collision.closest_distance(self._to_model(q), floor) >= floor - _MARGIN_TOLERANCE

    def _human_targets(self, unit: np.ndarray, valid: np.ndarray, bones: BoneMap) -> np.ndarray:
        """(n_terms, 3) the human direction (TED frame) each term should follow; NaN rows where data is missing."""
        out = np.full((len(self.terms), 3), np.nan)
        hands = {}
        for k, term in enumerate(self.terms):
            if term.kind in ("upper_arm", "forearm"):
                bone = (bones.upper_arm if term.kind == "upper_arm" else bones.forearm)[term.side]
                if valid[bone]:
                    out[k] = unit[bone]
            elif bones.fingers is not None:
                if term.side not in hands:
                    hands[term.side] = hand_axes(unit, valid, bones.fingers[term.side])
                if hands[term.side] is not None:
                    out[k] = hands[term.side][0 if term.kind == "hand_forward" else 1]
        return out

    def solve_sequence(self, directions: np.ndarray, dt: float = 1 / 15) -> np.ndarray:
        """(T, n_bones, 3) -> (T, n_joints), continuing from the current state (call reset() first to restart)."""
        directions = np.asarray(directions)
        if directions.ndim != 3:
            raise ValueError(f"a sequence must have shape (T, n_bones, 3), got {directions.shape}")
        q = np.empty((len(directions), len(self.joint_names)))
        for t, frame in enumerate(directions):
            q[t] = self.solve(frame, dt)
        return q

    def commands(self, q: np.ndarray, velocities: np.ndarray | None = None) -> dict[str, JointCommand]:
        """Split a joint vector (aligned with joint_names) into one JointCommand per controller group."""
        velocities = self.velocity if velocities is None else velocities
        index = {name: i for i, name in enumerate(self.joint_names)}
        out = {}
        for group, joints in self.groups.items():
            idx = [index[j] for j in joints]
            out[group] = JointCommand(group, tuple(joints), np.asarray(q, dtype=np.float64)[idx],
                                      np.asarray(velocities, dtype=np.float64)[idx])
        return out

    # --- measurement ----------------------------------------------------------------------------------------------

    def part_distances(self, q: np.ndarray) -> dict[tuple[str, str], float]:
        """Smallest signed distance (m) between each declared pair of body parts at q (empty without collision)."""
        return {} if self.collision is None else self.collision.part_distances(self._to_model(q))

    def link_directions(self, q: np.ndarray) -> np.ndarray:
        """(n_terms, 3) the robot's directions for each term (see `terms`) at q, in the robot's torso frame."""
        return self._ik.directions(self._to_model(q)) @ self._world_R_torso

    def human_directions(self, directions: np.ndarray) -> np.ndarray:
        """(n_terms, 3) the human directions matching `terms`, in the speaker's torso frame (NaN where missing)."""
        directions = np.asarray(directions)
        bones = bone_map_for(directions)
        unit, valid = unit_bones(directions)
        torso = torso_rotation(unit, valid, bones)
        if torso is None:
            return np.full((len(self.terms), 3), np.nan)
        return self._human_targets(unit, valid, bones) @ torso.T


def _rotate_toward(start: np.ndarray, end: np.ndarray, fraction: float) -> np.ndarray:
    """Rotate unit vectors `start` toward `end` (n, 3) by `fraction` of the angle between them (>1 overshoots)."""
    if fraction == 1.0:
        return end
    cos = np.clip(np.einsum("nx,nx->n", start, end), -1.0, 1.0)
    angle = np.arccos(cos)
    axis = np.cross(start, end)
    norm = np.linalg.norm(axis, axis=1)
    # Opposite vectors: any axis perpendicular to start will do; identical vectors: nothing to rotate.
    fallback = np.cross(start, np.where(np.abs(start[:, :1]) < 0.9, [[1.0, 0, 0]], [[0, 1.0, 0]]))
    axis = np.where((norm < 1e-9)[:, None], fallback, axis)
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    turn = fraction * angle
    return start * np.cos(turn)[:, None] + np.cross(axis, start) * np.sin(turn)[:, None]
