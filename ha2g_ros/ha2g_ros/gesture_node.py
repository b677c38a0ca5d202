"""The gesture node: speech audio (+ transcript) in, limit-safe joint trajectories for the robot's controllers out.

A 15 Hz timer takes what came on audio and joint_states (no callback per message: see PolledCallbackGroup) and runs
the pipeline; the transcript callback only buffers (docs/ros.md has the picture and the latency model):
  audio chunks -> 16 kHz -> voice activity + engine.push_audio;  transcript -> timed words -> engine.push_words
  engine.pull_frames (a window per hop_frames of new audio) -> retargeter.solve -> fade with voice activity
  -> targets (frames on the ROS clock) -> safe motion plan (safe_motion.py: knots whose played spline keeps
     position, velocity and acceleration limits, planned from the state the controller is really in)
  -> when the plan grew: one JointTrajectory per controller group of the robot profile, from the segment playing
     now to the plan's braking tail; every tick: the target due now as JointState (preview) and the human skeleton
     as MarkerArray.
The robot is only commanded while it is seen: fresh, finite, plausible joint_states for every commanded joint.
The robot's own speech comes whole, before it is played, on the `speak` action (ha2g_interfaces/SpeakWithGestures,
utterance.py): generated in whole-utterance mode, its frames become the targets at start + i / 15 s and its audio goes
out on speech_audio stamped `start`, so that a speech player puts voice and gesture out together (docs/speech.md).
Live audio is republished there too, stamped to play with its gestures (playback_delay_s after it arrived).
A managed (lifecycle) node: configure loads, activate gestures, deactivate fades to rest (docs/ros.md, Lifecycle);
/diagnostics says once a second how it goes.
"""
from __future__ import annotations

import json
import math
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Point
from ha2g_interfaces.action import SpeakWithGestures
from ha2g_interfaces.msg import SpeechAudio
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import CallbackGroup
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.task import Future
from rclpy.time import Time
from sensor_msgs.msg import JointState
from std_msgs.msg import String
from trajectory_msgs.msg import JointTrajectory
from visualization_msgs.msg import Marker, MarkerArray

from ha2g_model.backends import BackendError
from ha2g_model.skeleton import FPS, directions_to_positions, to_body_frame
from ha2g_ros.audio_messages import (AUDIO_TYPES, MAX_CHANNELS, MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, AudioMessageError,
                                     StreamResampler, message_class, to_chunk)
from ha2g_ros.cpu_stages import StageCPU
from ha2g_ros.safe_motion import STILL, KnotPlan, MotionLimits, SafeMotion
from ha2g_ros.trajectory import Timeline, blend, build_trajectory
from ha2g_ros.transcript import TranscriptError, parse_transcript, spread_words
from ha2g_ros.utterance import GENERATING, PLAYING, SCHEDULED, Utterance, UtteranceError, gesture_weights
from ha2g_ros.voice_activity import SAMPLE_RATE, EnergyVAD, VadConfig

FRAME_DT = 1.0 / FPS
# The published motion is never changed closer than this to "now": a message must reach the controller before the
# points it changes start to play, or the controller jumps from the old curve to the new one. Transport and a
# controller's update loop take milliseconds; this leaves room for a busy executor on either side. Frames play
# playback_delay_s after their audio, so re-planning closer than this would buy nothing visible.
COMMIT_LEAD_S = 0.2
MAX_PENDING_S = 10.0  # a transcript waits this long for audio that places its words in time
TIMING_WINDOW = 200  # hops in the rolling timing statistics
# Audio that runs this far ahead of the ROS clock comes faster than its declared rate (a stereo source on a mono
# link, two publishers, 48 kHz declared as 16 kHz): its gestures would be scheduled ever further into the future.
AHEAD_LIMIT_S = 0.5
CLOCK_JUMP_BACK_S = 0.5  # the ROS clock going back more than this (a restarted simulation, a /clock reset)
CHUNK_S = 0.1  # the usual audio message: 100 ms
AUDIO_QUEUE = 50  # audio messages held for the node between ticks (5 s of 100 ms chunks)
# The tick runs when there is work (GestureNode._tick_period): right after the audio chunk that completes the next
# model window, and at least this often for the rest (fades, the robot's state, diagnostics). 15 ticks a second
# whether or not a window was due cost the node about a fifth of its CPU time.
MAX_TICK_S = 0.4
ARRIVAL_MARGIN_S = 0.002  # a tick for an expected chunk comes this long after it should have arrived
LATE_CHUNK_POLL_S = 0.01  # an expected chunk that is late: looked for again this soon (its window's frames wait)
# joint_states messages held between two ticks: a ros2_control robot publishes at its controller rate (100-1000 Hz),
# often from several publishers (arms, hands); MAX_TICK_S of all of them must fit, or a slow publisher's joints go
# unseen.
JOINT_STATES_QUEUE = 500
DIAGNOSTICS_PERIOD_S = 1.0
# Counters whose growth since the last report makes /diagnostics say WARN, and what they count
DIAGNOSED = {"late_frames": "late frames (computed after their play time, skipped)",
             "dropped_audio_s": "s of audio dropped (compute behind real time)",
             "bad_audio": "malformed audio messages", "bad_transcripts": "malformed transcripts",
             "bad_joint_states": "implausible joint_states", "unseen_robot_ticks": "ticks without joint_states (no commands)",
             "clock_jumps": "ROS clock jumps back", "audio_ahead_resets": "audio faster than real time resets"}


class PolledCallbackGroup(CallbackGroup):
    """Entities the executor never waits on or runs: the node takes their messages itself, once per tick.

    joint_states come at the robot's rate (50-1000 Hz) and audio at 10 Hz, but the pipeline reads them once per tick:
    waking the executor for each message cost more than the rest of the node (a 50 Hz publisher alone took 4 % of a
    core here).
    """

    def can_execute(self, entity) -> bool:
        return False

    def beginning_execution(self, entity) -> bool:
        return False

    def ending_execution(self, entity) -> None:
        pass


@dataclass(frozen=True)
class Param:
    name: str
    default: object
    description: str
    range: tuple | None = None  # (min, max) for numbers
    live: bool = False  # may change while running
    choices: tuple | None = None


# Declared once here; config/gestures.yaml holds the same values for users to copy (a test keeps them equal).
PARAMS = (
    Param("autostart", True, "Configure and activate at start-up; false leaves the node unconfigured for a "
          "lifecycle manager (ros2 lifecycle set, nav2_lifecycle_manager, launch events)."),
    Param("robot", "pepper", "Robot profile: a name in config/robots/ or a path to a profile YAML."),
    Param("robot_description", "", "URDF XML of the robot; empty = the one latched on the robot_description "
          "topic (robot_state_publisher's), or else the URDF the profile names."),
    Param("robot_description_wait_s", 1.0, "Seconds configure waits for a URDF on the robot_description topic "
          "when the parameter robot_description is empty; 0 = use the profile's URDF at once.", (0.0, 30.0)),
    Param("checkpoint", "", "HA2G checkpoint directory; empty = the shipped default checkpoint."),
    Param("backend", "auto", "Inference backend of the gesture engine; auto = the fastest that loads (CPU: "
          "onnxruntime, then torch; CUDA: tensorrt, torch, onnxruntime).",
          choices=("torch", "onnxruntime", "tensorrt", "auto")),
    Param("device", "cpu", "Torch device of the engine (cpu, cuda, cuda:1, ...)."),
    Param("precision", "fp32", "Arithmetic of the engine: fp32, or fp16 on CUDA (torch, TensorRT).",
          choices=("fp32", "fp16")),
    Param("cuda_graph", True, "On CUDA, the torch backend replays each window from a captured CUDA graph (measured "
          "5x faster per window than launching its kernels one by one); ignored on the CPU."),
    Param("threads", 1, "CPU threads of the torch/onnxruntime backend; 0 = the runtime's own default (ONNX Runtime: "
          "one per core; torch: as the process set it). One window is small: more threads mostly contend with the "
          "executor and other processes (up to 30x slower per window on a shared 2-core CPU).", (0, 256)),
    Param("hop_frames", 6, "Frames (15 fps) produced per inference step; also the trajectory publish period.",
          (1, 30)),
    Param("lookahead_frames", 4, "Future audio frames the model sees before it commits a frame (adds latency).",
          (0, 30)),
    Param("seed", -1, "Seed of the style noise: -1 = none (with style_per_utterance false: the deterministic "
          "style z = mu; true: a different sequence of styles each start); else reproducible.", (-1, 2**31 - 1)),
    Param("style_per_utterance", True, "Each utterance, and live speech after each rest, takes a style of its own: "
          "style noise from the model's style space (amplitude, manner) and the average arm posture of one of the "
          "real speakers the checkpoint was trained on (where it records them), as people's postures differ; "
          "false: one style and the model's own posture throughout."),
    Param("audio_type", "std_msgs/msg/Int16MultiArray", "Message type on `audio`.", choices=AUDIO_TYPES),
    Param("sample_rate", 16000, "Sample rate (Hz) of `audio` when the message does not carry it.",
          (MIN_SAMPLE_RATE, MAX_SAMPLE_RATE)),
    Param("channels", 1, "Interleaved channels of `audio` when the message does not carry it.", (1, MAX_CHANNELS)),
    Param("playback_delay_s", 1.2, "Seconds from a sound's arrival to the robot playing its gesture frame; "
          "must exceed hop + lookahead + compute, or frames arrive late and are skipped.", (0.1, 5.0)),
    Param("commit_lead_s", COMMIT_LEAD_S, "Seconds ahead of now from which the node may still change the motion it "
          "has sent. Each trajectory message must reach the controller within this time: one that arrives later, "
          "after the points it re-plans have started to play, makes the controller jump between curves.",
          (FRAME_DT, 1.0)),
    Param("utterance_policy", "queue", "A speak goal that comes while another utterance is pending or playing: "
          "queue plays it right after (gapless), preempt cuts the current one off and starts the new one as soon "
          "as it is ready.", live=True, choices=("queue", "preempt")),
    Param("start_margin_s", 0.6, "A speak goal without start_time starts this long after the request (later if "
          "its gestures take longer to be ready: then ready + commit_lead_s). Just above the request-to-ready "
          "time of a typical sentence on this computer (benchmarks/speech_sync.py).", (0.0, 10.0), live=True),
    Param("max_utterance_s", 60.0, "Longest utterance a speak goal may carry (s); longer ones are refused.",
          (1.0, 600.0), live=True),
    Param("relay_voice", True, "Republish the live audio on speech_audio, stamped to play with its gestures "
          "(arrival + playback_delay_s), for a speech player that delays the relayed voice to meet them.",
          live=True),
    Param("speaker", 0, "Gesture style: speaker id of the checkpoint.", (0, 100_000), live=True),
    Param("amplitude", 1.0, "Gesture size: 1 imitates, <1 calms, >1 exaggerates.", (0.0, 1.5), live=True),
    Param("rest_blend", 0.0, "0 follows the human, 1 holds the rest pose.", (0.0, 1.0), live=True),
    Param("enabled", True, "false fades the robot to its rest pose and holds it there.", live=True),
    Param("vad_threshold_db", -40.0, "Speech is audio above this RMS level (dBFS, 20 ms frames).", (-90.0, 0.0),
          live=True),
    Param("vad_hangover_s", 0.6, "Silence shorter than this (s) is a pause within speech.", (0.0, 5.0), live=True),
    Param("fade_in_s", 0.5, "Seconds from rest to full gesture when speech starts.", (0.05, 10.0), live=True),
    Param("fade_out_s", 1.0, "Seconds from full gesture to rest when speech stops.", (0.05, 10.0), live=True),
    Param("audio_timeout_s", 0.5, "No audio for this long (s) counts as silence; the node fades to rest on its "
          "own clock.", (0.1, 10.0), live=True),
    Param("frame_id", "base_link", "Frame of the skeleton markers; the skeleton's spine sits at its origin."),
    Param("joint_states_timeout_s", 0.5, "The robot counts as seen while every commanded joint had a plausible "
          "joint_states reading within this many seconds; unseen, it gets no new commands (the last trajectory's "
          "braking tail stops it).", (0.05, 10.0), live=True),
    Param("joint_state_tolerance", 0.2, "A joint_states reading further than this (rad) outside the URDF limits, "
          "or not finite, is implausible and ignored.", (0.0, 3.0), live=True),
)


def _descriptor(p: Param) -> ParameterDescriptor:
    extra = f" One of: {', '.join(p.choices)}." if p.choices else ""
    descriptor = ParameterDescriptor(description=p.description + extra, read_only=not p.live)
    if p.range and isinstance(p.default, float):
        descriptor.floating_point_range = [FloatingPointRange(from_value=float(p.range[0]),
                                                              to_value=float(p.range[1]))]
    elif p.range:
        descriptor.integer_range = [IntegerRange(from_value=p.range[0], to_value=p.range[1], step=1)]
    return descriptor


def check_param(p: Param, value) -> str | None:
    """Why `value` is not acceptable for `p`, or None. rclpy enforces the declared ranges as well; the choices and
    finiteness are checked only here."""
    if p.choices and value not in p.choices:
        return f"{p.name} must be one of {', '.join(p.choices)}, got {value!r}"
    if p.range and not p.range[0] <= value <= p.range[1]:
        return f"{p.name} must lie in [{p.range[0]}, {p.range[1]}], got {value!r}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"{p.name} must be finite, got {value!r}"
    return None


def worst_case_latency_s(hop_frames: int, lookahead_frames: int, commit_lead_s: float) -> float:
    """Seconds from a sound's arrival to the earliest play time its gesture frame can have, before compute: the
    frames of a hop wait for the hop and the lookahead, the audio comes in chunks, a frame must lie beyond the commit
    lead."""
    return (hop_frames + lookahead_frames) * FRAME_DT + CHUNK_S + commit_lead_s


class StreamClock:
    """Maps the audio stream's clock (s since its first sample) to ROS time (s).

    Each chunk tells us when its last sample arrived. Transport delay only ever adds to the true offset, so the
    smallest (arrival - stream time) seen over the last few seconds is the best estimate; the estimate only moves
    forward, which keeps frame times increasing, and jumps forward after a gap in the audio (a restarted source).
    """

    WINDOW_S = 3.0

    def __init__(self):
        self.offset: float | None = None
        self._recent: deque[tuple[float, float]] = deque()  # (arrival ROS s, arrival - stream end)

    def observe(self, stream_end_s: float, arrival_s: float) -> None:
        self._recent.append((arrival_s, arrival_s - stream_end_s))
        while self._recent[0][0] < arrival_s - self.WINDOW_S:
            self._recent.popleft()
        best = min(d for _, d in self._recent)
        self.offset = best if self.offset is None else max(self.offset, best)

    def ahead_s(self, stream_end_s: float, arrival_s: float) -> float:
        """How far the stream runs ahead of the ROS clock since the anchor: grows when audio comes faster than
        real time (transport delay only ever makes it negative)."""
        return 0.0 if self.offset is None else self.offset - (arrival_s - stream_end_s)

    def to_ros(self, stream_s: float) -> float:
        return self.offset + stream_s

    def jitter_s(self) -> float:
        """Spread of the recent chunks' delays (arrival - stream end): how much later than to_ros() says a chunk
        may arrive."""
        delays = [d for _, d in self._recent]
        return max(delays) - min(delays) if delays else 0.0

    def to_stream(self, ros_s: float) -> float:
        return ros_s - self.offset


class GestureNode(LifecycleNode):
    """Speech in, trajectories out, as a managed (lifecycle) node. configure: load the model and the robot, warm the
    model up, open the topics; activate: gesture with the speech; deactivate: fade the robot to its rest pose and
    hold it there (audio is ignored); cleanup: release everything. With `autostart` (the default) the constructor
    goes to active itself, as `ros2 run` and ha2g-bringup expect, and raises what made configure fail."""

    def __init__(self, **kwargs):
        super().__init__("gesture_node", **kwargs)
        self._params = {p.name: p for p in PARAMS}
        for p in PARAMS:
            self.declare_parameter(p.name, p.default, _descriptor(p))
        self.configured = self.active = False
        self._interfaces: list[tuple] = []  # (destroy method, entity) of what configure opened
        self._configure_error: Exception | None = None
        self.add_on_set_parameters_callback(self.on_set_parameters)
        if self.get_parameter("autostart").value:
            if self.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                raise self._configure_error
            self.trigger_activate()

    # --- lifecycle ---
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._configure()
        except Exception as error:  # noqa: BLE001 - whatever failed, the node stays unconfigured and says why
            self._release()
            self._configure_error = error
            if not self.get_parameter("autostart").value:  # with autostart the constructor raises it instead
                self.get_logger().error(f"configure failed: {error}")
            return TransitionCallbackReturn.FAILURE
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.active = True
        self.get_logger().info("active: gesturing with the speech on audio")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Fade to rest from the commit lead on (the motion already sent up to it plays as sent), then hold."""
        self.active = False
        now = self.now_s()
        for utterance in list(self.utterances):
            self._end_utterance(utterance, "aborted", "the gesture node was deactivated", now)
        self.pending_audio.clear()
        self.pending_text.clear()
        self._restart_stream()
        self.last_audio_s = None
        self.targets.truncate_from(now + self.commit_lead)
        self._replan_from = min(self._replan_from, now + self.commit_lead)
        self._next_tick_in(0.0)  # the fade goes out now, not at the next scheduled tick
        self.get_logger().info("inactive: fading to the rest pose and holding it")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _release(self) -> None:
        for utterance in list(getattr(self, "utterances", ())):
            self._end_utterance(utterance, "aborted", "the gesture node shut down", self.now_s())
        for destroy, entity in reversed(self._interfaces):
            destroy(entity)
        self._interfaces.clear()
        self.engine = self.retargeter = self.plan = None  # the model's memory goes with them
        self.configured = self.active = False

    def _keep(self, destroy, entity):
        self._interfaces.append((destroy, entity))
        return entity

    def _latched_robot_description(self, wait_s: float) -> str | None:
        """The URDF robot_state_publisher latches on robot_description (transient local), if one comes in time."""
        if wait_s <= 0:
            return None
        from rclpy.wait_for_message import wait_for_message

        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        received, msg = wait_for_message(String, self, "robot_description", qos_profile=latched, time_to_wait=wait_s)
        return msg.data if received and msg.data else None

    def _configure(self) -> None:
        problems = [m for p in PARAMS if (m := check_param(p, self.get_parameter(p.name).value))]
        get = lambda name: self.get_parameter(name).value  # noqa: E731
        latency = worst_case_latency_s(get("hop_frames"), get("lookahead_frames"), get("commit_lead_s"))
        if get("playback_delay_s") < latency:
            problems.append(f"playback_delay_s {get('playback_delay_s')} s is shorter than the pipeline's worst-case "
                            f"latency {latency:.2f} s (hop_frames {get('hop_frames')} + lookahead_frames "
                            f"{get('lookahead_frames')} at 15 fps, a {CHUNK_S:g} s audio chunk and commit_lead_s "
                            f"{get('commit_lead_s')}): every gesture frame would come too late; raise it or lower hop/lookahead")
        if problems:
            raise ValueError("invalid parameters: " + "; ".join(problems))

        # --- the engine and the robot (heavy: loaded once, before any subscription exists) ---
        from ha2g_model.engine import GestureEngine
        from ha2g_ros.retargeting import Retargeter, load_profile

        options = {"threads": get("threads")}
        if get("device").startswith("cuda"):
            options["cuda_graph"] = get("cuda_graph")
        self.engine = GestureEngine.from_checkpoint(
            get("checkpoint") or None, backend=get("backend"), hop_frames=get("hop_frames"),
            lookahead_frames=get("lookahead_frames"), speaker=get("speaker"),
            seed=None if get("seed") < 0 else get("seed"), style_per_utterance=get("style_per_utterance"),
            device=get("device"), precision=get("precision"), backend_options=options)
        # One window on silence now: the first window of a process is several times slower (allocations, caches),
        # and would otherwise make the first gesture frames late.
        try:
            self.engine.push_audio(np.zeros(3 * SAMPLE_RATE, np.float32))
            self.engine.pull_frames()
        except (ValueError, BackendError) as error:
            raise ValueError(f"the checkpoint fails on silence, a broken or diverged model? ({error})") from None
        self.engine.reset()
        urdf = get("robot_description") or self._latched_robot_description(get("robot_description_wait_s"))
        self.urdf_source = ("the robot_description parameter" if get("robot_description") else
                            "the robot_description topic" if urdf else "the profile")
        self.retargeter = Retargeter(load_profile(get("robot")), urdf_xml=urdf)
        self.retargeter.amplitude, self.retargeter.rest_blend = get("amplitude"), get("rest_blend")
        r = self.retargeter
        self.joint_names = list(r.joint_names)
        self.lower, self.upper = np.asarray(r.lower, float), np.asarray(r.upper, float)
        # The profile's speed scale makes the robot calmer than its URDF allows; fades obey the same limit.
        self.vmax = np.asarray(r.velocity_limits, float) * np.asarray(r.speed_scale, float)
        self.rest = np.asarray(r.rest_pose(), float)
        self.groups = {g: [self.joint_names.index(j) for j in joints] for g, joints in r.groups.items()}
        self.amax = np.array([r.profile.acceleration_limit_of(name) for name in self.joint_names])
        self.plan = KnotPlan(SafeMotion(MotionLimits(self.lower, self.upper, self.vmax, self.amax), FRAME_DT),
                             body=r)  # the played motion keeps the self-collision margin too
        self.commit_lead = get("commit_lead_s")
        self._sent_end: np.ndarray | None = None  # the final point of the last trajectory sent: where it holds

        # --- stream state ---
        self.vad = EnergyVAD(VadConfig(get("vad_threshold_db"), get("vad_hangover_s")))
        self.resampler = StreamResampler(SAMPLE_RATE)
        self.clock_map = StreamClock()
        self.pending_audio: list[tuple[object, float]] = []  # (AudioChunk, arrival ROS s)
        self.pending_text: list[tuple[str, float]] = []  # (message text, arrival ROS s)
        self.chunk_arrivals: deque[tuple[float, float]] = deque(maxlen=200)  # (stream end s, arrival ROS s)
        self.last_audio_s: float | None = None  # ROS time of the newest audio chunk
        self._chunk_s = 0.0  # stream seconds of the newest audio chunk: the next is expected that much later
        self.weight = 0.0  # 0 = rest pose, 1 = full gesture
        self._rested_style = False  # a new style drawn for the speech after this rest (style_per_utterance)
        self.targets = Timeline()  # the gesture frames the plan follows
        self._replan_from = math.inf  # earliest target time changed since the plan was last extended
        self._joint_index = {name: i for i, name in enumerate(self.joint_names)}
        self._state_layouts: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
        self.measured = np.full(len(self.joint_names), np.nan)  # latest plausible joint_states
        self.measured_at = np.full(len(self.joint_names), -math.inf)  # ROS time of each joint's reading
        self.skeleton_frames: deque[tuple[float, np.ndarray]] = deque()  # (play s, directions), from the one due
        self.utterances: list[Utterance] = []  # speak goals in order; the first is generating, scheduled or playing
        self._job = None  # the worker's current utterance job (concurrent.futures.Future)
        self._paused = False  # live speech paused for an utterance
        # Whole utterances are generated and retargeted here, beside the tick: a 30 s one takes seconds
        self._worker = self._keep(lambda pool: pool.shutdown(wait=True, cancel_futures=True),
                                  ThreadPoolExecutor(1, thread_name_prefix="ha2g-utterance"))
        self.compute_s: deque[float] = deque(maxlen=TIMING_WINDOW)
        self.latency_s: deque[float] = deque(maxlen=TIMING_WINDOW)
        self.stats = {"ticks": 0, "audio_chunks": 0, "bad_audio": 0, "bad_transcripts": 0, "inference_errors": 0,
                      "frames": 0, "late_frames": 0, "trajectories": 0, "dropped_audio_s": 0.0,
                      "bad_joint_states": 0, "unseen_robot_ticks": 0, "clock_jumps": 0, "audio_ahead_resets": 0}
        self._last_report = time.monotonic()
        self._last_tick_s: float | None = None
        self.cpu = StageCPU()

        # --- interfaces ---
        # Audio is a stream: sensor-data QoS (best effort, volatile: a lost chunk beats a delayed one), but a deeper
        # queue than its 5, so a tick busy with a slow window does not drop the 100 ms chunks that arrive meanwhile.
        # Taken each tick (PolledCallbackGroup), with its arrival time from the middleware.
        polled = PolledCallbackGroup()
        audio_qos = QoSProfile(depth=AUDIO_QUEUE, reliability=ReliabilityPolicy.BEST_EFFORT,
                               durability=DurabilityPolicy.VOLATILE)
        subscription = lambda *args, **kw: self._keep(self.destroy_subscription,  # noqa: E731
                                                      self.create_subscription(*args, **kw))
        publisher = lambda *args: self._keep(self.destroy_publisher, self.create_publisher(*args))  # noqa: E731
        self.audio_sub = subscription(message_class(get("audio_type")), "audio", self.on_audio, audio_qos,
                                      callback_group=polled)
        # Transcripts and commands are few and must not be lost: reliable.
        subscription(String, "transcript", self.on_transcript, 10)
        # Robot state: sensor-data QoS (best effort: only the newest reading matters), taken each tick.
        state_qos = QoSProfile(depth=JOINT_STATES_QUEUE, reliability=ReliabilityPolicy.BEST_EFFORT,
                               durability=DurabilityPolicy.VOLATILE)
        self.joint_states_sub = subscription(JointState, "joint_states", self.on_joint_states, state_qos,
                                             callback_group=polled)
        # Arrival times: the middleware's reception stamp is on the system clock, which is ROS time unless simulated
        self._stamped_arrivals = not get("use_sim_time")
        # Ticks while no audio flows: a new stream's first chunk is taken before the chunk that completes its first
        # window can arrive, so that window runs on time.
        self._idle_tick_s = min(max((get("hop_frames") + get("lookahead_frames")) * FRAME_DT - CHUNK_S, FRAME_DT),
                                MAX_TICK_S)
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.trajectory_pubs = {g: publisher(JointTrajectory, f"{g}/joint_trajectory", reliable) for g in self.groups}
        self.preview_pub = publisher(JointState, "gesture_joint_states", reliable)
        self.marker_pub = publisher(MarkerArray, "gesture_skeleton", reliable)
        self.timing_pub = publisher(String, "gesture_timing", reliable)
        # Speech stamped with the moment it must be heard (the robot's own utterances, the relayed live voice)
        self.speech_pub = publisher(SpeechAudio, "speech_audio", reliable)
        self._keep(ActionServer.destroy, ActionServer(
            self, SpeakWithGestures, "speak", self._execute_utterance, goal_callback=lambda goal: GoalResponse.ACCEPT,
            cancel_callback=lambda goal_handle: CancelResponse.ACCEPT))
        # Standard diagnostics (rqt_robot_monitor, the diagnostic aggregator): the absolute topic, as every node's.
        self.diagnostics_pub = publisher(DiagnosticArray, "/diagnostics", 10)
        self._diagnosed_at, self._diagnosed_stats = -math.inf, dict(self.stats)
        # Re-timed after every tick (_tick_period)
        self.tick_timer = self._keep(self.destroy_timer, self.create_timer(FRAME_DT, self.on_tick))
        self.configured = True
        self.get_logger().info(
            f"robot {get('robot')!r}: groups {', '.join(f'{g} ({len(j)} joints)' for g, j in self.groups.items())}; "
            f"audio {get('audio_type')} at {get('sample_rate')} Hz x{get('channels')}; hop {get('hop_frames')}, "
            f"lookahead {get('lookahead_frames')} frames, playback delay {get('playback_delay_s')} s; "
            f"backend {self.engine.backend.name} ({self.engine.backend.device}, {self.engine.backend.precision}); "
            f"URDF from {self.urdf_source}")

    # --- callbacks: validate and buffer, nothing heavy ---
    def now_s(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def on_audio(self, msg, arrival_s: float) -> None:
        if not self.active:
            return  # inactive: resting, whatever is said
        try:
            chunk = to_chunk(msg, self.get_parameter("sample_rate").value, self.get_parameter("channels").value)
        except AudioMessageError as error:
            self.stats["bad_audio"] += 1
            self.get_logger().warning(f"dropped an audio message: {error}", throttle_duration_sec=5.0)
            return
        self.pending_audio.append((chunk, arrival_s))

    def on_transcript(self, msg: String) -> None:
        if self.active:
            self.pending_text.append((msg.data, self.now_s()))

    def _state_layout(self, names) -> tuple[np.ndarray, np.ndarray]:
        """(positions in the message, our joint indices) of the commanded joints a JointState names; cached, since a
        robot sends the same names at 50-1000 Hz."""
        key = tuple(names)
        layout = self._state_layouts.get(key)
        if layout is None:
            pairs = [(k, self._joint_index[n]) for k, n in enumerate(key) if n in self._joint_index]
            layout = (np.array([k for k, _ in pairs], dtype=np.intp), np.array([i for _, i in pairs], dtype=np.intp))
            if len(self._state_layouts) > 16:  # names that keep changing: do not grow without bound
                self._state_layouts.clear()
            self._state_layouts[key] = layout
        return layout

    def on_joint_states(self, msg: JointState, arrival_s: float) -> None:
        """A reading counts from its arrival: a robot that went quiet is trusted joint_states_timeout_s from its last
        message, however long the ticks in between."""
        tolerance = self.get_parameter("joint_state_tolerance").value
        where, ours = self._state_layout(msg.name)
        where, ours = where[where < len(msg.position)], ours[where < len(msg.position)]
        values = np.asarray(msg.position, dtype=np.float64)[where]
        plausible = (np.isfinite(values) & (values >= self.lower[ours] - tolerance)
                     & (values <= self.upper[ours] + tolerance))
        self.measured[ours[plausible]], self.measured_at[ours[plausible]] = values[plausible], arrival_s
        # an implausible joint is unseen from now on: an older reading says nothing about where it is
        self.measured[ours[~plausible]], self.measured_at[ours[~plausible]] = math.nan, -math.inf
        implausible = [f"{self.joint_names[i]}={v!r}" for i, v in zip(ours[~plausible], values[~plausible].tolist())]
        if implausible:
            self.stats["bad_joint_states"] += 1
            self.get_logger().error(
                f"ignored implausible joint_states ({', '.join(implausible)}: not finite, or more than {tolerance} "
                "rad outside the URDF limits); the robot gets no new commands until they are plausible again",
                throttle_duration_sec=5.0)

    def on_set_parameters(self, params) -> SetParametersResult:
        for param in params:
            if param.name == "use_sim_time" and self.has_parameter("use_sim_time") and \
                    param.value != self.get_parameter("use_sim_time").value:
                return SetParametersResult(successful=False, reason="use_sim_time can only be set at start-up: "
                                           "switching clocks mid-stream would freeze the node mid-gesture")
            spec = self._params.get(param.name)
            if spec is None:
                continue
            problem = check_param(spec, param.value)
            if problem:
                return SetParametersResult(successful=False, reason=problem)
            if not self.configured:
                continue  # read when configure runs
            n_speakers = self.engine.model_config.n_speakers
            if param.name == "speaker" and param.value >= n_speakers:
                return SetParametersResult(successful=False, reason=f"speaker must be in [0, {n_speakers}) for this "
                                                                    f"checkpoint, got {param.value}")
        for param in params if self.configured else ():  # all valid: apply
            if param.name == "speaker":
                self.engine.set_speaker(param.value)
            elif param.name == "amplitude":
                self.retargeter.amplitude = param.value
            elif param.name == "rest_blend":
                self.retargeter.rest_blend = param.value
            elif param.name == "vad_threshold_db":
                self.vad.config.threshold_db = param.value
            elif param.name == "vad_hangover_s":
                self.vad.config.hangover_s = param.value
        return SetParametersResult(successful=True)

    # --- the pipeline, every tick ---
    def on_tick(self) -> None:
        self.cpu.start()
        self.take_audio()
        self.take_joint_states()
        self.cpu.lap("taking_messages")
        self._run_pipeline()
        self._publish_preview()
        self._publish_diagnostics()
        self.cpu.lap("publishing")
        self._next_tick_in(self._tick_period(self.now_s()))
        self.cpu.lap("other")

    def _next_tick_in(self, seconds: float) -> None:
        self.tick_timer.timer_period_ns = max(1_000_000, round(seconds * 1e9))
        self.tick_timer.reset()  # counts from now

    def _tick_period(self, now: float) -> float:
        """Seconds to the next tick. A model window can run once the audio chunk that completes it is in: while audio
        flows, the tick comes just after that chunk should arrive (from the audio's clock, the chunks' length and
        their jitter), else every _idle_tick_s; every LATE_CHUNK_POLL_S while an expected chunk is late. At the frame
        rate while utterances are pending or playing (their feedback, their scheduling once generated), while someone
        watches the preview, and on simulated time: there the arrival times of audio and joint_states are the ticks'
        own times, which only ticking every frame keeps as exact as they were."""
        if not self._stamped_arrivals or self.utterances or self.preview_pub.get_subscription_count() \
                or self.marker_pub.get_subscription_count():
            return FRAME_DT
        if self._audio_stopped(now) or not self._chunk_s or self.clock_map.offset is None:
            return self._idle_tick_s
        stream_end = self.engine.stream_time_s
        chunks = math.ceil((self.engine.next_window_s - stream_end) / self._chunk_s - 1e-6)
        # the jitter is capped: at worst a frame later than ticking every frame would take the chunk
        jitter = min(self.clock_map.jitter_s(), FRAME_DT)
        expected = self.clock_map.to_ros(stream_end + chunks * self._chunk_s) + jitter
        wait = expected + ARRIVAL_MARGIN_S - now
        return LATE_CHUNK_POLL_S if wait <= 0 else min(wait, MAX_TICK_S)

    @staticmethod
    def _take(sub, limit: int, handle) -> None:
        """Every message of a polled subscription that came since the last tick, oldest first (as rclpy's executor
        takes them), through handle(msg, info); at most `limit` (what its queue holds): never chase a flood."""
        with sub.handle:
            for _ in range(limit):
                taken = sub.handle.take_message(sub.msg_type, sub.raw)
                if taken is None:
                    return
                handle(*taken)

    def take_audio(self) -> None:
        """The audio messages that came since the last tick, into pending_audio (on_audio)."""
        self._take(self.audio_sub, AUDIO_QUEUE, lambda msg, info: self.on_audio(msg, self._arrival(info)))

    def take_joint_states(self) -> None:
        """The joint_states that came since the last tick, the newest of each publisher and set of joints read
        (on_joint_states): a ros2_control robot publishes at its controller rate, 100-1000 Hz, and a newer reading
        of the same joints from the same source supersedes the older ones. Arms and hands may come from different
        publishers, or one publisher may alternate between them: each kind of message keeps its newest."""
        newest: dict[tuple, tuple[JointState, dict]] = {}

        def keep(msg: JointState, info: dict) -> None:
            kind = (bytes(info["publisher_gid"]["data"]), tuple(msg.name))
            newest.pop(kind, None)  # re-inserted: read in the order their newest messages came
            newest[kind] = msg, info

        self._take(self.joint_states_sub, JOINT_STATES_QUEUE, keep)
        for msg, info in newest.values():
            self.on_joint_states(msg, self._arrival(info))

    def _arrival(self, info: dict) -> float:
        """ROS time (s) at which a polled message arrived: the middleware's reception stamp when ROS time is the
        system clock (exact, whenever the tick takes it), else the tick's own time (at most one tick late)."""
        received = info.get("received_timestamp", 0) if self._stamped_arrivals else 0
        if received:
            return received * 1e-9
        if self._stamped_arrivals:  # a middleware without reception stamps: tick times, every frame as on sim time
            self._stamped_arrivals = False
            self.get_logger().info("the middleware gives no reception stamps: arrival times are the ticks' own, "
                                   "which now come every frame")
        return self.now_s()

    def _run_pipeline(self) -> None:
        now = self.now_s()
        self.stats["ticks"] += 1
        if self._last_tick_s is not None and now < self._last_tick_s - CLOCK_JUMP_BACK_S:
            self.stats["clock_jumps"] += 1
            self.get_logger().warning(f"the ROS clock jumped back by {self._last_tick_s - now:.1f} s: restarting the "
                                      "stream and planning afresh from the robot's measured pose",
                                      throttle_duration_sec=5.0)
            for utterance in list(self.utterances):  # its start and end belong to the old time line
                self._end_utterance(utterance, "aborted", "the ROS clock jumped back", now)
            self._restart_stream()
            self.targets, self.plan = Timeline(), KnotPlan(self.plan.motion, self.plan.body)
            self._sent_end = None
            self.pending_audio.clear()
            self.last_audio_s, self.weight = None, 0.0
        self._last_tick_s = now
        self._run_utterances(now)
        self.cpu.lap("utterances")
        windows_run = self.engine.windows_run
        try:
            if self._live_paused():
                self.pending_audio.clear()  # the robot speaks: live speech is neither gestured nor relayed
                self.pending_text.clear()
                times, directions = np.zeros(0), None
            else:
                if self.weight == 0.0 and not self._rested_style:  # at rest: the next speech takes a new style
                    self.engine.new_style()
                self._rested_style = self.weight == 0.0
                self._ingest_audio()
                self._ingest_words()
                self.cpu.lap("audio")
                # frames of silence while the robot rests become the rest pose whatever the model says: not run
                times, directions = self.engine.pull_frames(idle=lambda begin, end: self.weight == 0.0 and not (
                    self.get_parameter("enabled").value and self.vad.speaking_during(begin, end)))
            if self.engine.windows_run > windows_run:
                self.compute_s.append(self.engine.last_compute_s)
            self.cpu.lap("model")
            if len(times):
                self._add_frames(times, directions, self.now_s())  # after the window: its time counts
                self.cpu.lap("retargeting")
                self._report_timing()
                self.cpu.lap("publishing")
            failed = False
        except Exception as error:  # noqa: BLE001 - any failure of the model must leave the robot safe and running
            failed = True
            self.stats["inference_errors"] += 1
            self.get_logger().error(f"inference failed, restarting the stream and fading to rest: {error!r}",
                                    throttle_duration_sec=5.0)
            self._restart_stream()
        if failed or self._audio_stopped(now):
            self._fade_to_rest(now)
        self.cpu.lap("other")
        # The commit lead counts from the moment the message goes out, not from the tick's start: a slow window
        # (a loaded CPU) must not eat into the time the message has to reach the controller.
        planned_at = self.now_s()
        planned = self._extend_plan(planned_at)
        self.cpu.lap("planning")
        if planned:
            self._publish_trajectories(planned_at)
        self.cpu.lap("publishing")

    def _audio_stopped(self, now: float) -> bool:
        """No audio yet, or none for audio_timeout_s: the source stopped (a quiet room still sends audio)."""
        return self.last_audio_s is None or now - self.last_audio_s > self.get_parameter("audio_timeout_s").value

    def _ingest_audio(self) -> None:
        chunks, self.pending_audio = self.pending_audio, []
        # Audio that waited longer than the playback delay can no longer be gestured on time: when compute falls
        # behind real time, drop the oldest and stay with the speech instead of lagging further behind it.
        delay = self.get_parameter("playback_delay_s").value
        total = sum(len(c.samples) / c.sample_rate for c, _ in chunks)
        while chunks and total > delay:
            dropped = len(chunks[0][0].samples) / chunks[0][0].sample_rate
            total -= dropped
            self.stats["dropped_audio_s"] += dropped
            chunks.pop(0)
            if dropped > delay:
                self.get_logger().warning(f"dropped an audio message of {dropped:.2f} s: longer than playback_delay_s "
                                          f"({delay} s), it cannot be gestured on time; send chunks of about "
                                          f"{CHUNK_S:g} s", throttle_duration_sec=5.0)
            else:
                self.get_logger().warning("inference is slower than real time: dropping audio to keep up (try a "
                                          "larger hop_frames or a faster backend)", throttle_duration_sec=5.0)
        for chunk, arrival in chunks:
            samples = self.resampler(chunk.samples, chunk.sample_rate)
            if not len(samples):
                continue
            if self.last_audio_s is not None and self._audio_stopped(arrival):
                # The source paused: the stream clock stood still while ROS time went on. Re-anchor the clock
                # map on the new audio alone (the new offset is larger, so frame times keep increasing).
                self.clock_map = StreamClock()
            self.vad.update(samples)
            self.engine.push_audio(samples)
            stream_end = self.engine.stream_time_s
            ahead = self.clock_map.ahead_s(stream_end, arrival)
            if ahead > AHEAD_LIMIT_S:
                # Re-anchor on this chunk: its frames play on time again (later targets are replaced, which the
                # plan absorbs like any change), instead of ever further in the future.
                self.stats["audio_ahead_resets"] += 1
                self.get_logger().warning(
                    f"audio arrives faster than real time ({ahead:.1f} s ahead of the clock; a stereo source on a "
                    f"mono link, two publishers on audio, or a wrong sample_rate/channels?): re-anchoring its clock",
                    throttle_duration_sec=5.0)
                self.clock_map = StreamClock()
            self.clock_map.observe(stream_end, arrival)
            self._chunk_s = len(samples) / SAMPLE_RATE
            self._relay_voice(chunk, stream_end)
            self.chunk_arrivals.append((stream_end, arrival))
            self.last_audio_s = arrival
            self.stats["audio_chunks"] += 1

    def _ingest_words(self) -> None:
        texts, self.pending_text = self.pending_text, []
        for text, arrival in texts:
            try:
                transcript = parse_transcript(text)
            except TranscriptError as error:
                self.stats["bad_transcripts"] += 1
                self.get_logger().warning(f"ignored a transcript: {error}", throttle_duration_sec=5.0)
                continue
            if self.clock_map.offset is None:  # its times cannot be placed before audio flows: retry next hop
                if self.now_s() - arrival < MAX_PENDING_S:
                    self.pending_text.append((text, arrival))
                else:
                    self.get_logger().warning(f"dropped a transcript: no audio arrived within {MAX_PENDING_S:g} s "
                                              "of it")
                continue
            if transcript.clock == "untimed":  # an ASR result: it describes the speech just heard
                end = self.clock_map.to_stream(arrival)
                start = self.vad.segment_start if self.vad.segment_start < end else max(0.0, end - 2.0)
                words = spread_words([w for w, _, _ in transcript.words], start, end)
            elif transcript.clock == "ros":
                words = [(w, self.clock_map.to_stream(s), self.clock_map.to_stream(e)) for w, s, e in transcript.words]
            else:
                words = list(transcript.words)
            self.engine.push_words(words)

    def _add_frames(self, times: np.ndarray, directions: np.ndarray, now: float) -> None:
        if not np.isfinite(directions).all():
            raise ValueError("the model produced NaN/Inf direction vectors (a broken or diverged checkpoint?)")
        delay = self.get_parameter("playback_delay_s").value
        for t, dirs in zip(times, directions):
            play = self.clock_map.to_ros(float(t)) + delay
            if play <= now + self.commit_lead:
                self.stats["late_frames"] += 1  # computed too late to be played: skip, never rush the robot
                continue
            self.targets.truncate_from(play)  # a real frame replaces frames faded in without audio
            self._replan_from = min(self._replan_from, play)
            speaking = self.vad.speaking_at(float(t)) and self.get_parameter("enabled").value
            q_prev, t_prev = self._previous_target(play)
            weight = self._step_weight(speaking, play - t_prev)
            if weight > 0.0:
                if self.weight == 0.0:  # gestures resume: the solver continues from where the robot is
                    self.retargeter.reset(q_prev)
                q_gesture = np.asarray(self.retargeter.solve(dirs, dt=FRAME_DT), float)
            else:
                q_gesture = self.rest
            self.weight = weight
            self.targets.append(play, blend(self.rest, q_gesture, weight))
            self._add_skeleton_frame(play, dirs)
            self.stats["frames"] += 1
        if len(times) and self.chunk_arrivals:
            # Latency of the oldest audio this hop covers (the hop's worst): from the arrival of the chunk holding
            # its first frame to now, just before the trajectory goes out.
            first = float(times[0])
            arrival = next((a for end, a in self.chunk_arrivals if end > first), self.chunk_arrivals[-1][1])
            self.latency_s.append(self.now_s() - arrival)

    # --- speak with gestures: whole utterances on the `speak` action (utterance.py) ---
    async def _execute_utterance(self, goal_handle):
        """Check the goal, queue it, and wait until the tick has played it (or it ended otherwise)."""
        try:
            if not self.active:
                raise UtteranceError("the gesture node is not active (lifecycle): activate it first")
            utterance = Utterance.from_goal(goal_handle, self.now_s(), self.get_parameter("max_utterance_s").value,
                                            self.get_parameter("vad_threshold_db").value)
        except UtteranceError as error:
            self.get_logger().warning(f"refused an utterance: {error}")
            goal_handle.abort()
            return SpeakWithGestures.Result(message=f"refused: {error}")
        utterance.finished = Future()
        self.utterances.append(utterance)
        self._next_tick_in(0.0)  # its generation starts now
        self._feedback(utterance, force=True)
        return await utterance.finished

    def _live_paused(self) -> bool:
        """Live speech waits while utterances are pending and while the worker still uses the engine and the
        retargeter; when it resumes, it starts a fresh stream."""
        paused = bool(self.utterances) or (self._job is not None and not self._job.done())
        if self._paused and not paused:
            self._restart_stream()
            self.last_audio_s = None
        self._paused = paused
        return paused

    def _run_utterances(self, now: float) -> None:
        for utterance in [u for u in self.utterances if u.goal_handle.is_cancel_requested]:
            self._end_utterance(utterance, "canceled", "canceled: fading to rest", now)
        waiting = next((u for u in self.utterances if u.stage is None), None)
        if waiting is not None and (self._job is None or self._job.done()):
            earlier = self.utterances.index(waiting) > 0
            # the solver continues from the utterance before, or else from where the robot is headed now
            q_from = None if earlier else self._previous_target(now + self.commit_lead)[0]
            waiting.job = self._job = self._worker.submit(self._generate, waiting, q_from)
            waiting.stage = GENERATING
        for utterance in [u for u in self.utterances if u.stage == GENERATING and u.job.done()]:
            self._schedule_utterance(utterance, self.now_s())
        current = self.utterances[0] if self.utterances else None
        if current is not None and current.start_s is not None:
            if now >= current.end_s:
                late = f"; its first {current.skipped_s:.2f} s had no gestures (ready too late)" \
                    if current.skipped_s else ""
                self._end_utterance(current, "succeeded", f"done{late}", now)
            elif now >= current.start_s:
                current.stage = PLAYING
        for utterance in self.utterances:
            self._feedback(utterance)

    def _generate(self, utterance: Utterance, q_from) -> tuple[np.ndarray, np.ndarray, float]:
        """On the worker thread: the utterance's joint targets, its gesture frames (whole-utterance mode) and the
        thread's CPU seconds for them."""
        began = time.thread_time()
        directions = self.engine.generate_utterance(utterance.mono, utterance.words, fade_to_rest=True,
                                                    sample_rate=utterance.sample_rate)
        if not np.isfinite(directions).all():
            raise ValueError("the model produced NaN/Inf direction vectors (a broken or diverged checkpoint?)")
        if q_from is not None:
            self.retargeter.reset(q_from)
        q = np.array([self.retargeter.solve(d, dt=FRAME_DT) for d in directions], float)
        return q, directions, time.thread_time() - began

    def _schedule_utterance(self, utterance: Utterance, now: float) -> None:
        """Its frames become the targets at start + i / 15 s, its speech goes out stamped start."""
        try:
            q, directions, cpu_s = utterance.job.result()
        except Exception as error:  # noqa: BLE001 - any failure of the model must leave the robot safe and running
            self.stats["inference_errors"] += 1
            self.get_logger().error(f"generating an utterance's gestures failed: {error!r}")
            self._end_utterance(utterance, "aborted", f"gesture generation failed: {error}", now)
            return
        self.cpu.add("utterances", cpu_s)
        utterance.ready_s, cut = now, now + self.commit_lead
        if self.get_parameter("utterance_policy").value == "preempt":
            for earlier in self.utterances[:self.utterances.index(utterance)]:
                self._end_utterance(earlier, "aborted", "preempted by a newer utterance", now)
        position = self.utterances.index(utterance)
        before = self.utterances[position - 1] if position else None
        start = utterance.requested_start_s
        if start is None:
            start = max(utterance.received_s + self.get_parameter("start_margin_s").value, cut + FRAME_DT)
        if before is not None:
            start = max(start, before.end_s)
        utterance.start_s = start
        times = start + np.arange(len(q)) * FRAME_DT
        due = times > cut
        if not due.any():
            self._end_utterance(utterance, "aborted", f"its gestures were ready {now - start:.2f} s after its start "
                                "time, when the utterance was over", now)
            return
        first = int(np.argmax(due))
        utterance.skipped_s, utterance.frames = first * FRAME_DT, len(q)
        begin = max(cut, before.end_s) if before is not None else cut
        self.targets.truncate_from(begin)
        while self.skeleton_frames and self.skeleton_frames[-1][0] >= begin:
            self.skeleton_frames.pop()
        get = lambda name: self.get_parameter(name).value  # noqa: E731
        # in pauses the robot rests as with live speech, but it is ready (faded in) when the words start
        weights = gesture_weights(utterance.mono, utterance.sample_rate, len(q), get("vad_threshold_db"),
                                  get("vad_hangover_s"), get("fade_in_s"), get("fade_out_s")) * get("enabled")
        targets = [blend(self.rest, qi, w) for qi, w in zip(q[first:], weights[first:])]
        # from where the motion is at `begin` to the first frame, eased, so that it plays in full at its time
        last = self.targets.last()
        t_from, q_from = last if last is not None else (begin, self._previous_target(begin)[0])
        steps = int((times[first] - t_from) / FRAME_DT)
        for k in range(1, steps):
            s = k / steps
            self.targets.append(t_from + k * FRAME_DT, blend(q_from, targets[0], s * s * (3 - 2 * s)))
        for t, target, dirs in zip(times[first:], targets, directions[first:]):
            self.targets.append(float(t), target)
            self._add_skeleton_frame(float(t), dirs)
        self.weight = float(weights[-1])
        self._replan_from = min(self._replan_from, begin)
        utterance.stage = SCHEDULED
        self._publish_speech(utterance.samples, utterance.sample_rate, utterance.channels, start,
                             utterance.goal_handle.goal_id.uuid.tobytes().hex())
        self.get_logger().info(f"utterance of {utterance.duration_s:.1f} s ready {now - utterance.received_s:.2f} s "
                               f"after the request, starts at {start:.3f} ({start - now:+.2f} s)")

    def _end_utterance(self, utterance: Utterance, outcome: str, message: str, now: float) -> None:
        """Finish a speak goal ('succeeded', 'aborted' or 'canceled'). One cut off before its end stops moving the
        robot at the commit lead (the fade to rest takes over from there) and its speech stops there too."""
        self.utterances.remove(utterance)
        if utterance.job is not None:
            utterance.job.cancel()
        cut = now + self.commit_lead
        if outcome != "succeeded" and utterance.start_s is not None and utterance.end_s > cut:
            self.targets.truncate_from(cut)
            self._replan_from = min(self._replan_from, cut)
            self._publish_speech(np.zeros(0, np.float32), utterance.sample_rate, utterance.channels, cut,
                                 utterance.goal_handle.goal_id.uuid.tobytes().hex())
        goal = utterance.goal_handle
        if goal.is_active:
            if outcome == "succeeded":
                goal.succeed()
            elif outcome == "canceled" and goal.is_cancel_requested:
                goal.canceled()
            else:
                goal.abort()
        if outcome != "succeeded":
            self.get_logger().info(f"utterance {outcome}: {message}")
        result = SpeakWithGestures.Result(duration_s=utterance.duration_s, frames=utterance.frames, message=message)
        if utterance.start_s is not None:
            result.start_time = Time(seconds=utterance.start_s).to_msg()
        if utterance.ready_s is not None:
            result.ready_after_s = utterance.ready_s - utterance.received_s
        if not utterance.finished.done():
            utterance.finished.set_result(result)

    def _feedback(self, utterance: Utterance, force: bool = False) -> None:
        """Feedback on each change of stage, and about five times a second while it plays."""
        stage = GENERATING if utterance.stage is None else utterance.stage
        progress = 0.0
        if stage == PLAYING:
            progress = min(1.0, (self.now_s() - utterance.start_s) / utterance.duration_s)
        key = (stage, round(progress * utterance.duration_s * 5))
        if key == utterance.last_feedback and not force:
            return
        utterance.last_feedback = key
        feedback = SpeakWithGestures.Feedback(stage=stage, progress=progress)
        if utterance.start_s is not None:
            feedback.start_time = Time(seconds=utterance.start_s).to_msg()
        utterance.goal_handle.publish_feedback(feedback)

    def _publish_speech(self, samples: np.ndarray, sample_rate: int, channels: int, start_s: float,
                        utterance_id: str) -> None:
        """Speech on speech_audio, stamped with the ROS time its first sample must be heard. No samples: the rest
        of that utterance from the stamp on is not to be played (canceled or preempted)."""
        msg = SpeechAudio(sample_rate=sample_rate, channels=channels, utterance_id=utterance_id)
        msg.header.stamp = Time(seconds=start_s).to_msg()
        msg.samples.frombytes(np.ascontiguousarray(samples, np.float32).tobytes())
        self.speech_pub.publish(msg)

    def _relay_voice(self, chunk, stream_end: float) -> None:
        """The live chunk on speech_audio, stamped to be heard when its gestures play: voice and gesture meet."""
        if not self.get_parameter("relay_voice").value or self.speech_pub.get_subscription_count() == 0:
            return
        start = self.clock_map.to_ros(stream_end - len(chunk.samples) / chunk.sample_rate)
        self._publish_speech(chunk.samples, chunk.sample_rate, 1, start + self.get_parameter("playback_delay_s").value,
                             "")

    def _add_skeleton_frame(self, play: float, directions: np.ndarray) -> None:
        while self.skeleton_frames and self.skeleton_frames[-1][0] >= play:
            self.skeleton_frames.pop()  # replaced
        self.skeleton_frames.append((play, directions))

    def _step_weight(self, speaking: bool, dt: float) -> float:
        fade = self.get_parameter("fade_in_s" if speaking else "fade_out_s").value
        step = dt / fade
        return min(1.0, self.weight + step) if speaking else max(0.0, self.weight - step)

    def _sees_robot(self, now: float) -> bool:
        return bool(np.all(now - self.measured_at <= self.get_parameter("joint_states_timeout_s").value))

    def _previous_target(self, play: float) -> tuple[np.ndarray, float]:
        """Target and time of the frame before one due at `play`: the last target, or where the robot is."""
        last = self.targets.last()
        if last is not None:
            return last[1], last[0]
        return np.where(np.isfinite(self.measured), self.measured, self.rest), play - FRAME_DT

    def _fade_to_rest(self, now: float) -> None:
        """No audio (source stopped) or no model (inference failed): move toward rest on the node's own clock."""
        horizon = now + self.get_parameter("playback_delay_s").value
        last = self.targets.last()
        t = max(last[0] if last else now, now + self.commit_lead)
        if last is not None and self.weight == 0.0 and np.array_equal(last[1], self.rest):
            return  # resting already: the plan settles on the last target
        while t + FRAME_DT <= horizon:
            t += FRAME_DT
            q_prev, t_prev = self._previous_target(t)
            weight = self._step_weight(False, t - t_prev)
            # shrink the pose toward rest in step with the weight: rest exactly when the weight reaches 0
            target = blend(self.rest, q_prev, weight / self.weight) if self.weight > 0 else self.rest
            self.weight = weight
            self.targets.append(t, target)

    def _restart_stream(self) -> None:
        self.engine.reset()
        self.vad.reset()
        self.resampler = StreamResampler(SAMPLE_RATE)
        self.clock_map = StreamClock()
        self.chunk_arrivals.clear()

    # --- the safe motion plan ---
    def _extend_plan(self, now: float) -> bool:
        """Plan knots for the new targets (KnotPlan.update); True when there is something new to publish. An unseen
        robot gets no new knots: the braking tail already sent stops it within its limits."""
        self.targets.forget_before(now - FRAME_DT, keep=2)
        last = self.targets.last()
        end = last[0] if last is not None else -math.inf
        if end <= now + self.commit_lead:
            if last is None or self.plan.holds_still():
                self.plan.commit_braking(now + self.commit_lead)
                return False
            # The targets ended before the plan caught up with them (a fade to rest is quicker than the acceleration
            # limits allow): go on toward the last one, held, until the plan stands still there. Two periods: the
            # plan's last knot may lie up to one period beyond the commit time, and one more knot must follow it.
            end = now + self.commit_lead + 2 * FRAME_DT
        if not self._sees_robot(now):
            self.plan.commit_braking(now + self.commit_lead)
            self.stats["unseen_robot_ticks"] += 1
            timeout = self.get_parameter("joint_states_timeout_s").value
            stale = [n for n, t in zip(self.joint_names, self.measured_at) if not now - t <= timeout]
            self.get_logger().error(f"not commanding the robot: no recent plausible joint_states for "
                                    f"{', '.join(stale)}", throttle_duration_sec=5.0)
            return False
        if self.plan.at_rest_before(now + self.commit_lead):
            _, ahead = self.targets.after(now + self.commit_lead)
            if np.abs((ahead if len(ahead) else last[1]) - self.measured).max() < STILL:
                return False  # standing where the targets are: the controller holds its last point
        # An utterance's targets reach far ahead; knots are planned (and sent) no further than live speech's
        # would be, in steps of half that, so that no tick plans for long and every message keeps the commit lead.
        ahead = self.get_parameter("playback_delay_s").value
        if end > now + self.commit_lead + ahead:
            planned_to = self.plan.times[-1] if len(self.plan) else -math.inf
            if planned_to >= now + self.commit_lead + ahead / 2 and self._replan_from > planned_to:
                return False
            end = now + self.commit_lead + ahead
        changed_from, self._replan_from = self._replan_from, math.inf
        return self.plan.update(now, self.commit_lead, self.targets.at, end, self.measured.copy(),
                                changed_from) > 0

    # --- publishing ---
    def _publish_trajectories(self, now: float) -> None:
        self.plan.forget_before(now)
        times, positions, velocities = self.plan.to_send()
        if self._sent_end is not None and np.abs(velocities).max() <= STILL and \
                np.abs(positions - self._sent_end).max() <= STILL:
            return  # the controller already holds this pose (the last message's end): resting needs no messages
        self._sent_end = positions[-1]
        for group, index in self.groups.items():
            msg = build_trajectory([self.joint_names[i] for i in index], times, positions[:, index],
                                   velocities[:, index])
            self.trajectory_pubs[group].publish(msg)
        self.stats["trajectories"] += 1

    def _publish_preview(self) -> None:
        """The previews cost a tenth of the node's time: built only for someone listening."""
        now = self.now_s()
        while len(self.skeleton_frames) > 1 and self.skeleton_frames[1][0] <= now:
            self.skeleton_frames.popleft()  # kept from the frame due now on, listened to or not
        wants_state, wants_markers = (p.get_subscription_count() > 0 for p in (self.preview_pub, self.marker_pub))
        if not (wants_state or wants_markers):
            return
        q = self.targets.at(now)
        if q is None:
            return
        stamp = self.get_clock().now().to_msg()
        if wants_state:
            state = JointState(name=self.joint_names, position=q.tolist())
            state.header.stamp = stamp
            self.preview_pub.publish(state)
        due = self.skeleton_frames[0][1] if self.skeleton_frames and self.skeleton_frames[0][0] <= now else None
        if wants_markers and due is not None:
            self.marker_pub.publish(self._skeleton_markers(due, stamp))

    def _skeleton_markers(self, directions: np.ndarray, stamp) -> MarkerArray:
        skeleton = self.engine.skeleton
        joints = to_body_frame(directions_to_positions(np.asarray(directions, np.float32), skeleton), skeleton)
        lines = Marker(ns="human_skeleton", id=0, type=Marker.LINE_LIST, action=Marker.ADD)
        lines.header.frame_id, lines.header.stamp = self.get_parameter("frame_id").value, stamp
        lines.scale.x = 0.01
        lines.color.r, lines.color.g, lines.color.b, lines.color.a = 0.1, 0.6, 1.0, 1.0
        lines.pose.orientation.w = 1.0
        for parent, child in skeleton.bones:
            lines.points += [Point(x=float(a), y=float(b), z=float(c)) for a, b, c in (joints[parent], joints[child])]
        return MarkerArray(markers=[lines])

    def _report_timing(self) -> None:
        if self.timing_pub.get_subscription_count() == 0 and time.monotonic() - self._last_report <= 10.0:
            return
        compute = np.array(self.compute_s or [math.nan]) * 1e3
        latency = np.array(self.latency_s or [math.nan]) * 1e3
        report = {"compute_ms_mean": float(compute.mean()), "compute_ms_p95": float(np.percentile(compute, 95)),
                  "latency_ms_mean": float(latency.mean()), "latency_ms_p95": float(np.percentile(latency, 95)),
                  "hop_ms": self.get_parameter("hop_frames").value * FRAME_DT * 1e3,
                  "speaking": self.vad.speaking, "gesture_weight": self.weight, **self.stats}
        self.timing_pub.publish(String(data=json.dumps(report)))
        if time.monotonic() - self._last_report > 10.0:
            self._last_report = time.monotonic()
            self.get_logger().info(
                f"hop compute {report['compute_ms_mean']:.1f} ms (p95 {report['compute_ms_p95']:.1f}), audio -> "
                f"trajectory latency {report['latency_ms_mean']:.0f} ms (p95 {report['latency_ms_p95']:.0f}), "
                f"{self.stats['late_frames']} late frames, {self.stats['bad_audio']} bad audio messages")

    def _publish_diagnostics(self) -> None:
        """Once a second (ROS time) on /diagnostics: WARN for anything that went wrong since the last report (late frames,
        dropped or malformed input, an unseen robot, clock trouble), ERROR for inference failures, else OK."""
        now = self.now_s()
        if 0 <= now - self._diagnosed_at < DIAGNOSTICS_PERIOD_S:  # (a clock that jumped back reports at once)
            return
        since = {k: v - self._diagnosed_stats.get(k, 0) for k, v in self.stats.items()}
        self._diagnosed_at, self._diagnosed_stats = now, dict(self.stats)
        problems = [f"{since[k]:g} {what}" for k, what in DIAGNOSED.items() if since[k] > 0]
        if since["inference_errors"]:
            level = DiagnosticStatus.ERROR
            problems.insert(0, f"{since['inference_errors']} inference failures (fading to rest)")
        else:
            level = DiagnosticStatus.WARN if problems else DiagnosticStatus.OK
        state = "gesturing" if self.weight > 0 else "listening" if self.active else "inactive: resting"
        compute, latency = np.array(self.compute_s or [math.nan]) * 1e3, np.array(self.latency_s or [math.nan]) * 1e3
        values = {"state": state, "speaking": self.vad.speaking, "gesture_weight": round(self.weight, 3),
                  "robot_seen": self._sees_robot(now),
                  "compute_ms_mean": round(float(compute.mean()), 2), "compute_ms_p95": round(
                      float(np.percentile(compute, 95)), 2), "latency_ms_mean": round(float(latency.mean()), 1),
                  "latency_ms_p95": round(float(np.percentile(latency, 95)), 1), **self.stats,
                  **{f"cpu_percent_{k}": round(v, 2) for k, v in self.cpu.shares().items()}}
        status = DiagnosticStatus(
            level=level, name=f"{self.get_fully_qualified_name()}: gestures",
            message="; ".join(problems) + " in the last second" if problems else state,
            hardware_id=self.get_parameter("robot").value,
            values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        self.diagnostics_pub.publish(msg)


def main(args=None):
    from ha2g_ros.bringup import run_node

    run_node(GestureNode, "gesture_node", args)


if __name__ == "__main__":
    main()
