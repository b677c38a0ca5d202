"""ros2 launch ha2g_ros gestures.launch.py [robot:=pepper] [audio_source:=file audio_file:=speech.wav] ...

Starts the microphone node and the gesture node (and, with speech_player:=sounddevice or wav, the speech player
that plays the robot's utterances and the relayed voice at their stamps) with the package's params file (config/gestures.yaml, the same one
`ha2g-bringup` reads). Launch arguments left empty keep the params file's value; only what users switch per run is
exposed here. Remap the trajectory topics onto your controllers with `remappings`, e.g.

    ros2 launch ha2g_ros gestures.launch.py namespace:=robot1 \
        remappings:="left_arm/joint_trajectory:=/left_arm_controller/joint_trajectory
                     right_arm/joint_trajectory:=/right_arm_controller/joint_trajectory"

Either node ending (a wrong robot name, a missing checkpoint, no sound card: its reason is a FATAL line in the ROS
log) ends the whole launch: the pipeline is useless with one of them gone.
"""
from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

PARAMS_FILE = Path(get_package_share_directory("ha2g_ros")) / "config" / "gestures.yaml"
# name: (default, description, choices or None). Empty choices ("") keep the params file's value.
ARGUMENTS = {
    "params_file": (str(PARAMS_FILE), "the params YAML of both nodes", None),
    "robot": ("", "robot profile name or YAML path (empty: the params file's)", None),
    "checkpoint": ("", "HA2G checkpoint directory (empty: the params file's, i.e. the shipped default)", None),
    "backend": ("", "inference backend (empty: the params file's)", ["", "auto", "onnxruntime", "torch", "tensorrt"]),
    "audio_source": ("", "device, file, or none to take `audio` from another node (empty: the params file's)",
                     ["", "device", "file", "none"]),
    "audio_file": ("", "sound file for audio_source:=file", None),
    "transcript_file": ("", "word timings JSON published with the file", None),
    "remappings": ("", "space-separated from:=to topic remappings applied to both nodes", None),
    "namespace": ("", "namespace of both nodes", None),
    "use_sim_time": ("false", "follow /clock (a simulator, a rosbag) instead of the system clock", ["true", "false"]),
    "log_level": ("info", "lowest severity both nodes log", ["debug", "info", "warn", "error", "fatal"]),
    "speech_player": ("none", "also start the speech player: on the sound card (sounddevice), into speech_wav "
                      "(wav), or not (none)", ["none", "sounddevice", "wav"]),
    "speech_wav": ("", "WAV file written by speech_player:=wav", None),
    "autostart": ("true", "configure and activate the gesture node (a lifecycle node) at start; false leaves it "
                  "unconfigured for a lifecycle manager (ros2 lifecycle set)", ["true", "false"]),
}


def _remappings(text: str) -> list[tuple[str, str]]:
    remappings = []
    for pair in text.split():
        source, separator, target = pair.partition(":=")
        if not separator or not source or not target:
            raise ValueError(f"remapping {pair!r} is not of the form from:=to")
        remappings.append((source, target))
    return remappings


def _end_launch_when_it_exits(name: str):
    def on_exit(event, context):
        return Shutdown(reason=f"{name} exited with code {event.returncode}")
    return on_exit


def _node(name: str, value: dict, overrides: dict) -> Node:
    """One of the two nodes: the params file, then the launch arguments' overrides. launch_ros keys the overrides by
    the node's full name, which comes after the file's sections and so wins over them (docs/ros.md)."""
    return Node(package="ha2g_ros", executable=name, name=name, namespace=value["namespace"],
                parameters=[value["params_file"], {**overrides, "use_sim_time": value["use_sim_time"] == "true"}],
                remappings=_remappings(value["remappings"]), ros_arguments=["--log-level", value["log_level"]],
                on_exit=_end_launch_when_it_exits(name), output="screen", emulate_tty=True)


def _nodes(context):
    value = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    gesture = {name: value[name] for name in ("robot", "checkpoint", "backend") if value[name]}
    gesture["autostart"] = value["autostart"] == "true"
    nodes = [_node("gesture_node", value, gesture)]
    if value["audio_source"] != "none":
        microphone = {"source": value["audio_source"], "file": value["audio_file"],
                      "transcript_file": value["transcript_file"]}
        nodes.append(_node("microphone_node", value, {k: v for k, v in microphone.items() if v}))
    if value["speech_player"] != "none":
        player = {"output": value["speech_player"], "wav_file": value["speech_wav"]}
        nodes.append(_node("speech_player", value, {k: v for k, v in player.items() if v}))
    return nodes


def generate_launch_description():
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=description, choices=choices)
         for name, (default, description, choices) in ARGUMENTS.items()]
        + [OpaqueFunction(function=_nodes)])
