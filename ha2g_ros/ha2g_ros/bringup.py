"""`ha2g-bringup`: the microphone node and the gesture node in one process, with the one params file.

What `ros2 launch ha2g_ros gestures.launch.py` starts, for machines with rclpy but without launch/launch_ros
(e.g. the ROS 2 wheels from PyPI). Both nodes spin in one SingleThreadedExecutor. Examples:

    ha2g-bringup                                         # microphone -> gestures for Pepper
    ha2g-bringup --audio-source file --audio-file speech.wav --transcript-file speech.json
    ha2g-bringup --robot my_robot.yaml -- --ros-args -r left_arm/joint_trajectory:=/left_arm_controller/joint_trajectory
    ha2g-bringup --simulated-robot                       # no robot: a simulated one plays the trajectories
    ha2g-bringup --no-microphone --speech-player sounddevice   # the robot speaks (ha2g-say) and gestures with it

ROS networking follows your environment (ROS_DOMAIN_ID, ROS_AUTOMATIC_DISCOVERY_RANGE), as on any robot; only
AMENT_PREFIX_PATH gets a default (this Python's prefix) so pip-installed ROS 2 wheels find their resources.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import yaml

PACKAGE = "ha2g_ros"
SOURCE_CONFIG = Path(__file__).resolve().parents[1] / "config" / "gestures.yaml"


def default_environment() -> None:
    """ROS 2 wheels from PyPI find their message libraries through the ament index of their own prefix."""
    os.environ.setdefault("AMENT_PREFIX_PATH", sys.prefix)


# Distros older than Iron have no ROS_AUTOMATIC_DISCOVERY_RANGE: only ROS_LOCALHOST_ONLY keeps their traffic local.
DISTROS_WITHOUT_DISCOVERY_RANGE = ("foxy", "galactic", "humble")


def loopback_discovery() -> None:
    """ROS 2 discovery on this machine only, on any distro: ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST, and
    ROS_LOCALHOST_ONLY=1 where ROS_DISTRO predates the range; newer distros warn about that deprecated variable (and
    then ignore the range), so it is removed there. Without ROS_DISTRO (the PyPI wheels: Kilted) the range is used."""
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    if os.environ.get("ROS_DISTRO", "").lower() in DISTROS_WITHOUT_DISCOVERY_RANGE:
        os.environ["ROS_LOCALHOST_ONLY"] = "1"
    else:
        os.environ.pop("ROS_LOCALHOST_ONLY", None)


def configuration_errors(*node_errors) -> tuple:
    """What nodes raise at start-up when their configuration is wrong (parameter, checkpoint, robot, backend, plus
    `node_errors`, e.g. a missing audio device): reported in one line without a traceback."""
    from rclpy.exceptions import InvalidParameterValueException

    from ha2g_model.backends import BackendError

    return (*node_errors, InvalidParameterValueException, ValueError, OSError, BackendError)


def run_node(node_class, executable: str, args=None, node_errors: tuple = ()) -> None:
    """The `ros2 run` entry point of one node: spin it until Ctrl-C or shutdown, then clean up in order.

    A configuration error at start-up ends the process with exit code 1 and one FATAL line on the node's own logger
    (console, the ROS log file, and /rosout while the half-built node exists), so `ros2 launch` records why. Repeated
    SIGINTs (a terminal's process-group one plus the one launch forwards) stop it once, cleanly, with exit code 0.
    `node_errors` come from the node's own module: under `python -m` that module is __main__, so they can only be
    named by the caller."""
    default_environment()
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions

    interrupted = _stop_on_signals()
    # rclpy's own handlers would shut the context down from another thread while a callback still uses it
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    # Named before its constructor runs, so a constructor that fails still has the node's logger to report through.
    node = node_class.__new__(node_class)
    constructed, executor = False, None
    try:
        node.__init__()
        constructed = True
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        with _woken_by_signals(node):
            while not interrupted and rclpy.ok():
                executor.spin_once()
    except ExternalShutdownException:
        pass
    except configuration_errors(*node_errors) as error:
        _logger_of(node, executable).fatal(str(error))
        raise SystemExit(1) from None
    finally:
        if executor is not None:
            executor.shutdown()
        if constructed:
            node.destroy_node()
        rclpy.try_shutdown()  # also destroys a half-built node: the context tracks every node it created


def _stop_on_signals() -> list:
    """SIGINT or SIGTERM stops the spin loop of run_node and ha2g-bringup: the handler sets a flag (the returned
    list is non-empty) that the loop reads between callbacks, and later signals are ignored (launch forwards SIGINT
    to a node that the terminal's Ctrl-C already reached). Nothing is raised or shut down under a running callback:
    a KeyboardInterrupt lands wherever the interpreter happens to be (inside rclpy's Task constructor it left a
    half-built task whose destructor printed a traceback), and rclpy's own handlers invalidate the context from
    another thread."""
    import signal

    interrupted = []

    def on_signal(signum, frame):
        for name in (signal.SIGINT, signal.SIGTERM):
            signal.signal(name, signal.SIG_IGN)
        interrupted.append(signum)

    for name in (signal.SIGINT, signal.SIGTERM):
        signal.signal(name, on_signal)
    return interrupted


@contextmanager
def _woken_by_signals(node):
    """While inside, a signal makes the executor's spin_once return, so a spin loop can wait without a timeout (a
    0.1 s timeout woke an idle node ten times a second, each wake costing as much as a gesture tick). Python runs
    the handler of _stop_on_signals only once the main thread is back from the middleware's wait; the C-level
    signal.set_wakeup_fd is read by a thread that triggers a guard condition of `node`, whose (empty) callback ends
    the wait."""
    import signal
    import threading

    guard = node.create_guard_condition(lambda: None)
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    previous = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)

    def wake():
        while os.read(read_fd, 64):  # empty: the write end closed on leaving
            guard.trigger()

    thread = threading.Thread(target=wake, name="signal-wake", daemon=True)
    thread.start()
    try:
        yield
    finally:
        signal.set_wakeup_fd(previous)
        os.close(write_fd)
        thread.join()
        os.close(read_fd)
        node.destroy_guard_condition(guard)


def _logger_of(node, executable: str):
    """The node's own logger (its namespaced name), or the executable's where rclpy's Node never came to exist."""
    import rclpy.logging

    try:
        return node.get_logger()
    except AttributeError:
        return rclpy.logging.get_logger(executable)


def params_file() -> Path:
    """config/gestures.yaml: the source checkout's when running from one, else the installed share/ copy."""
    if SOURCE_CONFIG.is_file():
        return SOURCE_CONFIG
    from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

    try:
        installed = Path(get_package_share_directory(PACKAGE)) / "config" / "gestures.yaml"
    except PackageNotFoundError:
        installed = None
    if installed is None or not installed.is_file():
        raise FileNotFoundError(f"config/gestures.yaml not found beside the sources ({SOURCE_CONFIG}) nor in the "
                                f"installed share/{PACKAGE}; reinstall the package or pass --params-file")
    return installed


def params_file_values(path: str | Path, node_fqn: str) -> dict:
    """The parameters a params file gives the node named `node_fqn` (e.g. /robot1/gesture_node), by rcl's rules:
    every section whose key matches (`/*` one namespace token, `/**` any number) applies, in the order the keys
    appear, later ones winning (rclpy's and rclcpp's wildcard matching, ros2/rclpy#987)."""
    values = {}
    for key, section in (yaml.safe_load(Path(path).read_text()) or {}).items():
        pattern = re.escape("/" + key.lstrip("/")).replace(r"/\*\*", r"(/\w+)*").replace(r"/\*", r"(/\w+)")
        if re.fullmatch(pattern, node_fqn):
            values.update((section or {}).get("ros__parameters", {}))
    return values


def overrides(args: argparse.Namespace) -> tuple[list, list]:
    """Parameters given on the command line: (microphone node's, gesture node's). They beat the params file."""
    from rclpy.parameter import Parameter

    microphone = {"source": args.audio_source, "device": args.device,
                  "file": args.audio_file and str(Path(args.audio_file).resolve()),
                  "transcript_file": args.transcript_file and str(Path(args.transcript_file).resolve())}
    gesture = {"robot": args.robot, "checkpoint": args.checkpoint, "backend": args.backend}
    return ([Parameter(k, value=v) for k, v in microphone.items() if v],
            [Parameter(k, value=v) for k, v in gesture.items() if v])


def create_nodes(context, mic_overrides=(), gesture_overrides=(), microphone: bool = True,
                 simulated_robot: bool = False, speech_player_overrides=None) -> list:
    """The bringup's nodes in `context` (initialised with the params file): [microphone?, gesture, simulated
    robot?, speech player?]. The simulated robot starts at the rest pose; the speech player comes with
    speech_player_overrides (a list, possibly empty)."""
    from ha2g_ros.gesture_node import GestureNode
    from ha2g_ros.microphone_node import MicrophoneNode
    from ha2g_ros.simulated_robot import SimulatedRobot

    nodes = []
    try:
        if microphone:
            nodes.append(MicrophoneNode(context=context, parameter_overrides=list(mic_overrides)))
        gesture = GestureNode(context=context, parameter_overrides=list(gesture_overrides))
        nodes.append(gesture)
        if simulated_robot:
            rest = dict(zip(gesture.joint_names, gesture.rest.tolist()))
            nodes.append(SimulatedRobot(gesture.retargeter.groups, rest, context=context))
        if speech_player_overrides is not None:
            from ha2g_ros.speech_player import SpeechPlayer

            nodes.append(SpeechPlayer(context=context, parameter_overrides=list(speech_player_overrides)))
    except BaseException:
        for node in nodes:
            node.destroy_node()
        raise
    return nodes


def parse_args(argv=None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(prog="ha2g-bringup", description=__doc__.split("\n\n")[0],
                                     epilog="Arguments after `--` go to ROS (e.g. --ros-args -r from:=to).")
    parser.add_argument("--params-file", type=Path, help="params YAML (default: the package's config/gestures.yaml)")
    parser.add_argument("--robot", help="robot profile name or YAML path")
    parser.add_argument("--checkpoint", help="HA2G checkpoint directory (default: the shipped one)")
    parser.add_argument("--backend", help="torch, onnxruntime, tensorrt or auto")
    parser.add_argument("--audio-source", choices=("device", "file"), help="microphone or a file in real time")
    parser.add_argument("--audio-file", help="sound file for --audio-source file")
    parser.add_argument("--transcript-file", help="word timings JSON published with the file")
    parser.add_argument("--device", help="input device name or index")
    parser.add_argument("--no-microphone", action="store_true", help="only the gesture node (audio comes from "
                                                                     "elsewhere)")
    parser.add_argument("--simulated-robot", action="store_true",
                        help="no robot: a simulated one plays the trajectories and publishes joint_states")
    parser.add_argument("--speech-player", choices=("sounddevice", "wav"),
                        help="also play the speech_audio topic (the robot's utterances, the relayed voice) at its "
                             "stamps: on the sound card, or into --speech-wav")
    parser.add_argument("--speech-wav", help="WAV file for --speech-player wav")
    parser.add_argument("--duration", type=float, help="stop after this many seconds (default: run until Ctrl-C)")
    argv = sys.argv[1:] if argv is None else list(argv)
    ros_args = argv[argv.index("--") + 1:] if "--" in argv else []
    args = parser.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    return args, ros_args


def main(argv=None) -> None:
    default_environment()
    args, ros_args = parse_args(argv)
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions

    from ha2g_ros.microphone_node import MicrophoneError
    from ha2g_ros.speech_player import SpeechPlayerError

    params = args.params_file or params_file()
    if not params.is_file():
        raise SystemExit(f"ha2g-bringup: params file {params} does not exist")
    if ros_args and ros_args[0] != "--ros-args":
        ros_args = ["--ros-args"] + ros_args
    interrupted = _stop_on_signals()  # as in run_node: a flag, no exception, no rclpy handlers
    rclpy.init(args=["ha2g-bringup", "--ros-args", "--params-file", str(params), *ros_args[1:]],
               signal_handler_options=SignalHandlerOptions.NO)
    nodes, executor = [], None
    try:
        mic, gesture = overrides(args)
        player = None
        if args.speech_player:
            from rclpy.parameter import Parameter

            player = [Parameter("output", value=args.speech_player)]
            player += [Parameter("wav_file", value=str(Path(args.speech_wav).resolve()))] if args.speech_wav else []
        nodes = create_nodes(rclpy.get_default_context(), mic, gesture, microphone=not args.no_microphone,
                             simulated_robot=args.simulated_robot, speech_player_overrides=player)
        executor = SingleThreadedExecutor()
        for node in nodes:
            executor.add_node(node)
        deadline = None if args.duration is None else time.monotonic() + args.duration
        with _woken_by_signals(nodes[0]):
            while not interrupted and rclpy.ok() and (deadline is None or time.monotonic() < deadline):
                executor.spin_once(timeout_sec=None if deadline is None else max(0.0, deadline - time.monotonic()))
    except configuration_errors(MicrophoneError, SpeechPlayerError) as error:
        raise SystemExit(f"ha2g-bringup: {error}") from None
    except ExternalShutdownException:
        pass
    finally:
        if executor is not None:
            executor.shutdown()
        for node in nodes:
            node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
