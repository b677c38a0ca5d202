"""The motion a controller really plays stays inside position, velocity and acceleration limits, at every instant.

A `joint_trajectory_controller` given points with positions and velocities plays a cubic Hermite spline between
them. When consecutive points (t0, p0, v0), (t1, p1, v1) satisfy p1 - p0 = (t1 - t0) (v0 + v1) / 2, that cubic is
exactly the parabola of the constant acceleration (v1 - v0) / (t1 - t0). So this module plans on a uniform grid of
knots with one constant acceleration per segment (a double integrator) and publishes the knots: the played curve
*is* the plan, and bounds on the plan are bounds on what the robot does.

Per segment and per joint the acceleration is chosen from an interval that keeps, exactly:
- |a| <= acceleration limit, and |v| <= velocity limit at the knots (v is linear inside a segment, so everywhere);
- the *braking invariant*: from the next knot, braking at the acceleration limit (the last braking segment with
  just the acceleration that stops at its end) stops inside the position limits. Braking is always allowed by the
  invariant, so a feasible acceleration always exists (recursive feasibility); inside a segment whose velocity
  changes sign, the turning point lies within that braking distance too, so no position limit is crossed between
  knots either.
Inside that interval the acceleration follows the target (the retargeted frames) by a one-step least-squares
tracker on position and velocity error, which closes in on the target no faster than it can brake to meet it (no
overshoot when the acceleration limit cuts it short).

Every published trajectory ends with its braking tail (velocity 0 at its last point, as the controller requires):
if no further message comes (a stalled node, a lost robot state) the robot stops smoothly inside its limits.
"""
from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass

import numpy as np

STILL = 1e-9  # rad, rad/s: standing still, up to the rounding of a plan converging on a still target

# Weight of the velocity error against the position error (per knot, velocity error times the knot period). Off
# the limits the tracking error shrinks to 0.6 of itself per knot without overshoot (closed-loop eigenvalues 0 and
# 0.6). A deadbeat tracker (1/4) hits every target sooner but saturates the acceleration more on real motion and so
# tracks it worse (benchmarks/safe_motion.py on Pepper: 5.4 vs 3.9 degrees mean error on real speakers).
VELOCITY_WEIGHT = 1.0


@dataclass(frozen=True)
class MotionLimits:
    """Per-joint limits the played motion obeys: positions (rad), |velocity| (rad/s), |acceleration| (rad/s^2)."""

    lower: np.ndarray
    upper: np.ndarray
    velocity: np.ndarray
    acceleration: np.ndarray

    def __post_init__(self):
        arrays = [np.asarray(getattr(self, f), dtype=np.float64) for f in ("lower", "upper", "velocity",
                                                                           "acceleration")]
        if len({a.shape for a in arrays}) != 1 or arrays[0].ndim != 1:
            raise ValueError(f"limits must be 1-D arrays of one length, got shapes {[a.shape for a in arrays]}")
        for name, values in zip(("velocity", "acceleration"), arrays[2:]):
            if not (np.isfinite(values) & (values > 0)).all():
                raise ValueError(f"{name} limits must be positive and finite, got {values.tolist()}")
        if not (np.isfinite(arrays[0]) & np.isfinite(arrays[1]) & (arrays[0] < arrays[1])).all():
            raise ValueError("position limits must be finite with lower < upper")
        for name, values in zip(("lower", "upper", "velocity", "acceleration"), arrays):
            object.__setattr__(self, name, values)


def braking_distance(speed: np.ndarray, acceleration: np.ndarray, period: float) -> np.ndarray:
    """Distance covered while braking from `speed` >= 0 on the knot grid: full `acceleration` per segment, then the
    segment that stops exactly at its end. Piecewise linear and convex in `speed`: with n full segments,
    D = period * speed * (n + 1/2) - acceleration * period^2 * n (n + 1) / 2."""
    step = acceleration * period  # speed shed per full segment
    n = np.maximum(np.ceil(speed / step) - 1.0, 0.0)
    return period * speed * (n + 0.5) - acceleration * period ** 2 * n * (n + 1.0) / 2.0


def _largest_next_speed(room: np.ndarray, acceleration: np.ndarray, period: float) -> np.ndarray:
    """The largest next-knot velocity s (toward a limit) with s*period/2 + braking_distance(s) <= room.

    `room` is the distance to the limit left after the part of the segment fixed by the current velocity
    (limit - p - v*period/2). h(s) = s*period/2 + D(s) is increasing and piecewise linear; on the piece with n
    full braking segments h(s) = period*s*(n+1) - acceleration*period^2*n(n+1)/2.
    """
    unit = acceleration * period ** 2
    positive = room > 0
    # h(n * a * T) = a T^2 n (n + 1) / 2: the largest n with h(n a T) <= room picks the linear piece.
    n = np.floor((np.sqrt(1.0 + 8.0 * np.maximum(room, 0.0) / unit) - 1.0) / 2.0)
    speed = room / (period * (n + 1.0)) + acceleration * period * n / 2.0
    return np.where(positive, speed, 2.0 * room / period)


class SafeMotion:
    """Plans the knots a controller will play: feed it targets one knot at a time, from a known starting state."""

    def __init__(self, limits: MotionLimits, period: float):
        if not period > 0:
            raise ValueError(f"the knot period must be positive, got {period}")
        self.limits = limits
        self.period = float(period)

    def stopping_positions(self, p: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Where braking from (p, v) ends, as (lowest, highest) reachable position: the braking invariant."""
        d = braking_distance(np.abs(v), self.limits.acceleration, self.period)
        return np.where(v < 0, p - d, p), np.where(v > 0, p + d, p)

    def acceleration_bounds(self, p: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The interval of accelerations for the next segment that keeps every limit and the braking invariant.

        A state beyond a limit (a robot started outside its URDF range) widens that limit to where braking from it
        would stop, so the interval is never empty and the motion only ever returns inside.
        """
        lim, T = self.limits, self.period
        low_stop, high_stop = self.stopping_positions(p, v)
        upper, lower = np.maximum(lim.upper, high_stop), np.minimum(lim.lower, low_stop)
        s_high = np.minimum(_largest_next_speed(upper - p - v * T / 2, lim.acceleration, T), lim.velocity)
        s_low = np.maximum(-_largest_next_speed(p - lower - (-v) * T / 2, lim.acceleration, T), -lim.velocity)
        a_high = np.minimum((s_high - v) / T, lim.acceleration)
        a_low = np.maximum((s_low - v) / T, -lim.acceleration)
        # Braking is always admissible; rounding must not make the interval empty.
        brake = -np.sign(v) * np.minimum(lim.acceleration, np.abs(v) / T)
        return np.minimum(a_low, brake), np.maximum(a_high, brake)

    def step(self, p: np.ndarray, v: np.ndarray, target: np.ndarray, target_velocity: np.ndarray, body=None
             ) -> tuple[np.ndarray, np.ndarray]:
        """The next knot (position, velocity) from knot (p, v), following (target, target_velocity) within limits.

        `body` (the Retargeter) keeps the robot's parts apart: `body.keep_margin(prev, q, lo, hi)` moves the next
        position inside the box [lo, hi] of every position the limits allow (so no limit is given up for it), and
        when braking from there would stop inside the margin (`body.keeps_margin(q)`), the robot brakes now: its
        momentum must not carry it into itself.
        """
        if max(np.abs(v).max(), np.abs(p - target).max()) <= STILL and not target_velocity.any():
            return target.copy(), np.zeros_like(v)  # at a still target: staying is admissible, and free to plan
        T, amax = self.period, self.limits.acceleration
        # Least squares on the next knot's errors: |p' - target|^2 + w |T (v' - target_velocity)|^2 over a, with
        # p' = p + v T + a T^2 / 2 and v' = v + a T.
        # A target that stands still (rest, a held pose) is tracked deadbeat, so the robot arrives exactly (two
        # knots once no limit binds).
        still = target_velocity == 0
        weight = np.where(still, 0.25, VELOCITY_WEIGHT)
        position_gap = target - p - v * T
        velocity_gap = (target_velocity - v) * T
        wanted = (position_gap + 2 * weight * velocity_gap) / (T ** 2 * (0.5 + 2 * weight))
        # No overshoot when the acceleration limit binds: relative to the target moving on at its velocity, the
        # robot closes in only as fast as it can still brake to meet it (the braking invariant, with the target as
        # the limit), on the side the target is.
        room = target - p - (v + target_velocity) * T / 2
        closing = _largest_next_speed(np.abs(room), amax, T)
        wanted = np.where(room >= 0, np.minimum(wanted, (target_velocity + closing - v) / T),
                          np.maximum(wanted, (target_velocity - closing - v) / T))
        a_low, a_high = self.acceleration_bounds(p, v)
        a = np.clip(wanted, a_low, a_high)
        if body is not None:
            lo, hi = p + v * T + a_low * T ** 2 / 2, p + v * T + a_high * T ** 2 / 2
            # keep_margin may answer "hold still", which the box may not allow: the nearest allowed is hardest braking
            kept = np.clip(body.keep_margin(p, p + v * T + a * T ** 2 / 2, lo, hi), lo, hi)
            a = np.clip(2 * (kept - p - v * T) / T ** 2, a_low, a_high)
            low_stop, high_stop = self.stopping_positions(p + v * T + a * T ** 2 / 2, v + a * T)
            stop = np.where(v + a * T > 0, high_stop, low_stop)
            if not body.keeps_margin(stop) and body.keeps_margin(p):
                a = -np.sign(v) * np.minimum(amax, np.abs(v) / T)  # braking: always within the limits' interval
        return p + v * T + a * T ** 2 / 2, v + a * T

    def braking_tail(self, p: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The knots (n, J) positions and velocities that bring (p, v) to rest, ending with velocity exactly 0."""
        T, acceleration = self.period, self.limits.acceleration
        positions, speeds = [], []
        while np.any(v != 0):
            a = -np.sign(v) * np.minimum(acceleration, np.abs(v) / T)
            v_next = v + a * T
            v_next[np.abs(v) <= acceleration * T] = 0.0  # the last braking segment stops exactly
            p = p + (v + v_next) * T / 2
            v = v_next
            positions.append(p)
            speeds.append(v)
        shape = (len(positions), len(p))
        return np.array(positions).reshape(shape), np.array(speeds).reshape(shape)


class KnotPlan:
    """The knots already planned, on a uniform grid of the ROS clock: what the controller plays or will play.

    Knots are committed once the segment starting at them may be playing when a message arrives (`commit` lead
    time); only later ones are ever re-planned, so every message continues exactly the curve the controller is on.
    Knot k is due at origin + k * period, kept in integer nanoseconds: float seconds near today's ROS time (1.8e9)
    would blur segment durations by 1e-7 s and so the played accelerations by 1e-4 relative.
    """

    def __init__(self, motion: SafeMotion, body=None):
        self.motion = motion
        self.body = body  # keeps the robot's parts apart, see SafeMotion.step
        self._origin_ns = 0
        self.steps: list[int] = []  # grid index of each knot
        self.times: list[float] = []  # ROS s of each knot (for comparisons)
        self.positions: list[np.ndarray] = []
        self.velocities: list[np.ndarray] = []

    def __len__(self) -> int:
        return len(self.times)

    def _time_ns(self, step: int) -> int:
        return self._origin_ns + round(step * self.motion.period * 1e9)

    def _append(self, p: np.ndarray, v: np.ndarray) -> None:
        step = self.steps[-1] + 1
        self.steps.append(step)
        self.times.append(self._time_ns(step) * 1e-9)
        self.positions.append(p)
        self.velocities.append(v)

    def anchor(self, t: float, position: np.ndarray) -> None:
        """Start a new plan at rest at `position` (a fresh, plausible measurement of the robot) at time `t`."""
        self._origin_ns = round(t * 1e9)
        self.steps, self.times = [0], [self._origin_ns * 1e-9]
        self.positions = [np.asarray(position, dtype=np.float64)]
        self.velocities = [np.zeros_like(self.positions[0])]

    def at_rest_before(self, t: float) -> bool:
        """True when the plan has ended (last knot due before `t`, standing still): the robot holds that pose."""
        return not self.times or (self.times[-1] < t and not self.velocities[-1].any())

    def holds_still(self) -> bool:
        """True when the plan's last segment stands still (both its knots at rest, up to rounding: converging on a
        still target leaves velocities of 1e-15 rad/s): where it ends, it stays."""
        return len(self.times) >= 2 and max(np.abs(self.velocities[-1]).max(), np.abs(self.velocities[-2]).max()) \
            <= STILL

    def commit_braking(self, until: float) -> None:
        """The last message's braking tail is what the controller plays once the plan runs out: knots of it due
        before `until` become part of the plan, so that planning resumes from where the robot really is."""
        if not self.times or self.times[-1] >= until or not self.velocities[-1].any():
            return
        for p, v in zip(*self.motion.braking_tail(self.positions[-1], self.velocities[-1])):
            if self.times[-1] >= until:
                break
            self._append(p, v)

    def _replan_from(self, commit: float, changed_from: float) -> None:
        """Drop the knots that may and must change. Knots up to the first one due after `commit` are kept: their
        segments may be playing when a message sent now arrives. A knot follows the targets within a period around
        it, and a target between two frames interpolates them, so knots after changed_from - 2 periods go."""
        period = self.motion.period
        keep = max(bisect_right(self.times, changed_from - 2 * period), bisect_right(self.times, commit) + 1)
        del self.steps[keep:], self.times[keep:], self.positions[keep:], self.velocities[keep:]

    def extend(self, target_at, until: float) -> int:
        """Plan knots up to time `until`, following `target_at(t)` (positions); returns the number added."""
        T, added = self.motion.period, 0
        while self.times and self._time_ns(self.steps[-1] + 1) * 1e-9 <= until:
            t = self._time_ns(self.steps[-1] + 1) * 1e-9
            target = target_at(t)
            # central difference: the knot that needs the target after `until` is re-planned when it comes
            target_velocity = (target_at(t + T) - target_at(t - T)) / (2 * T)
            self._append(*self.motion.step(self.positions[-1], self.velocities[-1], target, target_velocity,
                                           self.body))
            added += 1
        return added

    def update(self, now: float, lead: float, target_at, targets_end: float, measured: np.ndarray,
               changed_from: float = math.inf) -> int:
        """One planning step at ROS time `now`, as the gesture node takes it: knots up to `targets_end` following
        `target_at(t)`; returns the number of knots added (publish when > 0).

        Knots whose segment may already be playing when a message sent now arrives (`lead` s ahead) are never
        changed; a plan that ran out continues from its braking tail (what the controller played); a plan whose robot
        already holds its last pose restarts from `measured`, the robot's fresh pose. Later knots are re-planned from `changed_from` on: the
        earliest target that changed or was added since the last update.
        """
        commit = now + lead
        self.commit_braking(commit)
        if targets_end <= commit:
            return 0
        if self.at_rest_before(now):
            self.anchor(commit, measured)
        else:
            self._hold_until(commit)
            self._replan_from(commit, changed_from)
        return self.extend(target_at, targets_end)

    def _hold_until(self, t: float) -> None:
        """A braking tail that stops between now and the commit time: its last pose, held still (as the controller
        does after a message's last point), becomes knots up to `t`. The robot is not at rest yet, so `measured`
        is no place to restart from, and only knots after `t` may change."""
        while self.velocities and not self.velocities[-1].any() and self.times[-1] < t:
            self._append(self.positions[-1], self.velocities[-1])

    def forget_before(self, t: float) -> None:
        """Drop knots before `t`, keeping the one that starts the segment playing at `t`."""
        cut = max(0, bisect_right(self.times, t) - 1)
        del self.steps[:cut], self.times[:cut], self.positions[:cut], self.velocities[:cut]

    def to_send(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Times (n,) in integer ROS nanoseconds, positions and velocities (n, J) to publish: the plan followed by its
        braking tail."""
        tail_p, tail_v = self.motion.braking_tail(self.positions[-1], self.velocities[-1])
        steps = self.steps + [self.steps[-1] + k + 1 for k in range(len(tail_p))]
        return (np.array([self._time_ns(k) for k in steps], dtype=np.int64),
                np.concatenate([np.array(self.positions), tail_p]), np.concatenate([np.array(self.velocities), tail_v]))
