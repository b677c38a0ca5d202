"""Bring your own recordings: a folder of WAV + word timings + motion (npy positions, BVH) maps onto TED Expressive."""
import json

import numpy as np
import pytest
import soundfile

from ha2g_model.skeleton import TED_EXPRESSIVE as S
from ha2g_model.skeleton import directions_to_positions
from training import ted_culture
from training.recordings import load_motion, load_recordings, read_bvh, to_ted_frame

ARM_BONES = [S.bone_index(p, c) for p, c in (("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"),
                                              ("right_shoulder", "right_elbow"), ("right_elbow", "right_wrist"))]


def test_positions_in_other_axes_map_back_to_the_same_directions(ted_culture_dir, tmp_path):
    clip = ted_culture.load_clips(ted_culture_dir)[0]
    # the clip as a user would have it: joint positions at 30 fps in a y-up, z-forward frame, 8 joints only
    joints = ["spine", "neck", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist",
              "right_wrist"]
    positions = directions_to_positions(clip.directions, S)[:, [S.joint_names.index(j) for j in joints]]
    user = positions @ np.linalg.inv(to_ted_frame("+y", "+z")).T
    t = np.arange(len(user))
    user30 = np.stack([np.interp(np.arange(2 * len(user) - 1) / 2, t, user[:, j, k])
                       for j in range(8) for k in range(3)], -1).reshape(-1, 8, 3)
    np.save(tmp_path / "talk.npy", user30)
    soundfile.write(tmp_path / "talk.wav", clip.audio, 16000)
    (tmp_path / "talk.json").write_text(json.dumps([[w, s, e] for w, s, e in clip.words]))
    (tmp_path / "mapping.yaml").write_text("speaker: alice\nfps: 30\nlayout: positions\nup: '+y'\nforward: '+z'\n"
                                           "joints: {" + ", ".join(f"{j}: {i}" for i, j in enumerate(joints)) + "}\n")
    (seq,) = load_recordings(tmp_path)
    assert seq.speaker == "alice" and seq.source == "recordings" and len(seq.words) == len(clip.words)
    # what the 8 joints cover is valid: the torso and the arms; fingers and face are placeholders
    torso_and_arms = [S.bone_index(p, c) for p, c in (("spine", "neck"), ("neck", "left_shoulder"),
                                                      ("neck", "right_shoulder"))] + ARM_BONES
    assert sorted(np.flatnonzero(seq.valid)) == sorted(torso_and_arms)
    assert abs(seq.n_frames - clip.n_frames) <= 1
    n = min(seq.n_frames, clip.n_frames)
    np.testing.assert_allclose(seq.directions[:n, ARM_BONES], clip.directions[:n, ARM_BONES], atol=1e-3)
    # unmapped fingers ride along with the forearm: the angle between forearm and hand bones stays the mean-pose one
    forearm, finger = S.bone_index("left_elbow", "left_wrist"), S.bone_index("left_wrist", "left_index_1")
    rest = S.rest_directions()
    cosines = np.sum(seq.directions[:, forearm] * seq.directions[:, finger], -1)
    np.testing.assert_allclose(cosines, rest[forearm] @ rest[finger], atol=1e-4)


def test_missing_pieces_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="mapping.yaml"):
        load_recordings(tmp_path)
    (tmp_path / "mapping.yaml").write_text("fps: 30\njoints: {spine: 0}\n")
    soundfile.write(tmp_path / "a.wav", np.zeros(1600, np.float32), 16000)
    with pytest.raises(FileNotFoundError, match="word timings"):
        load_recordings(tmp_path)
    (tmp_path / "a.tsv").write_text("hello\t0.0\t0.5\n")
    np.save(tmp_path / "a.npy", np.zeros((10, 3, 3)))
    with pytest.raises(ValueError, match="missing"):
        load_recordings(tmp_path)


BVH = """HIERARCHY
ROOT Hips
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT Chest
  {
    OFFSET 0 10 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    End Site
    {
      OFFSET 0 5 0
    }
  }
}
MOTION
Frames: 2
Frame Time: 0.0333333
1 2 3 0 0 0 0 0 0
0 0 0 90 0 0 0 0 0
"""


def test_bvh_forward_kinematics(tmp_path):
    (tmp_path / "m.bvh").write_text(BVH)
    names, positions, frame_time = read_bvh(tmp_path / "m.bvh")
    assert names == ["Hips", "Chest", "Chest_end"] and abs(frame_time - 1 / 30) < 1e-6
    np.testing.assert_allclose(positions[0], [[1, 2, 3], [1, 12, 3], [1, 17, 3]], atol=1e-9)
    # frame 1: the root turned 90 degrees about z, so the chain (along +y) now points along -x
    np.testing.assert_allclose(positions[1], [[0, 0, 0], [-10, 0, 0], [-15, 0, 0]], atol=1e-9)


def test_bvh_header_that_miscounts_frames_leaves_the_rate_unknown(tmp_path):
    """BEAT's downsampled files keep the original's `Frames:` and `Frame Time:`: the rate must come from elsewhere."""
    (tmp_path / "m.bvh").write_text(BVH.replace("Frames: 2", "Frames: 16"))
    _, positions, frame_time = read_bvh(tmp_path / "m.bvh")
    assert len(positions) == 2 and frame_time is None
    with pytest.raises(ValueError, match="state the motion `fps`"):
        load_motion(tmp_path / "m.bvh", {"joints": {}})
