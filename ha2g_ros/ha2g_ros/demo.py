"""The main job: a robot speaking its own text and gesturing with it, end to end through ROS 2, checked, measured and
filmed. `ha2g-demo` (`--mode stream`: live speech from a microphone-like file source instead)

1. Synthesises the bundled speech sample with espeak-ng (offline), with word timings.
2. Runs the bringup (gesture node, one params file) on the default robot with a simulated robot (it plays every
   trajectory as joint_trajectory_controller does), the speech player writing what the speaker would play to a
   WAV file (no sound card needed), and a recorder node that keeps every published trajectory, the gesture targets
   and the timing reports. `speak` mode (default): the robot says the sample through the speak action, as its own
   voice would; `stream` mode: the microphone node plays it as live speech, relayed to the player delayed.
3. Checks each trajectory as joint_trajectory_controller would, and what a simulated controller played (splines
   sampled at 1 kHz) against the position, velocity and acceleration limits; measures how far apart the speech as
   heard and the arms as played come out (speech_sync.py).
4. Writes demo.mp4 / demo.gif (the robot beside the human skeleton it imitates, with the speech where ffmpeg is
   available), motion.png (the speech and every arm joint's angle within its limits), summary.json, the recorded
   trajectories (trajectories.npz) and the speech as played (speech_played.wav + .json).

ROS traffic stays on this machine: the demo forces ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST and, unless set, a
ROS_DOMAIN_ID of its own.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from ha2g_ros.tts import DEMO_PARAGRAPH_GAP_S, SAMPLE_RATE, SENTENCE_GAP_S, SPEECH, synthesize_paragraphs



def synthesize_speech(out_dir: Path, paragraphs=SPEECH) -> tuple[Path, Path]:
    """The speech sample (speech.wav, 16 kHz mono) and its word timings (speech.json, transcript JSON form)."""
    import soundfile

    from ha2g_ros.transcript import to_json

    out_dir.mkdir(parents=True, exist_ok=True)
    audio, words = synthesize_paragraphs(paragraphs, paragraph_gap_s=DEMO_PARAGRAPH_GAP_S)
    audio = np.concatenate([audio, np.zeros(int(SENTENCE_GAP_S * SAMPLE_RATE), np.float32)])
    wav, transcript = out_dir / "speech.wav", out_dir / "speech.json"
    soundfile.write(wav, audio, SAMPLE_RATE, subtype="PCM_16")
    transcript.write_text(to_json(words))
    return wav, transcript


# --- running the bringup and recording what it publishes ------------------------------------------------------------

def loopback_environment() -> None:
    """The demo talks to nobody else: discovery on this machine only, and a domain of its own unless one is set."""
    from ha2g_ros.bringup import default_environment, loopback_discovery

    default_environment()
    loopback_discovery()
    os.environ.setdefault("ROS_DOMAIN_ID", str(100 + os.getpid() % 100))


class Recording:
    """Everything the recorder node received, with the ROS time of arrival."""

    def __init__(self, groups):
        self.trajectories = {g: [] for g in groups}  # per group: (arrival number, message)
        self.arrivals = 0
        self.skeletons: list[tuple[float, np.ndarray]] = []  # (stamp s, joint positions in the body frame)
        self.timing: list[dict] = []
        self.transcript_origin: float | None = None
        self.targets: list[tuple[float, list]] = []  # (stamp s, positions): the gesture node's target due then
        self.controllers: dict = {}  # per group: the simulated controller's PlayedMotion (what the robot played)


def make_recorder(context, groups, recording: Recording):
    """The robot's side of the topics: keeps every message for the analysis (the simulated robot plays them)."""
    import rclpy
    from sensor_msgs.msg import JointState
    from std_msgs.msg import String
    from trajectory_msgs.msg import JointTrajectory
    from visualization_msgs.msg import MarkerArray

    from ha2g_ros.trajectory import time_to_seconds

    node = rclpy.create_node("demo_recorder", context=context)

    def keeper(group):
        def on_trajectory(msg):
            recording.arrivals += 1
            recording.trajectories[group].append((recording.arrivals, msg))
        return on_trajectory

    for group in groups:
        node.create_subscription(JointTrajectory, f"{group}/joint_trajectory", keeper(group), 100)

    def on_skeleton(msg):
        lines = msg.markers[0]
        points = np.array([[p.x, p.y, p.z] for p in lines.points])
        recording.skeletons.append((time_to_seconds(lines.header.stamp), points))

    def on_transcript(msg):
        recording.transcript_origin = json.loads(msg.data)["origin"]

    node.create_subscription(MarkerArray, "gesture_skeleton", on_skeleton, 100)
    node.create_subscription(String, "gesture_timing", lambda m: recording.timing.append(json.loads(m.data)), 100)
    node.create_subscription(String, "transcript", on_transcript, 10)
    node.create_subscription(JointState, "gesture_joint_states", lambda m: recording.targets.append(
        (time_to_seconds(m.header.stamp), list(m.position))), 100)
    return node


def run_nodes(mode: str, wav: Path, transcript: Path, robot: str, checkpoint: str | None, backend: str | None,
              played_wav: Path, tail_s: float = 2.5, timeout_s: float = 300.0):
    """The bringup's nodes, the speech player (wav) and the recorder in one SingleThreadedExecutor, until the speech
    has played and the robot came to rest. `speak`: the sample goes to the speak action as one utterance;
    `stream`: the microphone node plays it as live audio."""
    import rclpy
    import soundfile
    from action_msgs.msg import GoalStatus
    from rclpy.action import ActionClient
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from tqdm import tqdm

    from ha2g_interfaces.action import SpeakWithGestures
    from ha2g_ros.bringup import create_nodes, params_file
    from ha2g_ros.say import goal_for

    context = rclpy.context.Context()
    rclpy.init(context=context, args=["ha2g-demo", "--ros-args", "--params-file", str(params_file())])
    nodes, executor = [], None
    try:
        mic = [Parameter("source", value="file"), Parameter("file", value=str(wav)),
               Parameter("transcript_file", value=str(transcript))]
        gesture = [Parameter("robot", value=robot)]
        gesture += [Parameter("checkpoint", value=str(checkpoint))] if checkpoint else []
        gesture += [Parameter("backend", value=backend)] if backend else []
        player = [Parameter("output", value="wav"), Parameter("wav_file", value=str(played_wav))]
        nodes = create_nodes(context, mic, gesture, microphone=mode == "stream", simulated_robot=True,
                             speech_player_overrides=player)
        gesture_node, simulated = nodes[-3:-1]
        recording = Recording(gesture_node.groups)
        recording.controllers = simulated.controllers
        recorder = make_recorder(context, gesture_node.groups, recording)
        nodes.append(recorder)
        executor = SingleThreadedExecutor(context=context)
        for node in nodes:
            executor.add_node(node)
        delay = gesture_node.get_parameter("playback_delay_s").value
        fade = gesture_node.get_parameter("fade_out_s").value
        deadline, finished_at, meta = time.monotonic() + timeout_s, None, {}
        audio, rate = soundfile.read(wav, dtype="float32")
        if mode == "speak":
            client = ActionClient(recorder, SpeakWithGestures, "speak")
            while not client.server_is_ready():
                executor.spin_once(timeout_sec=0.05)
            words = [(w["word"], w["start"], w["end"]) for w in json.loads(transcript.read_text())["words"]]
            progress = []
            sent = client.send_goal_async(goal_for(audio, rate, words, ""),
                                          feedback_callback=lambda msg: progress.append(msg.feedback.progress))
            executor.spin_until_future_complete(sent, timeout_sec=30.0)
            if not sent.done() or not sent.result().accepted:
                raise RuntimeError("the gesture node did not accept the utterance")
            result = sent.result().get_result_async()
        with tqdm(total=round(len(audio) / rate, 1), desc=f"playing the speech through ROS 2 ({mode})",
                  unit="s") as bar:
            while time.monotonic() < deadline:
                executor.spin_once(timeout_sec=0.05)
                if mode == "stream":
                    microphone = nodes[0]
                    played, over = microphone.position / microphone.rate, microphone.finished
                else:
                    played, over = (progress[-1] if progress else 0.0) * len(audio) / rate, result.done()
                if round(played, 1) > bar.n:
                    bar.update(round(played, 1) - bar.n)
                if over and finished_at is None:
                    finished_at = time.monotonic()
                if finished_at is not None and time.monotonic() - finished_at > (delay if mode == "stream" else 0) \
                        + fade + tail_s:
                    break
            else:
                raise RuntimeError(f"the demo did not finish within {timeout_s} s")
        if mode == "speak":
            outcome = result.result().result
            if result.result().status != GoalStatus.STATUS_SUCCEEDED:
                raise RuntimeError(f"the utterance did not play: {outcome.message}")
            meta["speech_start_s"] = outcome.start_time.sec + outcome.start_time.nanosec * 1e-9
            meta["request_to_ready_s"] = round(outcome.ready_after_s, 3)
        else:
            meta["speech_start_s"] = recording.transcript_origin + delay
        meta.update({"mode": mode, "robot": robot, "joint_names": gesture_node.joint_names,
                     "groups": gesture_node.retargeter.groups, "playback_delay_s": delay,
                     "stats": dict(gesture_node.stats), "checkpoint": str(checkpoint or "shipped default"),
                     "backend": gesture_node.get_parameter("backend").value})
        return recording, gesture_node.retargeter, gesture_node.engine.skeleton, meta
    finally:
        if executor is not None:
            executor.shutdown()
        for node in nodes:
            node.destroy_node()  # the player writes the rest of its WAV
        context.try_shutdown()


# --- analysis -------------------------------------------------------------------------------------------------------

def merged_motion(recording: Recording, retargeter, rate_hz: float = 15.0) -> tuple[np.ndarray, np.ndarray]:
    """The motion the simulated controllers played: times (n,) from the first command to the end of the last one,
    and q (n, n_joints), at `rate_hz`."""
    from ha2g_ros.trajectory import absolute_times

    messages = [msg for group in recording.trajectories.values() for _, msg in group]
    if not messages:
        return np.zeros(0), np.zeros((0, len(retargeter.joint_names)))
    start = min(absolute_times(m)[0] for m in messages)
    end = max(absolute_times(m)[-1] for m in messages)
    times = np.arange(start, end + 1e-9, 1.0 / rate_hz)
    q = np.zeros((len(times), len(retargeter.joint_names)))
    for group, motion in recording.controllers.items():
        q[:, [retargeter.joint_names.index(j) for j in retargeter.groups[group]]] = motion.sample(times)[0]
    return times, q


def check_recording(recording: Recording, retargeter, motion: tuple[np.ndarray, np.ndarray]) -> dict:
    """Every message as a controller would check it, against the URDF limits; then what the controllers played,
    sampled at 1 kHz over `motion`'s span, against position, scaled velocity and acceleration limits, and any jump
    where a message took over."""
    from ha2g_ros.trajectory import check_played, validate_trajectory

    names = list(retargeter.joint_names)
    index = {n: i for i, n in enumerate(names)}
    vmax = retargeter.velocity_limits * retargeter.speed_scale
    amax = np.array([retargeter.profile.acceleration_limit_of(n) for n in names])
    problems, motion_problems, per_group = [], [], {}
    peak_speed, peak_acceleration = np.zeros(len(names)), np.zeros(len(names))
    span = np.arange(motion[0][0], motion[0][-1], 1e-3) if len(motion[0]) else np.zeros(0)
    for group, messages in recording.trajectories.items():
        joints = retargeter.groups[group]
        idx = [index[j] for j in joints]
        limits = (retargeter.lower[idx], retargeter.upper[idx], retargeter.velocity_limits[idx])
        bad = 0
        for k, (_, msg) in enumerate(messages):
            found = validate_trajectory(msg, joints, *limits)
            bad += bool(found)
            problems += [f"{group} message #{k}: {p}" for p in found]
        per_group[group] = {"messages": len(messages), "points": sum(len(m.points) for _, m in messages),
                            "rejected": bad}
        if len(span) and group in recording.controllers:
            p, v, a = recording.controllers[group].sample(span)
            found = (check_played(joints, span, p, v, a, *limits[:2], vmax[idx], amax[idx])
                     + recording.controllers[group].takeover_problems(span[0], span[-1]))
            motion_problems += [f"{group}: {m}" for m in found]
            peak_speed[idx] = np.abs(v).max(axis=0)
            peak_acceleration[idx] = np.abs(a).max(axis=0)
    times, q = motion
    return {"groups": per_group, "message_problems": problems[:20], "n_message_problems": len(problems),
            "motion_problems": motion_problems[:20], "n_motion_problems": len(motion_problems),
            "played_samples_1khz": len(span),
            "peak_velocity_fraction_of_scaled_limit": float((peak_speed / vmax).max()),
            "peak_acceleration_fraction_of_limit": float((peak_acceleration / amax).max()),
            "position_range_rad": {n: [float(q[:, i].min()), float(q[:, i].max())] for i, n in enumerate(names)}
            if len(q) else {}}


def human_directions(recording: Recording, skeleton, times: np.ndarray) -> np.ndarray:
    """The human pose shown at each of `times`: the skeleton marker published last before it, back in data frame."""
    from ha2g_model.skeleton import positions_to_directions

    stamps = np.array([t for t, _ in recording.skeletons])
    rotation = np.asarray(skeleton.body_from_data, np.float64)
    out = np.empty((len(times), skeleton.n_bones, 3), np.float32)
    for k, t in enumerate(times):
        i = max(0, int(np.searchsorted(stamps, t + 1e-3)) - 1)
        points = recording.skeletons[i][1]
        joints = np.zeros((skeleton.n_joints, 3))
        joints[skeleton.bones[0][0]] = points[0]
        for b, (_, child) in enumerate(skeleton.bones):
            joints[child] = points[2 * b + 1]
        out[k] = positions_to_directions(joints @ rotation, skeleton)  # body -> data frame: inverse rotation
    return out


def render(out_dir: Path, retargeter, skeleton, recording: Recording, motion: tuple[np.ndarray, np.ndarray],
           meta: dict, wav: Path, formats=("mp4", "gif")) -> list[Path]:
    """demo.mp4 (with the speech, in sync with the gestures) and/or demo.gif (half rate) of the commanded motion."""
    import soundfile
    from tqdm import tqdm

    from ha2g_model.render import find_ffmpeg, write_video
    from ha2g_ros.retargeting.visualize import SideBySide

    played, commanded = motion
    # A frame every 1/15 s of ROS time, the controller's interpolation between commanded points: the video keeps
    # real time (and the soundtrack in sync) even where frames were dropped as late.
    times = np.arange(played[0], played[-1] + 1e-9, 1 / 15)
    q = np.stack([np.interp(times, played, commanded[:, j]) for j in range(commanded.shape[1])], axis=1)
    directions = human_directions(recording, skeleton, times)
    view = SideBySide(retargeter, size_px=(560, 560))
    images = [view.draw(d, angles, title=f"t = {t - times[0]:.1f} s")
              for d, angles, t in tqdm(zip(directions, q, times), total=len(times), desc="drawing frames")]
    written = []
    if "gif" in formats:
        written.append(write_video(images[::2], out_dir / "demo.gif", fps=15 / 2))
    if "mp4" in formats and find_ffmpeg() is not None:
        mp4 = out_dir / "demo.mp4"
        # The soundtrack starts where the speech was heard: the utterance's start time (speak), or the live
        # speech's arrival + playback_delay_s, where the player put the relayed voice (stream).
        audio, rate = soundfile.read(wav, dtype="float32")
        start = times[0] - meta["speech_start_s"]
        if start >= 0:
            audio = audio[int(start * rate):]
        else:
            audio = np.concatenate([np.zeros(int(-start * rate), np.float32), audio])
        try:
            write_video(images, mp4, audio, rate)
        except RuntimeError:  # the soundtrack could not be muxed in: the gestures alone are still worth seeing
            write_video(images, mp4)
        written.append(mp4)
    return written


def plot_motion(path: Path, recording: Recording, retargeter, motion: tuple[np.ndarray, np.ndarray], meta: dict,
                wav: Path, words) -> Path:
    """One picture of the run: the speech (with its words) on top, each arm joint's commanded angle below, within
    its URDF limits (shaded), on the time line of the speech as the robot plays it."""
    import soundfile
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    times, q = motion
    audio, rate = soundfile.read(wav, dtype="float32")
    t0 = meta["speech_start_s"]  # speech time 0 on the robot's clock
    arm = [j for g, joints in retargeter.groups.items() if "arm" in g for j in joints][:10]
    figure = Figure(figsize=(12, 2 + 1.0 * len(arm)), dpi=90)
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(arm) + 1, 1, sharex=True, gridspec_kw={"height_ratios": [2] + [1] * len(arm)})
    axes[0].plot(np.arange(len(audio)) / rate, audio, lw=0.3, color="0.3")
    for word, start, _ in words:
        axes[0].text(start, 0.9, word, fontsize=7, rotation=45, transform=axes[0].get_xaxis_transform())
    axes[0].set_ylabel("speech")
    axes[0].set_title(f"{meta['robot']}: commanded joint angles (blue) within the URDF limits (grey), "
                      f"rest pose (dashed); {meta['checkpoint']}", fontsize=9, pad=45)
    rest = retargeter.rest_pose()
    for ax, name in zip(axes[1:], arm):
        j = retargeter.joint_names.index(name)
        ax.axhspan(retargeter.lower[j], retargeter.upper[j], color="0.92")
        ax.axhline(rest[j], color="0.5", ls="--", lw=0.8)
        ax.plot(times - t0, q[:, j], color="tab:blue", lw=1.2)
        ax.set_ylabel(name, fontsize=7, rotation=0, ha="right")
        ax.tick_params(labelsize=7)
    axes[-1].set_xlabel("speech time (s)")
    figure.tight_layout()
    figure.savefig(path)
    return path


def measure_sync(recording: Recording, meta: dict, wav: Path, played_wav: Path) -> dict:
    """How far apart the speech as heard (the player's WAV, on the ROS clock) and the arms as played (the simulated
    controllers) come out, in ms: cross-correlation peaks of loudness and arm speed (speech_sync.py). The same
    statistic on the gesture node's targets (the motion as generated and scheduled) is the model's own lead or lag
    behind the loudness, which no timing can remove; played_after_targets is what the pipeline adds after its
    targets, whose frames are placed at the speech's start by construction (tests/test_ros_speak.py)."""
    import soundfile

    from ha2g_ros.speech_sync import RATE_HZ, lag_s, loudness

    heard, rate = soundfile.read(played_wav, dtype="float32", always_2d=True)
    info = json.loads(Path(f"{played_wav}.json").read_text())
    heard_t, heard_level = loudness(heard.mean(axis=1), rate, info["start_sample_index"] / info["sample_rate"])
    speech, speech_rate = soundfile.read(wav, dtype="float32")
    start = meta["speech_start_s"]
    meant_t, meant_level = loudness(speech, speech_rate, start)
    arms = [g for g in recording.controllers if "arm" in g]
    times = np.arange(start - 1.0, start + len(speech) / speech_rate + 1.0, 1 / RATE_HZ)
    played = np.sqrt(sum((recording.controllers[g].sample(times)[1] ** 2).sum(axis=1) for g in arms))
    index = [i for i, name in enumerate(meta["joint_names"]) if any(name in meta["groups"][g] for g in arms)]
    target_t = np.array([t for t, _ in recording.targets])
    target_q = np.array([q for _, q in recording.targets])[:, index]
    target = np.linalg.norm(np.gradient(target_q, target_t, axis=0), axis=1)
    ms = lambda pair: {"ms": round(pair[0] * 1e3, 1), "correlation": round(pair[1], 3)}  # noqa: E731
    found = {
        "heard_after_scheduled": ms(lag_s(meant_t, meant_level, heard_t, heard_level, 0.5)),
        "played_arm_speed_after_loudness": ms(lag_s(heard_t, heard_level, times, played, 0.5)),
        "target_arm_speed_after_loudness": ms(lag_s(heard_t, heard_level, target_t, target, 0.5)),
        "played_after_targets": ms(lag_s(target_t, target, times, played, 0.5)),
    }
    if meta["mode"] == "stream":  # the live speech as it arrived, before the player delayed it
        arrived = meta["speech_start_s"] - meta["playback_delay_s"]
        live_t, live_level = loudness(speech, speech_rate, arrived)
        found["played_arm_speed_after_live_speech"] = ms(lag_s(live_t, live_level, times, played, 2.0))
    return found


def summarise(recording: Recording, checks: dict, meta: dict, wav: Path, seconds: float) -> dict:
    import soundfile

    timing = recording.timing[-1] if recording.timing else {}
    return {
        "mode": meta["mode"], "robot": meta["robot"], "checkpoint": meta["checkpoint"], "backend": meta["backend"],
        "speech_s": round(soundfile.info(wav).duration, 2), "wall_s": round(seconds, 1),
        "messages": {g: v["messages"] for g, v in checks["groups"].items()},
        "latency": {k: round(timing[k], 1) for k in ("compute_ms_mean", "compute_ms_p95", "latency_ms_mean",
                                                       "latency_ms_p95", "hop_ms") if k in timing},
        "playback_delay_s": meta["playback_delay_s"],
        **({"request_to_ready_s": meta["request_to_ready_s"]} if "request_to_ready_s" in meta else {}),
        "node_stats": meta["stats"],
        "limit_checks": {k: checks[k] for k in ("n_message_problems", "message_problems", "n_motion_problems",
                                                "motion_problems", "played_samples_1khz",
                                                "peak_velocity_fraction_of_scaled_limit",
                                                "peak_acceleration_fraction_of_limit")},
        "all_within_limits": checks["n_message_problems"] == 0 and checks["n_motion_problems"] == 0,
        "groups": checks["groups"],
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="ha2g-demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("out/demo"), help="output directory (default: out/demo)")
    parser.add_argument("--mode", choices=("speak", "stream"), default="speak",
                        help="speak: the robot says the sample through the speak action (its own voice, gestures "
                             "with the words); stream: the sample comes as live speech (gestures playback_delay_s "
                             "later, the voice relayed as late)")
    parser.add_argument("--robot", default="pepper", help="robot profile (default: pepper)")
    parser.add_argument("--checkpoint", help="HA2G checkpoint directory (default: the shipped one)")
    parser.add_argument("--backend", help="torch, onnxruntime, tensorrt or auto (default: the params file's)")
    parser.add_argument("--video", choices=("mp4", "gif", "both", "none"), default="both")
    args = parser.parse_args(argv)
    loopback_environment()
    began = time.monotonic()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    print("1/4 synthesising the speech sample with espeak-ng")
    wav, transcript = synthesize_speech(out)
    print(f"2/4 running the bringup on {args.robot}, {args.mode} mode (ROS_DOMAIN_ID={os.environ['ROS_DOMAIN_ID']}, "
          "loopback only)")
    played_wav = out / "speech_played.wav"
    recording, retargeter, skeleton, meta = run_nodes(args.mode, wav, transcript, args.robot, args.checkpoint,
                                                      args.backend, played_wav)
    print("3/4 checking every trajectory against the URDF limits, measuring speech-gesture sync")
    motion = merged_motion(recording, retargeter)
    checks = check_recording(recording, retargeter, motion)
    np.savez_compressed(out / "trajectories.npz", joint_names=np.array(retargeter.joint_names),
                        **dict(zip(("times", "positions"), motion)))
    words = json.loads(transcript.read_text())["words"]
    picture = plot_motion(out / "motion.png", recording, retargeter, motion, meta, wav,
                          [(w["word"], w["start"], w["end"]) for w in words])
    formats = {"both": ("mp4", "gif"), "none": ()}.get(args.video, (args.video,))
    videos = [picture]
    if formats:
        print("4/4 drawing the robot")
        videos += render(out, retargeter, skeleton, recording, motion, meta, wav, formats)
    summary = summarise(recording, checks, meta, wav, time.monotonic() - began)
    summary["speech_sync"] = measure_sync(recording, meta, wav, played_wav)
    summary["files"] = [str(p) for p in [wav, transcript, played_wav, out / "trajectories.npz", *videos]]
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps({k: summary[k] for k in ("mode", "messages", "speech_sync", "all_within_limits", "files")
                      if k in summary}, indent=1))
    if not summary["all_within_limits"]:
        raise SystemExit("some trajectories broke a limit: see summary.json")


if __name__ == "__main__":
    main()
