"""Self-collision margin and the exact bounded IK step: poses that would collide, chatter, bad collision profiles."""
import numpy as np
import pytest
from scipy.optimize import lsq_linear

from ha2g_ros.retargeting import Retargeter, RobotLoadError, load_profile, profile_from_dict
from ha2g_ros.retargeting.solver import solve_qp
from test_retargeting import FORWARD, LEFT, UP, arm, assert_within_limits, pose, profile_dict

# Hands crossing in front of the belly, and both hands pressed flat against the chest.
CROSSING = pose(**arm("left", -UP + 0.3 * FORWARD, -LEFT + 0.3 * FORWARD),
                **arm("right", -UP + 0.3 * FORWARD, LEFT + 0.3 * FORWARD))
CHEST = pose(**arm("left", -UP, FORWARD - LEFT + 0.5 * UP), **arm("right", -UP, FORWARD + LEFT + 0.5 * UP))


@pytest.mark.parametrize("robot", ["pepper", "tiago_dual"])
@pytest.mark.parametrize("human", [CROSSING, CHEST], ids=["hands_crossing", "hands_on_chest"])
def test_margin_holds_on_poses_that_collide_without_it(robot, human):
    rt = Retargeter(load_profile(robot))
    clip = np.repeat(human[None], 75, axis=0)  # 5 s: long enough for the slow TIAGo arm to settle
    margin = rt.margin
    rt.margin = 0.0
    rt.reset()
    free = rt.solve_sequence(clip)
    assert min(rt.part_distances(free[-1]).values()) < 0, "the pose should collide without the margin"
    rt.margin = margin
    rt.reset()
    q = rt.solve_sequence(clip)
    closest = np.array([min(rt.part_distances(x).values()) for x in q])
    assert closest.min() >= margin - 1e-4, f"closest approach {closest.min():.4f} m < margin {margin} m"
    assert_within_limits(rt, q, rt.rest_pose(), 1 / 15)
    # Smooth: the constraint never makes a joint jump further than a frame's velocity budget allows (checked above),
    # and the filtered arms do not oscillate against it: in the second half no arm joint reverses its motion by more
    # than 3 mrad (TIAGo's arms pressed together dither by up to 1.5 mrad, 0.09 degrees, between the constraints).
    steps = np.diff(q[len(q) // 2:, :len(rt.profile.arm_joints)], axis=0)
    reversal = np.minimum(np.abs(steps[1:]), np.abs(steps[:-1]))[steps[1:] * steps[:-1] < 0]
    assert reversal.max(initial=0.0) < 3e-3


def test_the_bounded_step_is_the_exact_optimum(ted_culture_clips):
    """Each IK step solves its box QP exactly: it matches scipy's bounded least squares on the real steps of a clip."""
    rt = Retargeter(load_profile("pepper"))
    ik, arm_joints = rt._ik, slice(0, len(rt.profile.arm_joints))  # noqa: the solver's own step problem
    rng = np.random.default_rng(0)
    for frame in ted_culture_clips[0]["dir_vec"][:60]:
        rt.solve(frame)
        q_model = rt._to_model(rt._q_ik)
        targets = rt._ik.directions(rt._to_model(rt.rest_pose()))  # a far target: the box binds
        weights = np.ones(len(rt.terms))
        H, g = ik.step_problem(q_model, targets, weights, rt.rest_pose()[arm_joints])
        half = rng.uniform(0.01, 0.1, len(g))
        lo, hi = -half, half
        step = solve_qp(H, g, lo, hi)
        L = np.linalg.cholesky(H)  # 1/2 x'Hx - g'x = 1/2 |L'x - L^-1 g|^2 + const
        reference = lsq_linear(L.T, np.linalg.solve(L, g), bounds=(lo, hi), method="bvls", tol=1e-12).x
        np.testing.assert_allclose(step, reference, atol=1e-6)


def test_no_shoulder_chatter_with_the_elbow_on_its_limit():
    """Pepper's forearm asked to fold back further than its elbow can: the shoulder settles instead of alternating
    at +-v_max from frame to frame (it did with the old heuristic box step, at ~7.5 Hz)."""
    rt = Retargeter(load_profile("pepper"))
    human = pose(**arm("left", FORWARD - UP, -FORWARD + 0.3 * UP), **arm("right", -UP, FORWARD))
    q = rt.solve_sequence(np.repeat(human[None], 75, axis=0))  # 5 s
    elbow, shoulder = rt.joint_names.index("LElbowRoll"), rt.joint_names.index("LShoulderPitch")
    assert q[-1, elbow] == pytest.approx(rt.lower[elbow], abs=1e-3)  # on its limit
    steps = np.diff(q[30:, shoulder])
    reversals = int((np.sign(steps[1:]) * np.sign(steps[:-1]) < 0).sum())
    assert reversals <= 2 and np.abs(steps).max() < 0.02, (reversals, np.abs(steps).max())


# --- bad collision profiles -------------------------------------------------------------------------------------------

def test_collision_shapes_naming_links_the_urdf_lacks():
    data = profile_dict("g1")
    data["collision"]["parts"]["torso"] = ["torso_linkk"]
    data["collision"]["parts"]["head"] = [{"link": "noggin", "from": [0, 0, 0], "to": [0, 0, 0], "radius": 0.1}]
    with pytest.raises(RobotLoadError) as error:
        Retargeter(profile_from_dict(data))
    assert "collision.parts.torso[0]" in str(error.value) and "torso_linkk" in str(error.value)
    assert "collision.parts.head[0]" in str(error.value) and "noggin" in str(error.value)


def test_links_without_collision_geometry_need_capsules():
    """Pepper's URDF names meshes that are not on disk (they ship in a separate archive, not with the URDF); a G1 link has no <collision>."""
    data = profile_dict("pepper")
    data["collision"]["parts"]["torso"] = ["torso"]
    with pytest.raises(RobotLoadError, match="collision geometry"):
        Retargeter(profile_from_dict(data))
    data = profile_dict("g1")
    data["collision"]["parts"]["torso"] = ["imu_in_torso"]  # a link of the URDF without a <collision> element
    with pytest.raises(RobotLoadError, match="'imu_in_torso' has no collision geometry.*capsules"):
        Retargeter(profile_from_dict(data))


def test_margin_the_rest_pose_violates_is_refused():
    data = profile_dict("nao")
    data["collision"]["margin"] = 0.1
    with pytest.raises(RobotLoadError, match="rest pose already violates the collision margin of 0.1 m.*left_hand"):
        Retargeter(profile_from_dict(data))
    rt = Retargeter(load_profile("nao"))
    with pytest.raises(ValueError, match="rest pose already violates"):
        rt.margin = 0.1
    with pytest.raises(ValueError, match="margin must be in"):
        rt.margin = -0.01


def test_collision_section_structure_errors():
    data = profile_dict("pepper")
    bad = {**data, "collision": {**data["collision"], "pairs": [["left_hand", "elbow"]]}}
    with pytest.raises(ValueError, match=r"collision.pairs\[0\].*'elbow'"):
        profile_from_dict(bad)
    bad = {**data, "collision": {**data["collision"], "parts": {**data["collision"]["parts"],
                                                                "head": [{"link": "Head", "radius": 0.1}]}}}
    with pytest.raises(ValueError, match=r"collision.parts.head\[0\]"):
        profile_from_dict(bad)


@pytest.mark.parametrize("robot", ["g1", "tiago_dual"])
def test_pairs_the_filter_skips_cannot_come_within_reach(robot, ted_culture_clips):
    """The filter computes distances only for the pairs a step could bring within reach (a bound from the joints'
    levers and each pair's last distance): on real motion every pair it leaves out is really further apart after
    the step."""
    rt = Retargeter(load_profile(robot))
    rt.margin = 0.0
    q = rt.solve_sequence(ted_culture_clips[0]["dir_vec"][:60])
    within = 0.1
    for prev, x in zip(q[:-1], q[1:]):
        _, _, near = rt.collision.linearise(rt._to_model(prev), rt._qi, within, step=x - prev)
        after = rt.collision.distances(rt._to_model(x))
        skipped = np.setdiff1d(np.arange(len(after)), near)
        assert (after[skipped] >= within).all(), after[skipped].min()


# Pepper's arm joints (left, then right) at the start and end of one step whose both ends keep the margin while the
# straight way between them passes the margin (found by sampling random steps of about 0.4 rad per joint).
PASSING_STEPS = [
    ([1.98, 0.14, -0.25, -0.71, 0.71, 2.0, -1.31, -0.75, 0.93, 1.5], [1.44, 0.56, -1.24, -1.03, 0.61, 1.78, -1.56, -0.85,
                                                                     0.12, 1.69]),
    ([-1.69, 1.43, 1.19, -1.01, -1.03, 0.89, -0.26, -1.32, 1.48, -1.76], [-2.04, 0.37, 1.33, -0.96, -1.42, 0.65, -0.01,
                                                                         -0.88, 0.77, -1.35]),
]


@pytest.mark.parametrize("start, end", PASSING_STEPS, ids=["through_the_body", "past_the_body"])
def test_a_step_that_passes_through_the_margin_is_shortened(start, end):
    """The filter judges a step by the distances linearised where it starts, not only by where it ends: a step that
    swings an arm through (or close past) the body between two poses that both keep the margin is not taken as it
    is, so fast motion does not tunnel through the margin between frames (nor between the planner's knots)."""
    rt = Retargeter(load_profile("pepper"))
    n_arm = len(rt.profile.arm_joints)
    prev, q = rt.rest_pose(), rt.rest_pose()
    prev[:n_arm], q[:n_arm] = start, end

    def path_closest(a, b):
        return min(min(rt.part_distances(a + s * (b - a)).values()) for s in np.linspace(0.0, 1.0, 41))

    ends = min(min(rt.part_distances(x).values()) for x in (prev, q))
    assert ends > rt.margin + 0.005 and path_closest(prev, q) < rt.margin - 0.02, "not a passing step any more"
    x = rt.keep_margin(prev, q, rt.lower, rt.upper)
    assert path_closest(prev, x) >= rt.margin - 1e-3, "the filtered step still passes through the margin"


@pytest.mark.parametrize("robot", ["pepper", "tiago_dual"])
def test_the_played_motion_keeps_the_margin(robot):
    """Arms swung from wide open to crossed over the belly and back, faster than the acceleration limits let the
    played motion follow: planned as the gesture node plans it (KnotPlan with the retargeter as its body), what
    the controllers play never goes into the robot's own body (knots keep the margin; between them the parabola
    may cut a few millimetres of it), and it keeps every joint limit."""
    from ha2g_ros.safe_motion import KnotPlan, MotionLimits, SafeMotion
    from ha2g_ros.trajectory import PlayedMotion, Timeline, build_trajectory, check_played

    rt = Retargeter(load_profile(robot))
    wide = pose(**arm("left", -UP + LEFT, LEFT + FORWARD), **arm("right", -UP - LEFT, -LEFT + FORWARD))
    frames = np.concatenate([np.repeat(h[None], 9, axis=0) for h in [wide, CROSSING] * 4])
    amax = np.array([rt.profile.acceleration_limit_of(n) for n in rt.joint_names])
    vmax = rt.velocity_limits * rt.speed_scale
    plan = KnotPlan(SafeMotion(MotionLimits(rt.lower, rt.upper, vmax, amax), 1 / 15), body=rt)
    t0, delay = 1000.0, 1.2
    played = PlayedMotion(rt.joint_names, rt.rest_pose(), t0)
    targets = Timeline()
    rt.reset()
    for first in range(0, len(frames), 6):
        now = t0 + first / 15 + 0.01
        for k in range(first, min(first + 6, len(frames))):
            targets.append(t0 + delay + k / 15, rt.solve(frames[k]))
        if plan.update(now, 1 / 15, targets.at, targets.last()[0], played.state(now)[0], t0 + delay + first / 15):
            plan.forget_before(now)
            played.receive(build_trajectory(rt.joint_names, *plan.to_send()), now + 0.03)
    times = np.arange(t0, t0 + delay + len(frames) / 15 + 2.0, 0.01)
    p, v, a = played.sample(times)
    assert check_played(rt.joint_names, times, p, v, a, rt.lower, rt.upper, vmax, amax) == []
    assert played.takeover_problems(times[0], times[-1]) == []
    closest = np.array([min(rt.part_distances(q).values()) for q in p])
    assert closest.min() > 0.0, f"the played motion went {-1e3 * closest.min():.1f} mm into the body"
    assert closest.min() > rt.margin - 0.01, f"closest approach {1e3 * closest.min():.1f} mm"
    assert np.ptp(p[:, 0]) > 0.3, "the arms hardly moved: the test would prove nothing"


# Capsules (Pepper) have exact distances and nearest points; hulls (G1) GJK's distances, to its tolerance, and where
# a hull's face meets another any point of it is a nearest point: GJK's warm start picks one, and with it the lever
# arm of the pair's Jacobian (a few percent apart), so those are compared on capsules only
@pytest.mark.parametrize("robot, distance_tolerance, jacobian_tolerance", [("pepper", 1e-12, 1e-12), ("g1", 1e-6, None)])
def test_what_the_filter_remembers_changes_no_answer(robot, distance_tolerance, jacobian_tolerance, ted_culture_clips):
    """The collision queries remember distance bounds at the last poses, their kinematics and the answers computed
    there, only to save work: on real motion, queried as the solver and the planner query (a step from the
    last pose, the re-check at its answer, a measurement), every answer equals the one computed with nothing
    remembered: the same pairs, the same distances and Jacobians."""
    rt = Retargeter(load_profile(robot))
    rt.margin = 0.0  # the motion comes close to the body: many pairs near the limits below
    q = rt.solve_sequence(ted_culture_clips[1]["dir_vec"][:60])
    remembering, fresh = rt.collision, Retargeter(load_profile(robot)).collision
    within, found = 0.05, 0
    for prev, x, ahead in zip(q[:-4], q[1:-3], q[4:]):  # ahead: where the planner's braking would stop
        a, b, stop = rt._to_model(prev), rt._to_model(x), rt._to_model(ahead)
        for query in (lambda c: c.linearise(a, rt._qi, within, step=x - prev), lambda c: c.linearise(b, rt._qi, within),
                      lambda c: c.closest_distance(stop, within)):
            fresh.forget()
            expected, answer = query(fresh), query(remembering)
            if isinstance(expected, float):
                assert answer == pytest.approx(expected, abs=distance_tolerance)
                continue
            np.testing.assert_array_equal(answer[2], expected[2])  # the same pairs
            np.testing.assert_allclose(answer[0], expected[0], rtol=0, atol=distance_tolerance)
            if jacobian_tolerance is not None:
                np.testing.assert_allclose(answer[1], expected[1], rtol=0, atol=jacobian_tolerance)
            found += len(expected[2])
    assert found > 100, "hardly any pair came within reach: the test would prove nothing"
