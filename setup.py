"""ha2g_ros: ament_python package (colcon build) that also installs with plain `pip install -e .`."""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "ha2g_ros"

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
        "ha2g_ros": ["data/*"],
    },
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.rviz")),
        (f"share/{PACKAGE}/config/robots", glob("config/robots/*.yaml")),
    ],
    # The robot runtime needs no torch: onnxruntime runs the ONNX graphs a checkpoint ships. torch (the `torch` extra)
    # is for the torch backend, training and ha2g-export-onnx; it has no upper bound on purpose: scripts/setup.sh
    # installs a pinned CPU build first, and on a robot (Jetson, desktop GPU) the user's own torch build must be kept.
    # ROS 2 itself is never a pip dependency: it comes from the system (apt) or from requirements-ros.txt.
    # Nor is librosa (numba, llvmlite, scikit-learn: 220 MB installed, 135 MB of memory): the runtime computes the same
    # log-mel with numpy; training measures onsets and loudness with it, and the tests hold that log-mel to librosa's.
    install_requires=[
        "numpy>=1.23",
        "scipy>=1.10",
        "pyyaml>=6.0",
        "tqdm>=4.60",
        "safetensors>=0.4",
        "soundfile>=0.12",
        "onnxruntime>=1.17",
        "pin>=2.7",
        "daqp>=0.11",
        "coal>=3.0",
        "matplotlib>=3.7",
        "imageio>=2.30",
        "pillow>=9.0",
    ],
    extras_require={
        "torch": ["torch>=2.1", "onnx>=1.15"],
        "train": ["torch>=2.1", "onnx>=1.15", "librosa>=0.10"],
        # TensorRT's Python bindings come with JetPack (or `pip install tensorrt` on a desktop); buffers: cuda-python
        "tensorrt": ["cuda-python>=12"],
        "microphone": ["sounddevice>=0.4"],
        "video": ["imageio-ffmpeg>=0.4"],
        "physics": ["mujoco>=3.3"],
        "test": ["pytest>=7.0", "hypothesis>=6.0", "librosa>=0.10"],
    },
    zip_safe=False,
    entry_points={
        "console_scripts": [
            # ROS 2 executables (`ros2 run ha2g_ros <name>`)
            "gesture_node = ha2g_ros.gesture_node:main",
            "microphone_node = ha2g_ros.microphone_node:main",
            # tools
            "ha2g-bringup = ha2g_ros.bringup:main",
            "ha2g-demo = ha2g_ros.demo:main",
            "ha2g-generate = ha2g_model.generate_cli:main",
            "ha2g-convert-official = ha2g_model.official:main",
            "ha2g-export-onnx = ha2g_model.onnx_export:main",
        ],
    },
)
