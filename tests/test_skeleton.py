"""The skeleton toolkit on both layouts, checked against the official facts and the real TED clips."""
import numpy as np
import pytest
import torch

from ha2g_model.skeleton import (TED_EXPRESSIVE, TED_GESTURE, denormalize_directions, directions_to_positions,
                                 get_skeleton, mirror_directions, mirrored_bones, normalize_directions, offset_posture,
                                 positions_to_directions, posture_bones, resample_frames, skeleton_for_pose_dim,
                                 skeleton_statistics, to_body_frame)


@pytest.mark.parametrize("skeleton, n_joints, n_bones, level_dims", [
    (TED_GESTURE, 10, 9, (15, 21, 27)),
    (TED_EXPRESSIVE, 43, 42, (24, 30, 36, 66, 96, 126)),
])
def test_layouts_match_the_official_code(skeleton, n_joints, n_bones, level_dims):
    assert (skeleton.n_joints, skeleton.n_bones, skeleton.pose_dim) == (n_joints, n_bones, 3 * n_bones)
    assert skeleton.level_dims == level_dims  # the generator widths of the official checkpoints
    assert len(skeleton.mean_dir_vec) == skeleton.pose_dim
    for smaller, larger in zip(skeleton.levels, skeleton.levels[1:]):
        assert set(smaller) < set(larger)
    assert skeleton.levels[-1] == tuple(range(n_bones))
    # a tree rooted at joint 0 whose bones are listed parent-before-child (reconstruction relies on it)
    reached = {0}
    for parent, child in skeleton.bones:
        assert parent in reached and child not in reached
        reached.add(child)
    assert reached == set(range(n_joints))


def test_expressive_bone_indices_the_retargeting_relies_on():
    s = TED_EXPRESSIVE
    assert s.bone_index("left_shoulder", "left_elbow") == 3
    assert s.bone_index("left_elbow", "left_wrist") == 4
    assert s.bone_index("right_shoulder", "right_elbow") == 20
    assert s.bone_index("right_elbow", "right_wrist") == 21
    assert s.bone_index("neck", "nose") == 37
    with pytest.raises(KeyError, match="no bone"):
        s.bone_index("nose", "left_wrist")


def test_official_statistics_are_packaged():
    stats = skeleton_statistics("ted_expressive")
    assert len(stats["mean_pose"]) == 129 and len(stats["angle_pair"]) == len(stats["avg_angle"])
    assert skeleton_for_pose_dim(27) is TED_GESTURE and get_skeleton("ted_expressive") is TED_EXPRESSIVE
    with pytest.raises(ValueError, match="unknown skeleton"):
        get_skeleton("smpl")
    with pytest.raises(ValueError, match="pose_dim 30"):
        skeleton_for_pose_dim(30)


def test_real_clips_round_trip(ted_culture_clips):
    s = TED_EXPRESSIVE
    for clip in ted_culture_clips:
        directions = clip["dir_vec"]
        assert directions.shape[1:] == (42, 3)
        np.testing.assert_allclose(np.linalg.norm(directions, axis=-1), 1.0, atol=1e-5)
        positions = directions_to_positions(directions, s)
        assert positions.shape == (len(directions), 43, 3)
        np.testing.assert_allclose(positions[:, 0], 0.0)
        # bone lengths are those of the skeleton, frame after frame
        parents, children = zip(*s.bones)
        lengths = np.linalg.norm(positions[:, list(children)] - positions[:, list(parents)], axis=-1)
        np.testing.assert_allclose(lengths, np.broadcast_to(s.bone_lengths, lengths.shape), atol=1e-5)
        np.testing.assert_allclose(positions_to_directions(positions, s), directions, atol=1e-5)
        normalised = normalize_directions(directions, s)
        assert normalised.shape == (len(directions), 126)
        np.testing.assert_allclose(denormalize_directions(normalised, s), directions, atol=1e-5)


def test_real_clips_match_the_frame_convention(ted_culture_clips):
    """x = the person's left, y = down, z = backwards: the frame docs/architecture.md promises."""
    s = TED_EXPRESSIVE
    mean = np.concatenate([clip["dir_vec"] for clip in ted_culture_clips]).mean(axis=0)
    assert mean[s.bone_index("spine", "neck"), 1] < -0.9  # the spine points up, i.e. along -y
    assert mean[s.bone_index("neck", "left_shoulder"), 0] > 0.5
    assert mean[s.bone_index("neck", "right_shoulder"), 0] < -0.5
    assert mean[s.bone_index("neck", "nose"), 2] < -0.3  # the face looks forward, i.e. along -z


@pytest.mark.parametrize("skeleton", [TED_GESTURE, TED_EXPRESSIVE])
def test_body_frame_is_x_forward_y_left_z_up(skeleton):
    rotation = np.asarray(skeleton.body_from_data)
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3))
    assert np.linalg.det(rotation) == pytest.approx(1.0)  # a rotation, never a mirror: left stays left
    rest = to_body_frame(skeleton.rest_directions(), skeleton)
    assert rest[skeleton.bone_index("spine", "neck"), 2] > 0.9
    assert rest[skeleton.bone_index("neck", "nose"), 0] > 0.3
    assert rest[skeleton.bone_index("neck", "left_shoulder"), 1] > 0.5
    assert rest[skeleton.bone_index("neck", "right_shoulder"), 1] < -0.5
    # at rest the forearms reach forward
    assert rest[skeleton.bone_index("left_elbow", "left_wrist"), 0] > 0.5


def test_torch_and_numpy_agree(ted_culture_clips):
    s = TED_EXPRESSIVE
    directions = ted_culture_clips[0]["dir_vec"][:20]
    as_torch = torch.from_numpy(directions).double()
    np.testing.assert_allclose(directions_to_positions(as_torch, s).numpy(), directions_to_positions(directions, s),
                               atol=1e-6)
    np.testing.assert_allclose(normalize_directions(as_torch, s).numpy(), normalize_directions(directions, s),
                               atol=1e-6)
    back = denormalize_directions(normalize_directions(as_torch, s), s)
    assert isinstance(back, torch.Tensor) and back.shape == (20, 42, 3)


def test_gesture_skeleton_positions_round_trip():
    s = TED_GESTURE
    rng = np.random.default_rng(0)
    directions = s.rest_directions()[None] + 0.1 * rng.normal(size=(5, 9, 3))
    directions = (directions / np.linalg.norm(directions, axis=-1, keepdims=True)).astype(np.float32)
    np.testing.assert_allclose(positions_to_directions(directions_to_positions(directions, s), s), directions,
                               atol=1e-6)


def test_resampling_to_15_fps():
    t30 = np.arange(61) / 30.0  # 2 s at 30 fps
    signal = np.stack([np.sin(t30), np.cos(t30)], axis=-1)
    at15 = resample_frames(signal, 30, 15)
    assert at15.shape == (31, 2)
    np.testing.assert_allclose(at15, np.stack([np.sin(np.arange(31) / 15), np.cos(np.arange(31) / 15)], -1),
                               atol=1e-6)
    up = resample_frames(torch.from_numpy(signal), 30, 60)
    assert up.shape == (121, 2) and isinstance(up, torch.Tensor)
    with pytest.raises(ValueError, match="positive"):
        resample_frames(signal, 0, 15)
    with pytest.raises(ValueError, match="empty"):
        resample_frames(signal[:0], 30, 15)


@pytest.mark.parametrize("bad, message", [
    (np.zeros((5, 41, 3)), r"shape \(\.\.\., 42, 3\)"),
    (np.full((5, 42, 3), np.nan), "NaN"),
])
def test_bad_directions_are_named(bad, message):
    with pytest.raises(ValueError, match=message):
        directions_to_positions(bad, TED_EXPRESSIVE)


def test_bad_positions_are_named():
    s = TED_GESTURE
    positions = directions_to_positions(s.rest_directions(), s)
    positions[6] = positions[5]  # left wrist on the left elbow
    with pytest.raises(ValueError, match="zero-length bone 5 \\(left_elbow -> left_wrist\\)"):
        positions_to_directions(positions, s)
    with pytest.raises(ValueError, match="shape"):
        positions_to_directions(positions[:9], s)
    with pytest.raises(ValueError, match="127"):
        denormalize_directions(np.zeros(127), TED_EXPRESSIVE)


def _asymmetric_poses(skeleton, n=6):
    """Poses unlike their mirror image: the right forearm raised (up is -y in both data frames), random jitter."""
    rng = np.random.default_rng(3)
    directions = skeleton.rest_directions()[None] + 0.3 * rng.normal(size=(n, skeleton.n_bones, 3))
    directions[:, skeleton.bone_index("right_elbow", "right_wrist")] = [0.1, -1.0, 0.0]
    return (directions / np.linalg.norm(directions, axis=-1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("skeleton", [TED_GESTURE, TED_EXPRESSIVE])
def test_mirroring_swaps_left_and_right_across_the_midline(skeleton):
    poses = _asymmetric_poses(skeleton)
    mirrored = mirror_directions(poses, skeleton)
    np.testing.assert_allclose(mirror_directions(mirrored, skeleton), poses, atol=1e-7)  # an involution
    before, after = directions_to_positions(poses, skeleton), directions_to_positions(mirrored, skeleton)
    joint = skeleton.joint_names.index
    # x is the lateral axis of both data frames (the person's left on TED Expressive, right on TED Gesture)
    for side, other in (("left", "right"), ("right", "left")):
        for part in ("shoulder", "elbow", "wrist"):
            expected = before[:, joint(f"{other}_{part}")] * [-1, 1, 1]
            np.testing.assert_allclose(after[:, joint(f"{side}_{part}")], expected, atol=1e-5)
    # the raised right forearm is now the left one: the left wrist is above the left elbow
    assert (after[:, joint("left_wrist"), 1] < after[:, joint("left_elbow"), 1]).all()
    assert not (before[:, joint("left_wrist"), 1] < before[:, joint("left_elbow"), 1]).all()
    # a reflection: bone lengths and every distance between two joints are kept (joints renamed left <-> right)
    parents, children = zip(*skeleton.bones)
    lengths = np.linalg.norm(after[:, list(children)] - after[:, list(parents)], axis=-1)
    np.testing.assert_allclose(lengths, np.broadcast_to(skeleton.bone_lengths, lengths.shape), atol=1e-5)
    swap = [joint(n.replace("left_", "@").replace("right_", "left_").replace("@", "right_"))
            for n in skeleton.joint_names]
    distances = lambda p: np.linalg.norm(p[:, :, None] - p[:, None, :], axis=-1)  # noqa: E731
    np.testing.assert_allclose(distances(after)[:, swap][:, :, swap], distances(before), atol=1e-5)


def test_mirrored_bones_pair_the_sides_of_ted_expressive():
    s = TED_EXPRESSIVE
    pairs = mirrored_bones(s)
    assert pairs[s.bone_index("left_elbow", "left_wrist")] == s.bone_index("right_elbow", "right_wrist")
    assert pairs[s.bone_index("left_wrist", "left_thumb_1")] == s.bone_index("right_wrist", "right_thumb_1")
    assert pairs[s.bone_index("nose", "left_eye")] == s.bone_index("nose", "right_eye")
    assert pairs[s.bone_index("spine", "neck")] == s.bone_index("spine", "neck")
    assert sorted(pairs) == list(range(s.n_bones)) and all(pairs[pairs[b]] == b for b in range(s.n_bones))
    as_torch = mirror_directions(torch.from_numpy(_asymmetric_poses(s)), s)
    assert isinstance(as_torch, torch.Tensor)
    np.testing.assert_allclose(as_torch.numpy(), mirror_directions(_asymmetric_poses(s), s))


@pytest.mark.parametrize("skeleton", [TED_GESTURE, TED_EXPRESSIVE])
def test_a_posture_offset_moves_the_arms_and_the_hands_turn_with_their_forearms(skeleton):
    wobble = np.sin(np.arange(40) / 5)[:, None, None] * np.array([0.2, 0.1, -0.15], np.float32)
    directions = skeleton.rest_directions()[None] + wobble  # a moving pose
    directions = (directions / np.linalg.norm(directions, axis=-1, keepdims=True)).astype(np.float32)
    offsets = np.random.default_rng(0).normal(scale=0.3, size=(skeleton.n_bones, 3)).astype(np.float32)
    moved = offset_posture(directions, offsets, skeleton)
    np.testing.assert_allclose(np.linalg.norm(moved, axis=-1), 1.0, atol=1e-5)  # still unit directions
    arm = list(posture_bones(skeleton))
    assert len(arm) == 7  # trunk, two shoulders, upper arms, forearms
    expected = directions[:, arm] + offsets[arm]
    np.testing.assert_allclose(moved[:, arm], expected / np.linalg.norm(expected, axis=-1, keepdims=True), atol=1e-5)
    np.testing.assert_allclose(offset_posture(directions, np.zeros_like(offsets), skeleton), directions, atol=1e-6)
    hands = {side: [b for b, (parent, _) in enumerate(skeleton.bones)
                    if skeleton.joint_names[parent].startswith((f"{side}_wrist", f"{side}_index", f"{side}_middle",
                                                                f"{side}_pinky", f"{side}_ring", f"{side}_thumb"))]
             for side in ("left", "right")}
    head = [b for b in range(skeleton.n_bones) if b not in arm and all(b not in h for h in hands.values())]
    assert len(head) == {"ted_gesture": 2, "ted_expressive": 5}[skeleton.name]  # neck to nose, eyes and ears
    np.testing.assert_array_equal(moved[:, head], directions[:, head])  # the head keeps its direction
    for side, hand in hands.items():
        if not hand:
            continue
        forearm = skeleton.bone_index(f"{side}_elbow", f"{side}_wrist")
        assert np.abs(moved[:, hand] - directions[:, hand]).max() > 0.05  # the hand turned...
        angles = lambda d: np.einsum("tc,tbc->tb", d[:, forearm], d[:, hand])  # noqa: E731
        np.testing.assert_allclose(angles(moved), angles(directions), atol=1e-5)  # ... with the forearm, rigidly
        np.testing.assert_allclose(np.einsum("tbc,tdc->tbd", moved[:, hand], moved[:, hand]),
                                   np.einsum("tbc,tdc->tbd", directions[:, hand], directions[:, hand]), atol=1e-5)
