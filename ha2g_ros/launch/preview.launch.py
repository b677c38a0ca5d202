"""ros2 launch ha2g_ros preview.launch.py [robot:=pepper] [audio_source:=file audio_file:=speech.wav] ...

Working without a robot: gestures.launch.py (every argument of it applies here), plus robot_state_publisher turning
the gesture node's preview (`gesture_joint_states`, the motion as the robot would play it) into TF for the robot's
URDF, and RViz with config/preview.rviz: the robot model, its frames and the human skeleton the node follows
(`gesture_skeleton`). Needs robot_state_publisher and rviz2 (apt: ros-$ROS_DISTRO-robot-state-publisher,
ros-$ROS_DISTRO-rviz2). Closing RViz ends the preview.

Nothing publishes `joint_states` here, so the gesture node sees no robot and commands none (docs/ros.md): the preview
shows the motion it would send. `ha2g-bringup --simulated-robot` plays it on a simulated robot instead.
"""
import importlib.util
from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch.actions import OpaqueFunction, Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

RVIZ_CONFIG = Path(get_package_share_directory("ha2g_ros")) / "config" / "preview.rviz"


def _gestures_launch():
    """gestures.launch.py, installed beside this file, as a module: its arguments and nodes are the preview's."""
    spec = importlib.util.spec_from_file_location("ha2g_gestures_launch", Path(__file__).with_name("gestures.launch.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def robot_description(robot: str, params_file: str, node_fqn: str) -> str:
    """The URDF the gesture node retargets onto: its `robot_description` parameter, else its robot profile's URDF
    (the launch argument's robot, else the params file's, else the node's default)."""
    from ha2g_ros.bringup import params_file_values
    from ha2g_ros.gesture_node import PARAMS
    from ha2g_ros.retargeting import load_profile
    from ha2g_ros.retargeting.robot import resolve_urdf

    values = {p.name: p.default for p in PARAMS} | params_file_values(params_file, node_fqn)
    if robot == "" and values["robot_description"]:
        return values["robot_description"]
    return resolve_urdf(load_profile(robot or values["robot"]).urdf).read_text()


def _preview_nodes(context):
    value = {name: LaunchConfiguration(name).perform(context)
             for name in ("robot", "params_file", "namespace", "use_sim_time")}
    namespace = value["namespace"].strip("/")
    urdf = robot_description(value["robot"], value["params_file"], f"/{namespace}/gesture_node".replace("//", "/"))
    sim_time = {"use_sim_time": value["use_sim_time"] == "true"}
    return [
        Node(package="robot_state_publisher", executable="robot_state_publisher", namespace=namespace,
             parameters=[{"robot_description": urdf, **sim_time}],
             remappings=[("joint_states", "gesture_joint_states")], output="screen"),
        # Topics in the RViz config are relative: RViz runs in the nodes' namespace.
        Node(package="rviz2", executable="rviz2", namespace=namespace, arguments=["-d", str(RVIZ_CONFIG)],
             parameters=[sim_time], on_exit=[Shutdown(reason="RViz closed")], output="screen"),
    ]


def generate_launch_description():
    description = _gestures_launch().generate_launch_description()
    description.add_action(OpaqueFunction(function=_preview_nodes))
    return description
