"""ros2 launch ha2g_ros gestures.launch.py [robot:=pepper] [audio_source:=file audio_file:=speech.wav] ...

Starts the microphone node and the gesture node with the package's params file (config/gestures.yaml, the same one
`ha2g-bringup` reads). Launch arguments left empty keep the params file's value; only what users switch per run is
exposed here. Remap the trajectory topics onto your controllers with `remappings`, e.g.

    ros2 launch ha2g_ros gestures.launch.py \
        remappings:="left_arm/joint_trajectory:=/left_arm_controller/joint_trajectory
                     right_arm/joint_trajectory:=/right_arm_controller/joint_trajectory"
"""
from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

PARAMS_FILE = Path(get_package_share_directory("ha2g_ros")) / "config" / "gestures.yaml"
ARGUMENTS = {
    "params_file": (str(PARAMS_FILE), "the params YAML of both nodes"),
    "robot": ("", "robot profile name or YAML path (empty: the params file's)"),
    "checkpoint": ("", "HA2G checkpoint directory (empty: the params file's, i.e. the shipped default)"),
    "backend": ("", "torch, onnxruntime, tensorrt or auto (empty: the params file's)"),
    "audio_source": ("", "device, file, or none to take `audio` from another node (empty: the params file's)"),
    "audio_file": ("", "sound file for audio_source:=file"),
    "transcript_file": ("", "word timings JSON published with the file"),
    "remappings": ("", "space-separated from:=to topic remappings applied to both nodes"),
    "namespace": ("", "namespace of both nodes"),
}


def _nodes(context):
    value = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    remappings = []
    for pair in value["remappings"].split():
        source, separator, target = pair.partition(":=")
        if not separator or not source or not target:
            raise ValueError(f"remapping {pair!r} is not of the form from:=to")
        remappings.append((source, target))
    common = {"namespace": value["namespace"], "remappings": remappings, "output": "screen",
              "emulate_tty": True}
    gesture = {name: value[name] for name in ("robot", "checkpoint", "backend") if value[name]}
    nodes = [Node(package="ha2g_ros", executable="gesture_node", name="gesture_node",
                  parameters=[value["params_file"], gesture], **common)]
    if value["audio_source"] != "none":
        microphone = {"source": value["audio_source"], "file": value["audio_file"],
                      "transcript_file": value["transcript_file"]}
        nodes.append(Node(package="ha2g_ros", executable="microphone_node", name="microphone_node",
                          parameters=[value["params_file"], {k: v for k, v in microphone.items() if v}], **common))
    return nodes


def generate_launch_description():
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=description)
         for name, (default, description) in ARGUMENTS.items()]
        + [OpaqueFunction(function=_nodes)])
