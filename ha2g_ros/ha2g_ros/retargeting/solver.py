"""Per-frame inverse kinematics on directions: a few damped least-squares steps inside a box of hard limits.

The unknowns are the arm joints. Each target is a unit direction in the robot's world frame that either a segment
(frame a -> frame b, e.g. shoulder -> elbow) or an axis fixed in a frame (the hand's forward axis) should point along.
One step minimises

    sum_k w_k^2 |e_k(q) - J_k dq|^2 + lambda |dq|^2 + posture |q + dq - q_rest|^2,   lo <= q + dq <= hi

where e_k is the tangent vector at the current direction d_k(q) that points to the target t_k, as long as the angle
between them (Gauss-Newton on the sphere), and lambda = damping^2 + |e|^2 / 2 grows with the error
(Levenberg-Marquardt style). The box [lo, hi] intersects the joint position limits with the velocity budget around
the previous frame's answer (|q - q_prev| <= v_max * dt); each step is that box-constrained QP solved exactly (DAQP, a
dual active-set solver: microseconds for a few joints). A heuristic active set used before missed the optimum when a
joint sat on its limit, and Pepper's shoulder then chattered at +-v_max from frame to frame with its elbow on the
limit. Starting from the previous frame's answer and never leaving the velocity box is what keeps the motion on one
IK branch (no elbow flips).
"""
from __future__ import annotations

from dataclasses import dataclass

import daqp
import numpy as np
import pinocchio as pin

from ha2g_ros.retargeting.robot import LEVI_CIVITA

_WORLD = pin.ReferenceFrame.LOCAL_WORLD_ALIGNED
_DETOUR_ANGLE = np.radians(120)  # targets further than this are approached through the robot's front


@dataclass(frozen=True)
class SegmentTerm:
    """Direction of the segment from frame `a` to frame `b` (frame ids of the solver's model)."""

    a: int
    b: int


@dataclass(frozen=True)
class AxisTerm:
    """Direction of `axis` (unit, in the local coordinates of `frame`)."""

    frame: int
    axis: np.ndarray


class DirectionIK:
    """Damped least-squares IK on direction targets for the joints at `columns` of `model` (all 1-DoF)."""

    def __init__(self, model: pin.Model, terms: list, columns: np.ndarray, damping: float, posture_weight: float,
                 front: np.ndarray):
        self.model = model
        self.data = model.createData()
        self.terms = terms
        self.columns = columns  # velocity (= configuration: 1-DoF joints only) indices of the unknowns
        self.frames = sorted({f for t in terms for f in ((t.a, t.b) if isinstance(t, SegmentTerm) else (t.frame,))})
        # Index arrays so that one linearisation handles all segments, then all axes, without a Python loop.
        slot = {f: i for i, f in enumerate(self.frames)}
        segments = [t for t in terms if isinstance(t, SegmentTerm)]
        axes = [t for t in terms if isinstance(t, AxisTerm)]
        self._seg_a = np.array([slot[t.a] for t in segments], dtype=np.int64)
        self._seg_b = np.array([slot[t.b] for t in segments], dtype=np.int64)
        self._axis_frame = np.array([slot[t.frame] for t in axes], dtype=np.int64)
        self._axis_local = np.array([t.axis for t in axes]).reshape(-1, 3)
        stacked = segments + axes  # _linearise's output order; _order puts it back into the order of `terms`
        self._order = np.array([next(i for i, s in enumerate(stacked) if s is t) for t in terms], dtype=np.int64)
        self.regulariser = damping ** 2 + posture_weight
        self._identity = np.eye(len(columns))
        self.posture_weight = posture_weight
        self.front = front  # world direction of the robot's front (detour for far targets, see _tangent_error)

    def directions(self, q_model: np.ndarray) -> np.ndarray:
        """(n_terms, 3) current directions of every term in the world frame (forward kinematics only)."""
        pin.framesForwardKinematics(self.model, self.data, q_model)
        return np.array([self._direction(t) for t in self.terms])

    def _direction(self, term) -> np.ndarray:
        if isinstance(term, SegmentTerm):
            d = self.data.oMf[term.b].translation - self.data.oMf[term.a].translation
            return d / np.linalg.norm(d)
        return self.data.oMf[term.frame].rotation @ term.axis

    def _linearise(self, q_model: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Stacked directions (n_terms, 3) and their Jacobians (n_terms, 3, n_columns) at q_model."""
        pin.computeJointJacobians(self.model, self.data, q_model)  # also runs forward kinematics
        jac, placed = [], []
        for f in self.frames:  # getFrameJacobian also places the frame (data.oMf), so only these frames are placed
            jac.append(pin.getFrameJacobian(self.model, self.data, f, _WORLD))
            placed.append(self.data.oMf[f].homogeneous)
        jac = np.array(jac)[:, :, self.columns]  # (n_frames, 6, n): linear rows 0-2, angular rows 3-5, world axes
        placed = np.array(placed)
        # Segments: u = d/|d| with d = p_b - p_a, so du = (dd - u (u . dd)) / |d|.
        d = placed[self._seg_b, :3, 3] - placed[self._seg_a, :3, 3]
        length = np.sqrt(np.einsum("ki,ki->k", d, d))[:, None]
        u = d / length
        dd = jac[self._seg_b, :3] - jac[self._seg_a, :3]
        seg_jac = (dd - u[:, :, None] * np.einsum("ki,kin->kn", u, dd)[:, None, :]) / length[:, :, None]
        # Axes: a = R a_local, so da = omega x a (the Levi-Civita symbol contracts omega's rows with a).
        a = np.einsum("kij,kj->ki", placed[self._axis_frame, :3, :3], self._axis_local)
        axis_jac = np.einsum("ijm,kjn,km->kin", LEVI_CIVITA, jac[self._axis_frame, 3:], a)
        return np.concatenate([u, a])[self._order], np.concatenate([seg_jac, axis_jac])[self._order]

    def step_problem(self, q_model: np.ndarray, targets: np.ndarray, weights: np.ndarray,
                     q_rest: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(H, g) of one step at q_model: the step dx minimises 1/2 dx'H dx - g'dx inside the box."""
        dirs, jacs = self._linearise(q_model)
        n = len(self.columns)
        w = weights[:, None]
        J = (jacs * w[:, :, None]).reshape(-1, n)  # (3 n_terms, n)
        e = (_tangent_error(dirs, targets, self.front) * w).reshape(-1)
        # Damping that grows with the squared error (Sugihara 2011): far targets get short steps instead of a
        # Gauss-Newton overshoot that would oscillate from frame to frame.
        H = J.T @ J + (self.regulariser + 0.5 * e @ e) * self._identity
        return H, J.T @ e + self.posture_weight * (q_rest - q_model[self.columns])

    def solve(self, q_model: np.ndarray, targets: np.ndarray, weights: np.ndarray, q_rest: np.ndarray,
              lo: np.ndarray, hi: np.ndarray, iterations: int) -> np.ndarray:
        """Columns of q_model moved toward the targets, staying inside [lo, hi] (column-aligned); returns a copy.

        targets (n_terms, 3) unit world directions; weights (n_terms,), 0 switches a term off (missing data).
        q_model must start inside the box.
        """
        q_model = q_model.copy()
        x = q_model[self.columns]
        for _ in range(iterations):
            H, g = self.step_problem(q_model, targets, weights, q_rest)
            x = x + solve_qp(H, g, lo - x, hi - x)
            q_model[self.columns] = x
        return q_model


def _tangent_error(current: np.ndarray, target: np.ndarray, detour: np.ndarray) -> np.ndarray:
    """(n, 3) error on the unit sphere: tangent at `current`, pointing to `target`, as long as the angle between them.

    Unlike the chord target - current, it does not vanish when the two are opposite (an arm hanging down asked to
    point up). Such far targets are ambiguous (every great circle leads there) and the nearest-looking way often ends
    at a joint limit (Pepper's arm swung out sideways cannot turn up), so beyond 120 degrees the error turns toward
    the `detour` direction (the robot's front): arms go up and down in front of the body, as people's do.
    """
    cos = np.minimum(np.maximum((current * target).sum(axis=1), -1.0), 1.0)
    toward = target - cos[:, None] * current
    angle = np.arccos(cos)
    far = angle > _DETOUR_ANGLE
    if far.any():
        u = current[far]
        via = detour - (u @ detour)[:, None] * u
        if (np.linalg.norm(via, axis=1) < 1e-6).any():  # pointing straight ahead/back: any perpendicular will do
            via = np.where(np.linalg.norm(via, axis=1, keepdims=True) < 1e-6, np.cross(u, [0.0, 0.0, 1.0]), via)
        share = ((angle[far] - _DETOUR_ANGLE) / (np.pi - _DETOUR_ANGLE))[:, None]
        toward[far] = (1 - share) * _unit(toward[far]) + share * _unit(via)
    return _unit(toward) * angle[:, None]


def _unit(v: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(v, axis=1, keepdims=True)
    return np.divide(v, norm, out=np.zeros_like(v), where=norm > 1e-12)


def solve_qp(H: np.ndarray, g: np.ndarray, lo: np.ndarray, hi: np.ndarray, A: np.ndarray | None = None,
             a_lo: np.ndarray | None = None) -> np.ndarray | None:
    """argmin 1/2 x'H x - g'x subject to lo <= x <= hi and A x >= a_lo (H positive definite), exactly.

    None when the constraints cannot all hold (only possible with rows A). The answer is clipped into the box: the
    solver's tolerance (1e-6) must not turn into a limit violation of a few micro-radians.
    """
    if A is None:
        A, upper, lower = np.zeros((0, len(g))), hi, lo
    else:
        upper, lower = np.concatenate([hi, np.full(len(a_lo), np.inf)]), np.concatenate([lo, a_lo])
    x, _, flag, _ = daqp.solve(H, -g, A, upper, lower)
    if flag < 1:
        return None
    return np.minimum(np.maximum(x, lo), hi)
