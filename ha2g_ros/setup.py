"""ha2g_ros: ament_python package (colcon build) that also installs with plain `pip install -e ha2g_ros` (from the repository root)."""
from glob import glob
from pathlib import Path

from setuptools import find_packages, setup

PACKAGE = "ha2g_ros"
REQUIREMENTS = Path(__file__).resolve().parent / "requirements"


def requirements(name: str) -> list[str]:
    """The requirement lines of requirements/<name>, following its `-r` includes."""
    found = []
    for line in (REQUIREMENTS / name).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r "):
            found += requirements(line[3:].strip())
        elif line:
            found.append(line)
    return found


setup(
    name=PACKAGE,
    version="0.1.0",
    description="Co-speech gestures for social robots: HA2G + URDF retargeting + ROS 2 nodes",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["ha2g_model", "ha2g_model.*", "ha2g_ros", "ha2g_ros.*"]),
    package_data={
        # the official statistics and the shipped default checkpoint are data the package reads at run time
        "ha2g_model": ["data/*.json", "checkpoints/default/*"],
        # Pepper's and NAO's URDFs (Apache-2.0, from qibullet; see urdf/README.md): the default robot's profile
        # reads python://ha2g_ros/urdf/pepper.urdf, so a colcon or pip install needs nothing more
        "ha2g_ros": ["urdf/*"],
    },
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.rviz")),
        (f"share/{PACKAGE}/config/robots", glob("config/robots/*.yaml")),
    ],
    # Dependencies live in requirements/ (one file per purpose) and are read from there, so pip, setup.sh and the
    # docs install the same lists. The robot runtime needs no torch: onnxruntime runs the ONNX graphs a checkpoint
    # ships. ROS 2 itself is never a pip dependency: it comes from the system (apt) or from requirements-ros.txt.
    install_requires=requirements("runtime.txt") + requirements("pinocchio.txt"),
    extras_require={
        "torch": requirements("torch.txt"),
        "train": requirements("training.txt"),
        "demo": requirements("demo.txt"),
        "test": requirements("test.txt"),
        # TensorRT's Python bindings come with JetPack (or `pip install tensorrt` on a desktop); buffers: cuda-python
        "tensorrt": ["cuda-python>=12"],
    },
    zip_safe=False,
    entry_points={
        "console_scripts": [
            # ROS 2 executables (`ros2 run ha2g_ros <name>`)
            "gesture_node = ha2g_ros.gesture_node:main",
            "microphone_node = ha2g_ros.microphone_node:main",
            "speech_player = ha2g_ros.speech_player:main",
            # tools
            "ha2g-bringup = ha2g_ros.bringup:main",
            "ha2g-demo = ha2g_ros.demo:main",
            "ha2g-say = ha2g_ros.say:main",
            "ha2g-generate = ha2g_model.generate_cli:main",
            "ha2g-convert-official = ha2g_model.official:main",
            "ha2g-export-onnx = ha2g_model.onnx_export:main",
        ],
    },
)
