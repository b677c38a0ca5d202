"""Physics check (MuJoCo): trajectories played with servos track, collide only when the motion does, bad files fail."""
import json

import numpy as np
import pytest

pytest.importorskip("mujoco")

from ha2g_ros.retargeting import Retargeter, load_profile  # noqa: E402
from ha2g_ros.retargeting.physics import PhysicsRobot, central_velocities, load_trajectories, main  # noqa: E402
from test_self_collision import CROSSING  # noqa: E402


@pytest.fixture(scope="module")
def pepper():
    rt = Retargeter(load_profile("pepper"))
    return rt, PhysicsRobot(rt)


def play(robot, q):
    times = np.arange(len(q)) / 15
    return robot.follow(times, q, central_velocities(times, q))


def test_a_retargeted_clip_is_tracked_without_self_contact(pepper, ted_culture_clips):
    rt, robot = pepper
    rt.reset()
    result = play(robot, rt.solve_sequence(ted_culture_clips[0]["dir_vec"][:45]))
    assert result["self_contact_steps"] == 0
    assert result["tracking_error_deg"]["arm_p95"] < 5.0
    assert 0 < result["peak_effort_fraction"] <= 1.0 + 1e-9  # torques are saturated at the URDF limit


def test_hands_driven_through_each_other_are_reported(pepper):
    """Without the margin the crossing hands interpenetrate: the follower must see it (else 0 would mean nothing)."""
    rt, robot = pepper
    rt.margin = 0.0
    rt.reset()
    q = rt.solve_sequence(np.repeat(CROSSING[None], 30, axis=0))
    rt.margin = load_profile("pepper").collision.margin
    result = play(robot, q)
    assert result["self_contact_steps"] > 0 and result["deepest_contact_m"] > 0
    assert result["self_contact_pairs"]


def test_command_line_writes_numbers_and_rejects_foreign_trajectories(tmp_path, pepper, ted_culture_clips):
    rt, _ = pepper
    rt.reset()
    q = rt.solve_sequence(ted_culture_clips[1]["dir_vec"][:15])
    path = tmp_path / "trajectories.npz"
    np.savez(path, joint_names=np.array(rt.joint_names), times=np.arange(len(q)) / 15, positions=q)
    main([str(path), "--robot", "pepper", "--out", str(tmp_path / "out"), "--video-seconds", "0"])
    result = json.loads((tmp_path / "out" / "physics.json").read_text())
    assert result["robot"] == "pepper" and result["self_contact_steps"] == 0
    np.savez(path, joint_names=np.array(["LShoulderPitch"]), times=np.arange(3) / 15, positions=np.zeros((3, 1)))
    with pytest.raises(ValueError, match="no trajectory for joint"):
        load_trajectories(path, rt.joint_names)
