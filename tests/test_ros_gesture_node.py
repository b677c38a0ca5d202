"""The gesture node end to end with real rclpy: speech in over a topic, JointTrajectory per controller group out.

The shipped checkpoint drives it (a random tiny one where that is not installed: meaningless gestures, but real
network output, so retargeting, limits, fades and timing are still exercised for real). The speech is espeak-ng's.
"""
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
from rclpy.parameter import Parameter  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from ha2g_ros.audio_messages import STD_TYPES, from_samples, message_class  # noqa: E402
from ha2g_ros.trajectory import validate_trajectory  # noqa: E402
from ros_harness import CHUNK, HOP_PARAMS, RATE, Harness, controller_problems, limits, played_problems  # noqa: E402

pytestmark = pytest.mark.ros


def test_speech_to_trajectories_end_to_end(rclpy_context, checkpoint, speech):
    audio, words, _, _ = speech
    assert len(audio) / RATE >= 10.0
    gaps = [b[1] - a[2] for a, b in zip(words, words[1:])]
    paragraph_end, paragraph_start = words[int(np.argmax(gaps))][2], words[int(np.argmax(gaps)) + 1][1]
    assert paragraph_start - paragraph_end > 2.5
    h = Harness(rclpy_context, checkpoint, vad_hangover_s=0.4, fade_out_s=0.5)
    try:
        assert h.gesture.engine.backend.name == "onnxruntime"  # what backend "auto" (the default) picks on a CPU
        rest = h.gesture.rest
        start_state = rest.copy()
        start_state[h.index["LShoulderPitch"]] -= 0.6  # the robot is not at rest when the node starts
        h.set_pose(start_state)
        h.spin(0.1)  # joint_states reach the node before its first hop
        audio_start = h.now()
        half = 5 * CHUNK * 10
        h.play(audio[:half], words)
        h.text_pub.publish(String(data='{"words": [{"word": "oops"'))  # malformed: logged, survived
        h.audio_pub.publish(message_class(h.audio_type)())  # an empty audio message: logged, survived
        h.play(audio[half:])
        h.spin(2.5)  # the tail: playback delay + fade out
    finally:
        h.close()

    report = h.timing[-1]
    assert report["bad_transcripts"] == 1 and report["bad_audio"] == 1 and report["inference_errors"] == 0
    assert report["late_frames"] == 0, report
    assert report["compute_ms_mean"] > 0 and report["latency_ms_mean"] > 0
    expected_frames = int(len(audio) / RATE * 15) - 12  # the last hop + lookahead frames wait for more audio
    assert report["frames"] >= expected_frames - 6, report

    frame_times = np.arange(audio_start, h.now(), 1 / 15)
    for group, messages in h.received.items():
        assert len(messages) > 10, group
        lower, upper, vmax = limits(h, group)
        for k, msg in enumerate(messages):  # what joint_trajectory_controller would check, plus the URDF limits
            assert validate_trajectory(msg, h.groups[group], lower, upper, vmax) == [], (group, k)
            assert list(msg.joint_names) == h.groups[group]
            assert all(len(p.velocities) == len(h.groups[group]) for p in msg.points)
        # the contract: the spline the controller played, takeovers included, keeps every limit at every instant
        assert played_problems(h, group, audio_start, h.now()) == [], group
        # start-up: the first command starts where the robot was
        index = [h.index[j] for j in h.groups[group]]
        np.testing.assert_allclose(messages[0].points[0].positions, start_state[index], atol=1e-12)

        # silence: between the paragraphs the robot rests (after hangover + fade), and moves in the speech around
        positions = h.controllers[group].sample(frame_times)[0]
        at_rest = np.all(np.abs(positions - rest[index]) < 1e-6, axis=1)
        assert at_rest[-1], f"{group}: not at rest after the speech ended"
        if group.endswith("arm"):
            play = lambda t: audio_start + t + HOP_PARAMS["playback_delay_s"]  # noqa: E731 - stream -> ROS time
            quiet = (frame_times > play(paragraph_end + 1.7)) & (frame_times < play(paragraph_start) - 0.2)
            assert quiet.sum() >= 10 and at_rest[quiet].all(), f"{group}: not resting in the silence"
            assert (~at_rest[(frame_times > play(words[2][1])) & (frame_times < play(paragraph_end))]).any()
            assert (~at_rest[frame_times > play(paragraph_start)]).any(), f"{group}: gestures did not resume"


@pytest.mark.parametrize("audio_type", STD_TYPES)
def test_every_audio_message_type_drives_the_node(rclpy_context, checkpoint, speech, audio_type):
    audio = speech[0][: 4 * RATE]
    h = Harness(rclpy_context, checkpoint, audio_type=audio_type)
    try:
        h.spin(0.1)
        h.play(audio[: 2 * RATE])
        h.text_pub.publish(String(data="hello and welcome to this"))  # an ASR result: spread over the speech
        h.play(audio[2 * RATE:])
        h.spin(0.5)
        stats = h.gesture.stats
    finally:
        h.close()
    assert stats["bad_transcripts"] == 0 and stats["inference_errors"] == 0
    assert stats["bad_audio"] == 0 and stats["audio_chunks"] == len(range(0, len(audio), CHUNK))
    assert stats["frames"] >= 4 * 15 - 12 - 6
    assert all(msgs for msgs in h.received.values())


def damaged_checkpoint(checkpoint, path, value: float):
    """A copy of `checkpoint` whose float weights all equal `value`: NaN (a diverged training run) or a huge finite
    number (one about to diverge: every window overflows)."""
    import shutil

    from safetensors.numpy import load_file, save_file

    shutil.copytree(checkpoint, path)
    weights = load_file(path / "model.safetensors")
    for name, weight in weights.items():
        if weight.dtype.kind == "f":
            weights[name] = np.full_like(weight, value)
    save_file(weights, path / "model.safetensors")
    return path


def test_malformed_audio_and_inference_failure_are_survived(rclpy_context, checkpoint, speech):
    """NaN / out-of-range / odd-length audio is dropped; a style whose weights turn NaN in memory (a file with NaN
    weights is refused at load: see the start-up test) makes inference fail: the robot fades to rest within its
    limits, the node keeps running, and recovers when a working style is chosen again. The torch backend runs the
    node's own model object, so the damage reaches the very next window."""
    import torch

    h = Harness(rclpy_context, checkpoint, backend="torch", audio_type="std_msgs/msg/Float32MultiArray", channels=2)
    with torch.no_grad():
        h.gesture.engine.backend.model.audio_encoder.speaker_embedding[0].weight[1] = float("nan")
    stereo = np.repeat(speech[0][:, None], 2, axis=1)

    def play(seconds, start):
        for begin in range(int(start * RATE), int((start + seconds) * RATE), CHUNK):
            h.audio_pub.publish(from_samples(stereo[begin:begin + CHUNK], h.audio_type, RATE))
            h.spin(CHUNK / RATE)

    try:
        h.spin(0.1)
        bad = message_class(h.audio_type)
        h.audio_pub.publish(bad(data=[0.1, float("nan")]))
        h.audio_pub.publish(bad(data=[0.5, 3.0]))
        h.audio_pub.publish(bad(data=[0.1, 0.2, 0.3]))  # 3 samples cannot be 2 interleaved channels
        play(2.0, 0.5)
        healthy = dict(h.gesture.stats)
        assert h.gesture.set_parameters([Parameter("speaker", value=1)])[0].successful
        play(3.0, 2.5)
        failing = dict(h.gesture.stats)
        at_failure = h.now()
        assert h.gesture.set_parameters([Parameter("speaker", value=0)])[0].successful
        play(3.0, 5.5)
        h.spin(1.0)
        recovered = dict(h.gesture.stats)
    finally:
        h.close()
    assert healthy["bad_audio"] == 3 and healthy["inference_errors"] == 0 and healthy["frames"] > 0
    assert failing["inference_errors"] >= 1 and failing["frames"] == healthy["frames"]
    assert recovered["frames"] > failing["frames"]  # gestures again after the style was switched back
    for group, messages in h.received.items():
        lower, upper, vmax = limits(h, group)
        for msg in messages:
            assert validate_trajectory(msg, h.groups[group], lower, upper, vmax) == []
        index = [h.index[j] for j in h.groups[group]]
        # what was played while the model failed: back to rest
        np.testing.assert_allclose(h.controllers[group].state(at_failure)[0], h.gesture.rest[index], atol=1e-6)


def test_live_parameters_are_validated(rclpy_context, checkpoint):
    h = Harness(rclpy_context, checkpoint)
    try:
        node = h.gesture
        last = node.engine.model_config.n_speakers - 1
        results = node.set_parameters([Parameter("amplitude", value=0.5), Parameter("rest_blend", value=0.25),
                                       Parameter("speaker", value=last)])
        assert all(r.successful for r in results)
        assert node.retargeter.amplitude == 0.5 and node.retargeter.rest_blend == 0.25 and node.engine.speaker == last
        bad = node.set_parameters([Parameter("speaker", value=last + 1)])[0]  # beyond the checkpoint's speakers
        assert not bad.successful and "speaker" in bad.reason and node.engine.speaker == last
        bad = node.set_parameters([Parameter("amplitude", value=7.0)])[0]
        assert not bad.successful and node.retargeter.amplitude == 0.5
        bad = node.set_parameters([Parameter("hop_frames", value=2)])[0]  # read only: needs a restart
        assert not bad.successful
        assert node.set_parameters([Parameter("enabled", value=False)])[0].successful
    finally:
        h.close()


def test_bad_startup_parameters_are_rejected(rclpy_context, checkpoint, tmp_path):
    from ha2g_ros.gesture_node import GestureNode

    for name, value, message in [("sample_rate", 100, "sample_rate"), ("backend", "cuda-magic", "backend"),
                                 ("audio_type", "sensor_msgs/msg/Image", "audio_type"),
                                 ("robot_description", '<robot name="box"><link name="base_link"/></robot>', "joints"),
                                 ("robot", "no_such_robot", "no_such_robot"), ("precision", "fp64", "precision"),
                                 ("precision", "fp16", "fp16")]:  # device cpu: fp16 is for CUDA only
        with pytest.raises(Exception, match=message):
            GestureNode(context=rclpy_context, parameter_overrides=[Parameter("checkpoint", value=str(checkpoint)),
                                                                    Parameter(name, value=value)])
    with pytest.raises(FileNotFoundError, match="no HA2G checkpoint"):
        GestureNode(context=rclpy_context, parameter_overrides=[Parameter("checkpoint", value="/nonexistent")])
    for value, message in [(np.nan, "NaN/Inf values"), (3e38, "checkpoint fails on silence")]:
        damaged = damaged_checkpoint(checkpoint, tmp_path / f"damaged_{value}", value)
        for backend in ("onnxruntime", "torch"):
            with pytest.raises(ValueError, match=message):
                GestureNode(context=rclpy_context, parameter_overrides=[Parameter("checkpoint", value=str(damaged)),
                                                                        Parameter("backend", value=backend)])


def test_disabled_node_holds_the_rest_pose(rclpy_context, checkpoint, speech):
    h = Harness(rclpy_context, checkpoint, enabled=False)
    try:
        h.play(speech[0][: 3 * RATE])
        h.spin(0.5)
    finally:
        h.close()
    for group, messages in h.received.items():
        assert messages == [], f"{group}: a robot resting where the node wants it needs no command"
        index = [h.index[j] for j in h.groups[group]]
        np.testing.assert_allclose(h.played_state()[index], h.gesture.rest[index], atol=1e-12)


def test_audio_older_than_the_playback_delay_is_dropped(rclpy_context, checkpoint, speech):
    """A burst of 3 s of audio at once (a stalled executor, a reconnecting source) cannot all be gestured on time:
    the node keeps the newest playback_delay_s of it and stays with the speech."""
    h = Harness(rclpy_context, checkpoint)
    try:
        h.spin(0.1)
        burst = speech[0][: 3 * RATE]
        for start in range(0, len(burst), CHUNK):
            h.audio_pub.publish(from_samples(burst[start:start + CHUNK], h.audio_type, RATE))
        deadline = time.monotonic() + 10
        while len(h.gesture.pending_audio) < 30 and time.monotonic() < deadline:
            h.gesture.take_audio()  # simulated time stands still: no tick, the burst piles up
            time.sleep(0.01)
        assert len(h.gesture.pending_audio) == 30
        h.spin(0.1)
        stats = dict(h.gesture.stats)
        h.play(speech[0][3 * RATE: 5 * RATE])
        h.spin(0.5)
    finally:
        h.close()
    assert stats["dropped_audio_s"] == pytest.approx(3.0 - HOP_PARAMS["playback_delay_s"], abs=0.11)
    assert h.gesture.stats["late_frames"] == 0
    for group, messages in h.received.items():
        lower, upper, vmax = limits(h, group)
        assert messages and all(validate_trajectory(m, h.groups[group], lower, upper, vmax) == [] for m in messages)


def test_robot_state_is_trusted_only_when_fresh_finite_and_plausible(rclpy_context, checkpoint, speech):
    """No joint_states, a NaN reading, a 1000 rad reading: the node commands nothing (and says why) rather than
    assume where the robot is; with plausible readings it starts from them; when they stop mid-gesture it stops
    commanding and the last trajectory's braking tail brings the robot to rest inside its limits."""
    audio = speech[0]
    h = Harness(rclpy_context, checkpoint)
    try:
        h.state_override = False  # nobody publishes joint_states
        h.play(audio[: 2 * RATE])
        unseen = dict(h.gesture.stats)
        nan_state = h.gesture.rest.copy()
        nan_state[h.index["LElbowRoll"]] = float("nan")
        h.state_override = nan_state
        h.play(audio[2 * RATE: 3 * RATE])
        absurd = h.gesture.rest.copy()
        absurd[h.index["RShoulderPitch"]] = 1000.0
        h.state_override = absurd
        h.play(audio[3 * RATE: 4 * RATE])
        before_start = {g: len(m) for g, m in h.received.items()}
        bad = dict(h.gesture.stats)
        start_pose = h.gesture.rest.copy()
        start_pose[h.index["LShoulderPitch"]] = 0.4  # the robot is somewhere else than rest
        h.set_pose(start_pose)
        h.state_override = None  # the controllers' state from now on
        started = h.now()
        h.play(audio[4 * RATE: 8 * RATE])
        h.state_override = False  # the robot vanishes mid-gesture
        vanished = h.now()
        sent_when_vanished = {g: len(m) for g, m in h.received.items()}
        h.play(audio[8 * RATE: 10 * RATE])
        h.spin(1.0)
        sent_while_unseen = {g: len(m) - sent_when_vanished[g] for g, m in h.received.items()}
    finally:
        h.close()
    assert unseen["unseen_robot_ticks"] > 0 and unseen["frames"] > 0  # the model ran; the robot got nothing
    assert bad["bad_joint_states"] > 0
    assert before_start == {g: 0 for g in h.groups}, "commanded a robot it could not see"
    for group, messages in h.received.items():
        index = [h.index[j] for j in h.groups[group]]
        np.testing.assert_allclose(messages[0].points[0].positions, start_pose[index], atol=1e-12)
        assert all(np.isfinite(p.positions).all() and np.isfinite(p.velocities).all()
                   for m in messages for p in m.points)
        assert sent_while_unseen[group] <= 1, "kept commanding a robot it could not see"
        assert played_problems(h, group, started, h.now()) == [], group
        _, v, _ = h.controllers[group].state(h.now())
        assert not v.any(), f"{group}: still moving after its braking tail"
    assert vanished > started


def test_joint_states_from_several_fast_publishers_keep_the_robot_seen(rclpy_context, checkpoint, speech):
    """A ros2_control robot publishes joint_states at its controller rate, often from several publishers (arms at
    hundreds of Hz, hands slower). The node reads them once per tick: every message since the last tick counts, so a
    hand reading followed by a burst of 40 arm readings (800 Hz) still leaves every joint seen."""
    from sensor_msgs.msg import JointState

    audio = speech[0]
    h = Harness(rclpy_context, checkpoint)
    hands = [name for group, joints in h.groups.items() if "hand" in group for name in joints]
    arms = [name for name in h.index if name not in hands]
    assert hands and arms
    try:
        h.state_override = False  # the readings come from the loop below
        for start in range(0, 4 * RATE, CHUNK):
            h.audio_pub.publish(from_samples(audio[start:start + CHUNK], h.audio_type, RATE))
            for _ in range(2):  # two ticks of the harness clock per 100 ms chunk
                q = h.played_state()
                h.state_pub.publish(JointState(name=hands, position=[float(q[h.index[n]]) for n in hands]))
                for _ in range(40):
                    h.state_pub.publish(JointState(name=arms, position=[float(q[h.index[n]]) for n in arms]))
                h.tick(CHUNK / RATE / 2)
    finally:
        h.close()
    assert h.gesture.stats["unseen_robot_ticks"] == 0
    assert all(h.received[g] for g in h.groups), {g: len(m) for g, m in h.received.items()}


def test_live_speech_after_a_rest_takes_a_style_of_its_own(rclpy_context, checkpoint, speech):
    """style_per_utterance (the default): once the robot has rested, the next speech is gestured in a newly drawn
    style, not mid-sentence; with it off the style never changes."""
    audio = speech[0]
    for per_utterance in (True, False):
        h = Harness(rclpy_context, checkpoint, style_per_utterance=per_utterance)
        try:
            h.play(audio[: 2 * RATE])
            during = h.gesture.engine.stream_style[0]
            h.play(audio[2 * RATE: 3 * RATE])
            np.testing.assert_array_equal(h.gesture.engine.stream_style[0], during)  # speaking: the style holds
            h.play(np.zeros(4 * RATE, np.float32))  # hangover, fade-out, rest
            assert h.gesture.weight == 0.0
            h.play(audio[3 * RATE: 5 * RATE])
            assert h.gesture.weight > 0.0
        finally:
            h.close()
        assert np.array_equal(h.gesture.engine.stream_style[0], during) != per_utterance


def test_a_robot_resting_through_silence_gets_no_messages(rclpy_context, checkpoint, speech):
    """Silence keeps streaming (a microphone in a quiet room): once the robot has faded to rest and stands there,
    the node sends nothing more (the controller holds its last point), although frames keep coming."""
    audio = speech[0]
    h = Harness(rclpy_context, checkpoint)
    try:
        h.play(audio[: 3 * RATE])
        h.play(np.zeros(6 * RATE, np.float32))  # speech over: fade, then rest
        sent, frames = {g: len(m) for g, m in h.received.items()}, h.gesture.stats["frames"]
        h.play(np.zeros(3 * RATE, np.float32))
    finally:
        h.close()
    assert h.gesture.stats["frames"] > frames, "no audio reached the model: the test would prove nothing"
    assert {g: len(m) for g, m in h.received.items()} == sent
    np.testing.assert_allclose(h.played_state(), h.gesture.rest, atol=1e-9)


def test_every_transition_is_played_within_limits(rclpy_context, checkpoint, speech):
    """Exaggerated gestures, live rest_blend/amplitude/enabled changes, a stalled node (the clock jumps 1.5 s
    between two ticks) and a robot moved by someone else while resting: the played spline keeps position,
    velocity and acceleration limits throughout, and every new plan starts where the robot really is."""
    audio = speech[0]
    h = Harness(rclpy_context, checkpoint, amplitude=1.5, fade_in_s=0.1, fade_out_s=0.1, vad_hangover_s=0.2)
    try:
        start = h.now()
        h.play(audio[: 3 * RATE])
        h.gesture.set_parameters([Parameter("rest_blend", value=0.8), Parameter("amplitude", value=0.3)])
        h.play(audio[3 * RATE: 4 * RATE])
        h.gesture.set_parameters([Parameter("rest_blend", value=0.0), Parameter("amplitude", value=1.5)])
        h.play(audio[4 * RATE: 5 * RATE])
        h.gesture.set_parameters([Parameter("enabled", value=False)])
        h.play(audio[5 * RATE: 6 * RATE])
        h.gesture.set_parameters([Parameter("enabled", value=True)])
        h.play(audio[6 * RATE: 8 * RATE])
        h.tick(1.5)  # a stall: no tick for 1.5 s while the controllers play on
        h.play(audio[8 * RATE: 10 * RATE])
        h.spin(3.0)  # speech over: back to rest
        moved = h.gesture.rest.copy()
        moved[h.index["LShoulderPitch"]] -= 1.0
        moved[h.index["RElbowRoll"]] = h.gesture.upper[h.index["RElbowRoll"]]
        h.spin(0.2)
        problems = {g: played_problems(h, g, start, h.now()) for g in h.groups}
        h.set_pose(moved)  # someone else moved the arms while the node let them rest
        moved_at = h.now()
        n_before = {g: len(m) for g, m in h.received.items()}
        h.play(audio[10 * RATE: 13 * RATE])
        h.spin(3.0)
    finally:
        h.close()
    assert problems == {g: [] for g in h.groups}
    for group in h.groups:
        assert played_problems(h, group, moved_at, h.now()) == [], group
        index = [h.index[j] for j in h.groups[group]]
        first_new = h.received[group][n_before[group]]
        np.testing.assert_allclose(first_new.points[0].positions, moved[index], atol=1e-9)


def test_audio_faster_than_real_time_and_clock_jumps_do_not_push_gestures_away(rclpy_context, checkpoint, speech):
    """Audio arriving at twice its declared rate (stereo published on a mono link) would have the schedule drift a
    second further into the future every second; the node notices, says so and re-anchors. A /clock jump back of
    900 s would delay every gesture by 15 minutes; the node restarts the stream and plans from the robot's pose.
    use_sim_time cannot be switched while running."""
    audio = speech[0]
    stereo_as_mono = np.repeat(audio[: 8 * RATE], 2)  # 2 samples per 1/16000 s, declared as 16 kHz mono
    h = Harness(rclpy_context, checkpoint)
    try:
        h.spin(0.1)
        leads = []
        for start in range(0, len(stereo_as_mono), 2 * CHUNK):  # 100 ms of sound per 100 ms: 200 ms declared
            h.audio_pub.publish(from_samples(stereo_as_mono[start:start + 2 * CHUNK], h.audio_type, RATE))
            h.spin(CHUNK / RATE)
            if h.gesture.plan.times:
                leads.append(h.gesture.plan.times[-1] - h.now())
        fast = dict(h.gesture.stats)
        h.spin(2.0)
        pose = h.played_state()
        h.t -= 900.0  # the simulation restarts its clock (and its controllers, holding the pose they had)
        h.set_pose(pose)
        h.play(audio[8 * RATE: 11 * RATE])
        after_jump = [h.gesture.plan.times[-1] - h.now()] if h.gesture.plan.times else []
        jumped = dict(h.gesture.stats)
        refused = h.gesture.set_parameters([Parameter("use_sim_time", value=False)])[0]
    finally:
        h.close()
    assert fast["audio_ahead_resets"] >= 1
    assert max(leads) < HOP_PARAMS["playback_delay_s"] + 1.0, f"the schedule drifted {max(leads):.1f} s ahead"
    assert jumped["clock_jumps"] == 1
    assert after_jump and 0 < after_jump[0] < HOP_PARAMS["playback_delay_s"] + 1.0
    assert jumped["frames"] > fast["frames"]
    assert not refused.successful and "start-up" in refused.reason


def test_a_playback_delay_shorter_than_the_pipeline_is_refused(rclpy_context, checkpoint):
    from ha2g_ros.gesture_node import GestureNode

    with pytest.raises(ValueError, match="shorter than the pipeline's worst-case latency"):
        GestureNode(context=rclpy_context, parameter_overrides=[Parameter("checkpoint", value=str(checkpoint)),
                                                                Parameter("playback_delay_s", value=0.2)])


def test_silence_at_rest_runs_no_model_windows_and_speech_does(rclpy_context, checkpoint, speech):
    """A microphone in a quiet room: nobody would see the model's frames while the robot rests, so none is run."""
    h = Harness(rclpy_context, checkpoint)
    try:
        before = h.gesture.engine.windows_run
        h.play(np.zeros(3 * RATE, np.float32))
        assert h.gesture.engine.windows_run == before and h.gesture.stats["frames"] > 20
        h.play(speech[0][:3 * RATE])
        assert h.gesture.engine.windows_run > before and h.gesture.weight > 0
    finally:
        h.close()


def test_the_skeleton_preview_keeps_only_frames_still_to_come(rclpy_context, checkpoint, speech):
    """Nobody listens to gesture_skeleton here: the frames kept for it must not pile up over hours of speech."""
    h = Harness(rclpy_context, checkpoint)
    try:
        h.play(speech[0][:6 * RATE])
        due_ahead = (h.gesture.get_parameter("playback_delay_s").value + 0.5) * 15
        assert 0 < len(h.gesture.skeleton_frames) <= due_ahead
    finally:
        h.close()


def test_on_the_system_clock_the_node_ticks_when_a_window_is_due(rclpy_context, checkpoint, speech):
    """On the system clock (a robot's case, unlike the harness's simulated time) the node ticks when there is work:
    just after the audio chunk that completes a model window, a few times a second instead of every frame. Every
    frame is still computed in time and the robot, publishing joint_states at 50 Hz, is seen throughout. Real time:
    100 ms chunks paced by the wall clock, a simulated robot playing the trajectories."""
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import qos_profile_sensor_data

    from ha2g_ros.gesture_node import GestureNode
    from ha2g_ros.simulated_robot import SimulatedRobot

    seconds = 6.0
    gesture = GestureNode(context=rclpy_context, parameter_overrides=[
        Parameter("checkpoint", value=str(checkpoint)), Parameter("robot_description_wait_s", value=0.0),
        Parameter("seed", value=0)])
    robot = SimulatedRobot(gesture.retargeter.groups, dict(zip(gesture.joint_names, gesture.rest)),
                           context=rclpy_context)
    speaker = rclpy.create_node("speaker", context=rclpy_context)
    audio_pub = speaker.create_publisher(message_class(STD_TYPES[0]), "audio", qos_profile_sensor_data)
    executor = SingleThreadedExecutor(context=rclpy_context)
    for node in (gesture, robot, speaker):
        executor.add_node(node)
    try:
        deadline = time.monotonic() + 20
        while not audio_pub.get_subscription_count() and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        audio = speech[0][: int(seconds * RATE)]
        began, ticks, windows = time.monotonic(), gesture.stats["ticks"], gesture.engine.windows_run
        played_from = robot.now_s()
        for k, start in enumerate(range(0, len(audio), CHUNK)):
            while (wait := began + k * CHUNK / RATE - time.monotonic()) > 0:
                executor.spin_once(timeout_sec=wait)
            audio_pub.publish(from_samples(audio[start:start + CHUNK], STD_TYPES[0], RATE))
        ticks = gesture.stats["ticks"] - ticks
        stats = dict(gesture.stats)
        windows = gesture.engine.windows_run - windows
        # what the controllers played, sampled at 1 kHz through every message takeover
        played = {group: controller_problems(gesture, robot.controllers[group], joints, played_from, robot.now_s())
                  for group, joints in gesture.retargeter.groups.items()}
    finally:
        executor.shutdown()
        for node in (gesture, robot, speaker):
            node.destroy_node()
    assert stats["late_frames"] == 0 and stats["unseen_robot_ticks"] == 0, stats
    assert stats["frames"] >= seconds * 15 - 2 * (6 + 4), stats  # all but the last hop and lookahead
    assert ticks < 0.5 * 15 * seconds, f"{ticks} ticks in {seconds} s of speech for {windows} windows"
    assert all(robot.received.values()), "the robot got no trajectory"
    assert played == {group: [] for group in played}, played


def test_without_reception_stamps_arrivals_are_tick_times_and_ticks_come_every_frame(rclpy_context, checkpoint):
    """A middleware without reception stamps (FastDDS, the one here, has them; the message info is what rclpy passes
    on): a polled message then counts from the tick that takes it, and the node ticks every frame from then on, as on
    simulated time, so that an arrival is at most a frame late."""
    from ha2g_ros.gesture_node import FRAME_DT, GestureNode

    gesture = GestureNode(context=rclpy_context, parameter_overrides=[
        Parameter("checkpoint", value=str(checkpoint)), Parameter("robot_description_wait_s", value=0.0)])
    try:
        now = gesture.now_s()
        assert gesture._arrival({"received_timestamp": int(now * 1e9) - 5_000_000}) == pytest.approx(now - 0.005)
        assert gesture._tick_period(now) > FRAME_DT  # no audio on the system clock: the idle tick
        before = gesture.now_s()
        arrival = gesture._arrival({"source_timestamp": int(now * 1e9)})  # no received_timestamp
        assert before <= arrival <= gesture.now_s()
        assert gesture._arrival({"received_timestamp": 0}) >= arrival  # tick times from now on, stamped or not
        assert gesture._tick_period(gesture.now_s()) == FRAME_DT
    finally:
        gesture.destroy_node()
