"""Joint frames -> trajectory_msgs/JointTrajectory, and the checks a joint_trajectory_controller would make.

Pure functions (plus the small `Timeline` container), shared by the gesture node, the demo and the tests.
The validators return a list of sentences naming point index, joint and value, in the manner of ros2_controllers'
joint_trajectory_controller; an empty list means the message is acceptable.
"""
from __future__ import annotations

from bisect import bisect_left, bisect_right

import numpy as np
from builtin_interfaces.msg import Duration, Time
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

# Relative slack for limit checks: published values are computed in float64 and sent as float64, but time stamps
# are rounded to nanoseconds, which changes a finite-difference velocity by ~1e-8 relative.
TOLERANCE = 1e-6


def limit_step(q_prev: np.ndarray, q_target: np.ndarray, lower: np.ndarray, upper: np.ndarray,
               velocity_limits: np.ndarray, dt: float) -> np.ndarray:
    """The joint vector closest to `q_target` reachable from `q_prev` in `dt` s within position and velocity limits.

    Position limits first, then the step: from inside the limits the result stays inside; from outside (a robot
    started beyond a soft limit) it moves back in at the velocity limit instead of jumping.
    """
    if dt <= 0:
        raise ValueError(f"dt must be positive, got {dt}")
    target = np.clip(q_target, lower, upper)
    max_step = velocity_limits * dt
    return q_prev + np.clip(target - q_prev, -max_step, max_step)


def blend(rest: np.ndarray, q: np.ndarray, weight: float) -> np.ndarray:
    """`weight` 0 = rest pose, 1 = `q`: how much of the gesture shows."""
    return rest + weight * (q - rest)


def velocities(times: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Per-point joint velocities of a sampled trajectory (n,) x (n, J): central differences, one-sided at the ends.

    The last point gets zero velocity because joint_trajectory_controller rejects trajectories ending with non-zero
    velocity unless `allow_nonzero_velocity_at_trajectory_end` is set.
    """
    n = len(times)
    qd = np.zeros_like(positions, dtype=np.float64)
    if n >= 2:
        qd[:] = np.gradient(positions, times, axis=0, edge_order=1)
    if n:
        qd[-1] = 0.0
    return qd


def _sec_nanosec(ns: int) -> dict[str, int]:
    return {"sec": ns // 1_000_000_000, "nanosec": ns % 1_000_000_000}


def to_time(seconds: float) -> Time:
    return Time(**_sec_nanosec(round(seconds * 1e9)))


def time_to_seconds(t) -> float:
    return t.sec + t.nanosec * 1e-9


def build_trajectory(joint_names, times_s: np.ndarray, positions: np.ndarray, qd: np.ndarray) -> JointTrajectory:
    """A JointTrajectory whose header stamp is the absolute (ROS clock) time of its first point.

    `times_s` are absolute ROS times in seconds; the first point gets time_from_start 0, so a controller plays point
    i at exactly stamp + time_from_start = times_s[i] (see docs/ros.md, "Header stamp").
    """
    # Integer nanoseconds, so that stamp + time_from_start adds up exactly to each point's time.
    times_ns = [round(float(t) * 1e9) for t in times_s]
    msg = JointTrajectory()
    msg.header.stamp = Time(**_sec_nanosec(times_ns[0]))
    msg.joint_names = list(joint_names)
    for t_ns, q, v in zip(times_ns, positions, qd):
        point = JointTrajectoryPoint()
        point.positions = [float(x) for x in q]
        point.velocities = [float(x) for x in v]
        point.time_from_start = Duration(**_sec_nanosec(t_ns - times_ns[0]))
        msg.points.append(point)
    return msg


def absolute_times_ns(msg: JointTrajectory) -> np.ndarray:
    """ROS time in integer nanoseconds at which each point of `msg` is due (exact, unlike float seconds)."""
    stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
    return np.array([stamp + p.time_from_start.sec * 1_000_000_000 + p.time_from_start.nanosec for p in msg.points],
                    dtype=np.int64)


def absolute_times(msg: JointTrajectory) -> np.ndarray:
    """ROS time in seconds at which each point of `msg` is due."""
    return absolute_times_ns(msg) * 1e-9


def executed_motion(messages, joint_names) -> tuple[np.ndarray, np.ndarray]:
    """What a trajectory controller plays from `messages` (in arrival order): times (n,) s and positions (n, J).

    Each message takes over from its first point on, replacing whatever earlier messages planned from then (the
    controller's trajectory replacement); points of joints outside `joint_names` are ignored, and a time is kept only
    once every joint has a position for it.
    """
    frames: dict[int, dict[str, float]] = {}
    for msg in messages:
        times = absolute_times_ns(msg)
        if not len(times):
            continue
        for t in [t for t in frames if t >= times[0]]:
            for name in msg.joint_names:
                frames[t].pop(name, None)
        for t, point in zip(times, msg.points):
            frames.setdefault(int(t), {}).update(zip(msg.joint_names, point.positions))
    keys = [t for t in sorted(frames) if all(name in frames[t] for name in joint_names)]
    positions = np.array([[frames[t][name] for name in joint_names] for t in keys]).reshape(len(keys),
                                                                                           len(joint_names))
    return np.array(keys, dtype=np.int64) * 1e-9, positions


def _too_fast(speed: np.ndarray, vmax: np.ndarray) -> np.ndarray:
    """Indices of the joints whose `speed` exceeds `vmax` by more than the rounding slack (0.1 % + 1e-6)."""
    return np.flatnonzero(speed > vmax * (1 + 1e-3) + 1e-6)


def check_limits(names, times_s, positions, lower, upper, velocity_limits) -> list[str]:
    """Position limits at every point and finite-difference velocity limits between consecutive points."""
    problems = []
    positions = np.asarray(positions, dtype=np.float64)
    lower, upper, vmax = (np.asarray(a, dtype=np.float64) for a in (lower, upper, velocity_limits))
    slack_lo, slack_hi = lower - TOLERANCE * (1 + np.abs(lower)), upper + TOLERANCE * (1 + np.abs(upper))
    for i, q in enumerate(positions):
        for j in np.flatnonzero((q < slack_lo) | (q > slack_hi)):
            problems.append(f"Position of joint {names[j]} at point #{i} is {q[j]:.6f}, outside its limits "
                            f"[{lower[j]:.6f}, {upper[j]:.6f}]")
    for i in range(1, len(positions)):
        dt = times_s[i] - times_s[i - 1]
        if dt <= 0:
            continue  # reported by the time-ordering check
        speed = np.abs(positions[i] - positions[i - 1]) / dt
        for j in _too_fast(speed, vmax):
            problems.append(f"Velocity of joint {names[j]} between points #{i - 1} and #{i} is "
                            f"{speed[j]:.6f} rad/s, above its limit {vmax[j]:.6f}")
    return problems


def validate_trajectory(msg: JointTrajectory, joint_names, lower=None, upper=None, velocity_limits=None,
                        now_s: float | None = None) -> list[str]:
    """What joint_trajectory_controller checks before accepting `msg`, plus the robot's limits when given.

    `joint_names` are the controller's joints (all must be present). `now_s` (ROS time) enables the "ends in the
    past" check. Returns a list of problems, empty when the message is acceptable.
    """
    problems = []
    if sorted(msg.joint_names) != sorted(joint_names):
        problems.append(f"Joint names {list(msg.joint_names)} do not match the controller's {list(joint_names)}")
    if len(set(msg.joint_names)) != len(msg.joint_names):
        problems.append(f"Joint names {list(msg.joint_names)} contain duplicates")
    if not msg.points:
        return problems + ["Empty trajectory: no points"]
    n = len(msg.joint_names)
    for i, point in enumerate(msg.points):
        if len(point.positions) != n:
            problems.append(f"Mismatch between joint_names size ({n}) and positions ({len(point.positions)}) "
                            f"at point #{i}")
        if point.velocities and len(point.velocities) != n:
            problems.append(f"Mismatch between joint_names size ({n}) and velocities ({len(point.velocities)}) "
                            f"at point #{i}")
        if point.accelerations and len(point.accelerations) != n:
            problems.append(f"Mismatch between joint_names size ({n}) and accelerations "
                            f"({len(point.accelerations)}) at point #{i}")
        if point.effort:
            problems.append(f"Point #{i} has effort values; trajectories with effort are not supported")
        values = list(point.positions) + list(point.velocities)
        if not np.isfinite(values).all():
            problems.append(f"Point #{i} has NaN or Inf positions/velocities")
        if i > 0:
            t_prev, t = (time_to_seconds(msg.points[k].time_from_start) for k in (i - 1, i))
            if t <= t_prev:
                problems.append(f"Time between points #{i - 1} and #{i} is not strictly increasing, "
                                f"it is {t_prev:.9f} and {t:.9f} respectively")
    for name, v in zip(msg.joint_names, msg.points[-1].velocities):
        if v != 0.0:
            problems.append(f"Velocity of last trajectory point of joint {name} is not zero: {v:.15f}")
    if problems:  # malformed: the limit checks below would only repeat the same fault
        return problems
    times = absolute_times(msg)
    if now_s is not None and time_to_seconds(msg.header.stamp) != 0.0 and times[-1] < now_s:
        problems.append(f"Received trajectory with non-zero start time that ends in the past "
                        f"({times[-1]:.3f} < now {now_s:.3f})")
    if lower is None:
        return problems
    order = [list(joint_names).index(name) for name in msg.joint_names]
    positions = np.array([p.positions for p in msg.points])
    vmax = np.asarray(velocity_limits)[order]
    problems += check_limits(list(msg.joint_names), times, positions, np.asarray(lower)[order],
                             np.asarray(upper)[order], vmax)
    for i, point in enumerate(msg.points):
        if not point.velocities:
            continue
        speed = np.abs(np.asarray(point.velocities))
        for j in _too_fast(speed, vmax):
            problems.append(f"Commanded velocity of joint {msg.joint_names[j]} at point #{i} is {speed[j]:.6f} "
                            f"rad/s, above its limit {vmax[j]:.6f}")
    return problems


class Timeline:
    """Joint frames on the ROS clock, strictly increasing in time: what has been, or will be, commanded.

    The node appends each solved frame at the time it should play, republishes the not-yet-played part with every
    hop (so a replaced trajectory never loses frames), and forgets frames once they are in the past.
    """

    def __init__(self):
        self.times: list[float] = []
        self.positions: list[np.ndarray] = []

    def __len__(self) -> int:
        return len(self.times)

    def last(self) -> tuple[float, np.ndarray] | None:
        return (self.times[-1], self.positions[-1]) if self.times else None

    def append(self, t: float, q: np.ndarray) -> None:
        if self.times and t <= self.times[-1]:
            raise ValueError(f"frame time {t:.6f} is not after the last one ({self.times[-1]:.6f})")
        self.times.append(float(t))
        self.positions.append(np.asarray(q, dtype=np.float64))

    def truncate_from(self, t: float) -> None:
        """Drop frames due at or after `t` (they are about to be replaced)."""
        cut = bisect_left(self.times, t)
        del self.times[cut:], self.positions[cut:]

    def forget_before(self, t: float, keep: int = 1) -> None:
        """Drop frames earlier than `t`, keeping the last `keep` of them (the state the robot is coming from)."""
        cut = max(0, bisect_right(self.times, t) - keep)
        del self.times[:cut], self.positions[:cut]

    def after(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """Times (n,) and positions (n, J) of the frames due after `t`."""
        start = bisect_right(self.times, t)
        if start == len(self.times):
            return np.zeros(0), np.zeros((0, 0))
        return np.array(self.times[start:]), np.stack(self.positions[start:])

    def at(self, t: float) -> np.ndarray | None:
        """Positions linearly interpolated at time `t` (clamped to the ends), None when empty."""
        if not self.times:
            return None
        i = bisect_right(self.times, t)
        if i == 0:
            return self.positions[0]
        if i == len(self.times):
            return self.positions[-1]
        t0, t1 = self.times[i - 1], self.times[i]
        w = (t - t0) / (t1 - t0)
        return self.positions[i - 1] + w * (self.positions[i] - self.positions[i - 1])
