"""The safe-motion planner: what a joint_trajectory_controller plays from its knots keeps every limit at every instant.

No ROS node here: messages are built and played (trajectory.PlayedMotion, the controller's splines and takeover)
exactly as the node and a controller would, and sampled at 1 kHz.
"""
import numpy as np
import pytest

pytest.importorskip("trajectory_msgs")
from ha2g_ros.safe_motion import KnotPlan, MotionLimits, SafeMotion, braking_distance  # noqa: E402
from ha2g_ros.trajectory import PlayedMotion, build_trajectory  # noqa: E402

T = 1 / 15
T0 = 1_800_000_000.0  # today's ROS time: float seconds are coarse here, which the plan must not suffer from
LIMITS = MotionLimits(lower=np.array([-1.0, -0.5, 0.0]), upper=np.array([1.0, 2.0, 1.0]),
                      velocity=np.array([2.0, 4.0, 6.0]), acceleration=np.array([8.0, 20.0, 15.0]))
NAMES = ["a", "b", "c"]


def played_problems(played: PlayedMotion, start: float, end: float) -> list[str]:
    return played.problems(start, end, LIMITS.lower, LIMITS.upper, LIMITS.velocity, LIMITS.acceleration)


DELAY = 0.6  # s from a frame's computation to its play time, as the node's playback delay


def stream(targets, start_pose, hop=6, lead=T, delays=(0.0,), rewrite=None):
    """Targets (n, J), one per knot period from T0 + DELAY, computed hop by hop and planned and published as the
    node does, each message arriving `delays` (cycled) after it is sent; returns the controller's PlayedMotion and
    a time after the motion ended. `rewrite` (a random generator) replaces 3 known targets at every hop, the
    first due just after the commit lead, as real frames replace the fade the node planned while audio was missing."""
    plan = KnotPlan(SafeMotion(LIMITS, T))
    played = PlayedMotion(NAMES, start_pose, start_s=T0)
    known = 0

    def target_at(t):  # frames linearly interpolated, held beyond the known ones (as the node's Timeline.at)
        k = np.clip((t - T0 - DELAY) / T, 0, known - 1)
        i = min(int(k), known - 2) if known > 1 else 0
        return targets[i] + (k - i) * (targets[min(i + 1, known - 1)] - targets[i])

    for hop_index, first in enumerate(range(0, len(targets), hop)):
        changed_from = T0 + DELAY + first * T  # the new frames
        if rewrite is not None and first >= 7:
            # the earliest frame a node may still replace: due just after the commit lead
            targets[first - 7:first - 4] = rewrite.uniform(-3, 3, size=(3, targets.shape[1]))
            changed_from = T0 + DELAY + (first - 7) * T
        known = min(first + hop, len(targets))
        now = T0 + first * T + 0.02
        if plan.update(now, lead, target_at, T0 + DELAY + (known - 1) * T, played.state(now)[0], changed_from):
            plan.forget_before(now)
            delay = delays[hop_index % len(delays)]
            played.receive(build_trajectory(NAMES, *plan.to_send()), now + delay)
    return played, T0 + DELAY + len(targets) * T + 3.0


def test_braking_distance_matches_the_braking_tail():
    motion = SafeMotion(LIMITS, T)
    for speed in (0.0, 0.1, 0.53, 1.7, 2.0):
        v = np.array([speed, -speed, speed / 2])
        positions, velocities = motion.braking_tail(np.zeros(3), v)
        assert not velocities[-1].any() if len(velocities) else not v.any()
        travelled = positions[-1] if len(positions) else np.zeros(3)
        np.testing.assert_allclose(np.abs(travelled), braking_distance(np.abs(v), LIMITS.acceleration, T),
                                   atol=1e-12)


def test_wild_targets_are_played_within_every_limit():
    """Random targets far outside the limits and jumping every frame: what is played stays inside position,
    velocity and acceleration limits, including across takeovers by late messages."""
    rng = np.random.default_rng(0)
    targets = rng.uniform(-3, 3, size=(300, 3))
    played, end = stream(targets, start_pose=np.array([0.0, 0.0, 0.5]), delays=(0.0, 0.066, 0.03, 0.066), rewrite=rng)
    assert played_problems(played, T0, end) == []
    positions = played.sample(np.arange(T0, end, 0.05))[0]
    assert np.ptp(positions, axis=0).min() > 0.5, "the joints hardly moved: the test would prove nothing"


def test_the_guarantee_holds_for_messages_delivered_within_the_commit_lead():
    """A message may reach the controller up to the commit lead after it was sent (a busy executor on either side):
    what is played stays within every limit. Later than that, the controller jumps from the old curve to the new one
    where the message re-planned points that were already playing: the lead is what the guarantee rests on."""
    lead, start = 0.2, np.array([0.0, 0.0, 0.5])
    targets = np.random.default_rng(3).uniform(-3, 3, size=(300, 3))
    in_time, end = stream(targets.copy(), start, lead=lead, delays=(0.0, 0.19, 0.1, 0.199),
                          rewrite=np.random.default_rng(4))
    assert played_problems(in_time, T0, end) == []
    too_late, end = stream(targets.copy(), start, lead=lead, delays=(0.0, 0.35, 0.1, 0.35),
                           rewrite=np.random.default_rng(4))
    assert any("jumps by" in p for p in played_problems(too_late, T0, end))


def test_a_smooth_gesture_is_followed_closely():
    t = np.arange(200) * T
    targets = np.stack([0.5 * np.sin(2 * np.pi * 0.5 * t), 0.8 + 0.6 * np.sin(2 * np.pi * 0.7 * t),
                        0.5 + 0.3 * np.sin(2 * np.pi * 0.8 * t)], axis=1)  # within the limits
    played, end = stream(targets, start_pose=targets[0])
    assert played_problems(played, T0, end) == []
    knots = T0 + DELAY + t[30:-6]  # past the start, before the targets end (there the robot stops)
    error = np.abs(played.sample(knots)[0] - targets[30:-6])
    assert error.max() < 0.015, error.max(axis=0)  # 0.9 degrees


def test_a_resting_target_is_reached_exactly_without_overshoot():
    targets = np.tile([0.9, 1.9, 0.0], (60, 1))  # a step from the start pose to near the upper limits
    played, end = stream(targets, start_pose=np.array([-0.9, -0.4, 1.0]))
    p = played.sample(np.arange(T0, end, 1e-3))[0]
    assert (p[:, 0] <= 0.9 + 1e-12).all() and (p[:, 1] <= 1.9 + 1e-12).all() and (p[:, 2] >= -1e-12).all()
    np.testing.assert_allclose(p[-1], [0.9, 1.9, 0.0], atol=1e-12)


def test_a_stalled_planner_leaves_the_robot_braking_inside_its_limits():
    """Messages stop while the robot moves at full speed toward a limit: the last message's braking tail stops it
    before the limit; planning then resumes from where it stopped without a jump."""
    targets = np.vstack([np.linspace([-0.9, 0.0, 0.2], [1.0, 2.0, 1.0], 25), np.tile([1.0, 2.0, 1.0], (5, 1))])
    played, end = stream(targets, start_pose=targets[0], hop=6)
    assert played_problems(played, T0, end) == []
    resume = T0 + DELAY + len(targets) * T + 1.0  # long after the plan ran out
    plan = KnotPlan(SafeMotion(LIMITS, T))
    plan.anchor(resume, played.state(resume)[0])
    plan.extend(lambda t: np.array([-1.0, -0.5, 0.0]), resume + 2.0)
    played.receive(build_trajectory(NAMES, *plan.to_send()), resume - 0.01)
    assert played_problems(played, T0, resume + 4.0) == []


def test_targets_that_come_while_a_braking_tail_ends_continue_its_curve():
    """The plan ran out and the robot brakes; new targets come when the tail stops between now and the commit time.
    The robot is still moving at that moment, so its measured pose is no place to restart from: the new plan holds
    the tail's last pose through the commit time and goes on from there, without a jump or an acceleration spike."""
    lead, start = 0.2, np.array([-0.9, -0.4, 0.1])
    plan, played = KnotPlan(SafeMotion(LIMITS, T)), PlayedMotion(NAMES, start, start_s=T0)
    plan.anchor(T0, start)
    plan.extend(lambda t: np.array([0.9, 1.9, 0.9]), T0 + 0.5)  # full speed toward the far corner, then stop
    played.receive(build_trajectory(NAMES, *plan.to_send()), T0 - 0.01)
    tail_end = plan.to_send()[0][-1] * 1e-9
    now = tail_end - lead / 2
    assert np.abs(played.state(now)[1]).max() > 0.5, "the robot should still be braking"
    plan.update(now, lead, lambda t: start, now + 2.0, played.state(now - 0.05)[0], changed_from=now)
    plan.forget_before(now)
    played.receive(build_trajectory(NAMES, *plan.to_send()), now + 0.03)
    assert played_problems(played, T0, now + 4.0) == []


def test_a_start_beyond_a_limit_returns_inside_without_going_further_out():
    motion = SafeMotion(LIMITS, T)
    p, v = np.array([1.3, 2.0, 0.5]), np.array([1.0, 0.0, 0.0])  # joint a beyond its upper limit, moving out
    highest = p.copy()
    for _ in range(60):
        p, v = motion.step(p, v, target=np.array([0.5, 1.0, 0.5]), target_velocity=np.zeros(3))
        highest = np.maximum(highest, p)
    assert highest[0] <= 1.3 + braking_distance(np.array([1.0]), LIMITS.acceleration[:1], T)[0] + 1e-12
    assert LIMITS.lower[0] <= p[0] <= LIMITS.upper[0]


def test_the_checker_catches_what_central_differences_would_play():
    """The old way (positions with central-difference velocities): the controller's cubic overshoots a limit
    that every published point respects; the checker must see that."""
    times = np.arange(5) * T
    positions = np.array([[0.0, 0.0, 0.5], [0.9, 0.0, 0.5], [1.0, 0.0, 0.5], [0.6, 0.0, 0.5], [0.6, 0.0, 0.5]])
    velocities = np.gradient(positions, times, axis=0)
    velocities[-1] = 0
    played = PlayedMotion(NAMES, positions[0], start_s=T0)
    played.receive(build_trajectory(NAMES, np.round((T0 + times) * 1e9), positions, velocities), T0 - 0.1)
    problems = played_problems(played, T0, T0 + times[-1])
    assert any("a: position above its upper limit" in p for p in problems), problems
    assert any("a: acceleration above its limit" in p for p in problems), problems


@pytest.mark.parametrize("field, value", [("acceleration", 0.0), ("acceleration", -1.0), ("acceleration", np.nan),
                                          ("velocity", np.inf)])
def test_bad_limits_are_refused(field, value):
    kwargs = {f: getattr(LIMITS, f).copy() for f in ("lower", "upper", "velocity", "acceleration")}
    kwargs[field][1] = value
    with pytest.raises(ValueError, match=f"{field} limits must be positive and finite"):
        MotionLimits(**kwargs)


def test_profile_acceleration_limits_are_validated(tmp_path):
    import yaml

    from ha2g_ros.retargeting.profile import _profile_dir, load_profile

    data = yaml.safe_load((_profile_dir() / "pepper.yaml").read_text())
    for value, message in [(-2.0, "must be a positive, finite number"), (0, "must be a positive, finite number"),
                           (".nan", "must be a positive, finite number")]:
        data["acceleration_limits"] = {"default": 8.0, "LElbowRoll": value}
        path = tmp_path / "bad.yaml"
        path.write_text(yaml.safe_dump(data).replace("'.nan'", ".nan"))
        with pytest.raises(ValueError, match=f"acceleration limit of 'LElbowRoll' {message}"):
            load_profile(path)
    data["acceleration_limits"] = {"NoSuchJoint": 3.0}
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ValueError, match="acceleration_limits names 'NoSuchJoint'"):
        load_profile(path)
    data.pop("acceleration_limits")
    data["speed_scale"] = {"default": 1.5}
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ValueError, match=r"speed_scale of 'default' must be in \(0, 1\]"):
        load_profile(path)


def test_solver_iterations_that_would_hang_the_node_are_refused(tmp_path):
    import yaml

    from ha2g_ros.retargeting.profile import _profile_dir, load_profile

    data = yaml.safe_load((_profile_dir() / "pepper.yaml").read_text())
    data["solver"] = {"iterations": 10**9}
    path = tmp_path / "slow.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ValueError, match=r"1 <= iterations <= 50"):
        load_profile(path)
