"""Joint frames -> trajectory_msgs/JointTrajectory, and the checks a joint_trajectory_controller would make.

Pure functions (plus the small `Timeline` container), shared by the gesture node, the demo and the tests.
The validators return a list of sentences naming point index, joint and value, in the manner of ros2_controllers'
joint_trajectory_controller; an empty list means the message is acceptable.
"""
from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right

import numpy as np
from builtin_interfaces.msg import Duration, Time
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

# Relative slack for limit checks: published values are computed in float64 and sent as float64, but time stamps
# are rounded to nanoseconds, which changes a finite-difference velocity by ~1e-8 relative.
TOLERANCE = 1e-6
ENTRY_MIN_S = 1e-6  # see PlayedMotion._play_message


def blend(rest: np.ndarray, q: np.ndarray, weight: float) -> np.ndarray:
    """`weight` 0 = rest pose, 1 = `q`: how much of the gesture shows."""
    return rest + weight * (q - rest)


def _sec_nanosec(ns: int) -> dict[str, int]:
    return {"sec": ns // 1_000_000_000, "nanosec": ns % 1_000_000_000}


def to_time(seconds: float) -> Time:
    return Time(**_sec_nanosec(round(seconds * 1e9)))


def time_to_seconds(t) -> float:
    return t.sec + t.nanosec * 1e-9


def build_trajectory(joint_names, times_ns, positions: np.ndarray, qd: np.ndarray) -> JointTrajectory:
    """A JointTrajectory whose header stamp is the absolute (ROS clock) time of its first point.

    `times_ns` are absolute ROS times in integer nanoseconds (so that stamp + time_from_start adds up exactly to
    each point's time); the first point gets time_from_start 0, so a controller plays point i at exactly
    stamp + time_from_start = times_ns[i] (see docs/ros.md, "Header stamp").
    """
    times_ns = [int(t) for t in times_ns]
    msg = JointTrajectory()
    msg.header.stamp = Time(**_sec_nanosec(times_ns[0]))
    msg.joint_names = list(joint_names)
    # array('d') fields skip the per-element type checks of the message setters (a tenth of a message's cost)
    for t_ns, q, v in zip(times_ns, np.asarray(positions, np.float64), np.asarray(qd, np.float64)):
        point = JointTrajectoryPoint(positions=array("d", q.tobytes()), velocities=array("d", v.tobytes()),
                                     time_from_start=Duration(**_sec_nanosec(t_ns - times_ns[0])))
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


class PlayedMotion:
    """What one joint_trajectory_controller plays from the messages it receives: the curve the robot follows.

    As ros2_controllers' controller does: a message takes over when it arrives; until its first point is due the
    controller moves from the state it was in at arrival to that point; between points it plays the cubic Hermite
    spline of positions and velocities (linear interpolation when a message has no velocities); after the last point
    it holds it. `state(t)` gives position, velocity and acceleration, so limits can be checked at any instant.
    """

    def __init__(self, joint_names, positions, start_s: float = 0.0):
        self.joint_names = list(joint_names)
        # Times are kept relative to this origin: segment durations from the messages' integer nanoseconds stay
        # exact, where float seconds near 1.8e9 would blur them by 1e-7 s and accelerations by 1e-4.
        self._origin_ns = round(start_s * 1e9)
        self._start = np.asarray(positions, dtype=np.float64)
        self._messages: list[tuple[float, np.ndarray, np.ndarray, np.ndarray | None, tuple]] = []
        self._arrivals = np.zeros(0)  # relative arrival times of _messages, for searching
        # (arrival ROS s, position jump, velocity jump) where a message took over from a different curve
        self._jumps: list[tuple[float, np.ndarray, np.ndarray]] = []

    def receive(self, msg: JointTrajectory, arrival_s: float) -> None:
        """Take over with `msg` at `arrival_s` (ROS s); messages must come in order of arrival."""
        arrival = self._relative(arrival_s)
        if self._messages and arrival < self._messages[-1][0]:
            raise ValueError("messages must be received in order of arrival")
        order = [list(msg.joint_names).index(name) for name in self.joint_names]
        times = (absolute_times_ns(msg) - self._origin_ns) / 1e9
        positions = np.array([p.positions for p in msg.points], dtype=np.float64)[:, order]
        has_velocities = all(len(p.velocities) for p in msg.points)
        vel = np.array([p.velocities for p in msg.points], dtype=np.float64)[:, order] if has_velocities else None
        entry = self.state(arrival_s)  # the state the controller is in when the message takes over
        self._messages.append((arrival, times, positions, vel, entry))
        self._arrivals = np.append(self._arrivals, arrival)
        # A message that arrives after its first point is due plays its own curve from arrival on: where that
        # differs from the curve being played (it changed points already playing), the command jumps.
        taken = self.state(arrival_s)
        jump_p, jump_v = taken[0] - entry[0], taken[1] - entry[1]
        if np.abs(jump_p).max(initial=0) > 0 or np.abs(jump_v).max(initial=0) > 0:
            self._jumps.append((arrival_s, jump_p, jump_v))

    def problems(self, start_s: float, end_s: float, lower, upper, velocity_limits, acceleration_limits,
                 rate_hz: float = 1000.0) -> list[str]:
        """The whole contract between `start_s` and `end_s`: limit violations of the played motion sampled at
        `rate_hz` (check_played) and every jump where a message took over (takeover_problems)."""
        times = np.arange(start_s, end_s, 1.0 / rate_hz)
        p, v, a = self.sample(times)
        return (check_played(self.joint_names, times, p, v, a, lower, upper, velocity_limits, acceleration_limits)
                + self.takeover_problems(start_s, end_s))

    def takeover_problems(self, start_s: float, end_s: float) -> list[str]:
        """Jumps of the commanded position or velocity where a message took over between `start_s` and `end_s`:
        an instant of unbounded velocity or acceleration, invisible to samples of the curves on either side."""
        problems = []
        for arrival, jump_p, jump_v in self._jumps:
            if not start_s <= arrival <= end_s:
                continue
            for what, jump in (("position", jump_p), ("velocity", jump_v)):
                for j in np.flatnonzero(np.abs(jump) > TOLERANCE):
                    problems.append(f"Joint {self.joint_names[j]}: {what} jumps by {jump[j]:.6f} where a message "
                                    f"takes over at t={arrival:.4f} s (it changed points already playing)")
        return problems

    def _relative(self, t: float) -> float:
        return t - self._origin_ns / 1e9


    def state(self, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Position, velocity and acceleration (each (J,)) commanded at ROS time `t`."""
        p, v, a = self.sample(np.array([t], dtype=np.float64))
        return p[0], v[0], a[0]

    def sample(self, times) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Positions, velocities and accelerations (each (n, J)) at `times` (ROS s), computed message by message
        (vectorized: an hour of messages sampled at 1 kHz stays cheap)."""
        t = self._relative(np.asarray(times, dtype=np.float64).reshape(-1))
        shape = (len(t), len(self.joint_names))
        position, velocity, acceleration = np.empty(shape), np.zeros(shape), np.zeros(shape)
        active = np.searchsorted(self._arrivals, t, side="right") - 1  # the message that took over last before t
        position[active < 0] = self._start
        for m in np.unique(active[active >= 0]):
            at = np.flatnonzero(active == m)
            self._play_message(self._messages[m], t[at], at, position, velocity, acceleration)
        return position, velocity, acceleration

    @staticmethod
    def _play_message(message, t, at, position, velocity, acceleration) -> None:
        """Fill rows `at` of the outputs with what `message` plays at relative times `t`."""
        arrival, times, positions, vel, (p_entry, v_entry, _) = message
        holding = t >= times[-1]
        position[at[holding]] = positions[-1]  # after the last point: hold it, still
        t, at = t[~holding], at[~holding]
        # Segment starts and ends: the entry segment (arrival state -> first point) is index -1. One shorter than a
        # microsecond is an arrival at the first point's own instant, seen through float seconds (at today's ROS time
        # they resolve 0.2 us): no controller plays it; its first segment starts there instead.
        i = np.searchsorted(times, t, side="right") - 1
        if times[0] - arrival < ENTRY_MIN_S:
            i = np.maximum(i, 0)
        entering = i < 0
        start = np.where(entering, arrival, times[np.maximum(i, 0)])[:, None]
        end = times[i + 1][:, None]
        p0 = np.where(entering[:, None], p_entry, positions[np.maximum(i, 0)])
        p1 = positions[i + 1]
        h = end - start
        if vel is None:  # positions only: linear interpolation
            position[at] = p0 + (t[:, None] - start) / h * (p1 - p0)
            velocity[at] = (p1 - p0) / h
            return
        v0 = np.where(entering[:, None], v_entry, vel[np.maximum(i, 0)])
        v1 = vel[i + 1]
        s = (t[:, None] - start) / h
        position[at] = ((2 * s**3 - 3 * s**2 + 1) * p0 + (s**3 - 2 * s**2 + s) * h * v0
                        + (-2 * s**3 + 3 * s**2) * p1 + (s**3 - s**2) * h * v1)
        velocity[at] = ((6 * s**2 - 6 * s) * p0 + (3 * s**2 - 4 * s + 1) * h * v0 + (6 * s - 6 * s**2) * p1
                        + (3 * s**2 - 2 * s) * h * v1) / h
        acceleration[at] = ((12 * s - 6) * p0 + (6 * s - 4) * h * v0 + (6 - 12 * s) * p1
                            + (6 * s - 2) * h * v1) / h**2


def check_played(names, times, positions, velocities_, accelerations, lower, upper, velocity_limits,
                 acceleration_limits) -> list[str]:
    """Limit violations of a played motion sampled at `times` (see PlayedMotion.sample), one sentence per joint and
    kind, naming the worst instant."""
    problems = []
    bounds = [np.asarray(b, dtype=np.float64) for b in (lower, upper, velocity_limits, acceleration_limits)]
    lower, upper, vmax, amax = bounds
    checks = [("position below its lower limit", lower - positions, lower),
              ("position above its upper limit", positions - upper, upper),
              ("speed above its limit", np.abs(velocities_) - vmax, vmax),
              ("acceleration above its limit", np.abs(accelerations) - amax, amax)]
    for what, excess, bound in checks:
        slack = TOLERANCE * (1 + np.abs(bound))
        for j in np.flatnonzero(((excess > slack) | ~np.isfinite(excess)).any(axis=0)):
            worst = int(np.argmax(np.nan_to_num(excess[:, j], nan=np.inf)))
            problems.append(f"Joint {names[j]}: {what} by {excess[worst, j]:.6f} at t={times[worst]:.4f} s")
    return problems


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
