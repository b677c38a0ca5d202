"""Robot kinematics from a URDF, through pinocchio: loading, the reduced arm model, joint limits, frame lookups.

A URDF source is one of
- a file path (`/opt/ros/jazzy/share/my_robot/urdf/robot.urdf`),
- `package://<package>/<path>`: a ROS package resource, looked up in the share/ folders of AMENT_PREFIX_PATH and of
  the cmeel prefix where pip-installed robot data (e.g. `example-robot-data`) lives,
- `python://<module>/<path>`: a file shipped inside an installed Python package (e.g. `qibullet` ships Pepper and NAO),
- the URDF XML itself (what a `/robot_description` topic carries), passed as `xml=`.

Only kinematics are built here (`buildModelFromUrdf` without geometry), so meshes referenced by the URDF need not exist;
collision.py loads the collision shapes of the links a profile names, and only then.

Run `python -m ha2g_ros.retargeting <source>` to print a robot's joints, limits and frames: the starting point for
writing a profile (docs/retargeting.md).
"""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import pinocchio as pin


# (x cross y)_i = LEVI_CIVITA[i, j, k] x_j y_k: cross products of many vectors in one einsum (np.cross costs
# tens of microseconds of Python per call)
LEVI_CIVITA = np.zeros((3, 3, 3))
LEVI_CIVITA[0, 1, 2] = LEVI_CIVITA[1, 2, 0] = LEVI_CIVITA[2, 0, 1] = 1.0
LEVI_CIVITA[0, 2, 1] = LEVI_CIVITA[2, 1, 0] = LEVI_CIVITA[1, 0, 2] = -1.0


class RobotLoadError(ValueError):
    """A URDF source that cannot be found or parsed, or a profile that does not fit the robot."""


def _share_dirs() -> list[Path]:
    prefixes = [Path(p) for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    # pip wheels built with cmeel (example-robot-data, pinocchio) install their data under <site-packages>/cmeel.prefix
    prefixes += [Path(p) / "cmeel.prefix" for p in sys.path if p and (Path(p) / "cmeel.prefix").is_dir()]
    return [prefix / "share" for prefix in prefixes]


def resolve_urdf(source: str) -> Path:
    """The file a URDF source string names (see the module docstring for the forms)."""
    if source.startswith("package://"):
        package, _, rel = source[len("package://"):].partition("/")
        searched = _share_dirs()
        for share in searched:
            candidate = share / package / rel
            if candidate.is_file():
                return candidate
        raise RobotLoadError(f"URDF {source!r} not found: no share/{package}/{rel} under "
                             f"{[str(s) for s in searched] or 'AMENT_PREFIX_PATH (empty)'}")
    if source.startswith("python://"):
        module, _, rel = source[len("python://"):].partition("/")
        # find_spec locates a package without importing it (qibullet's __init__ would import pybullet)
        spec = importlib.util.find_spec(module) if module.isidentifier() else None
        if spec is None or not spec.submodule_search_locations:
            raise RobotLoadError(f"URDF {source!r}: Python package {module!r} is not installed "
                                 f"(pip install --no-deps {module})")
        candidate = Path(spec.submodule_search_locations[0]) / rel
        if not candidate.is_file():
            raise RobotLoadError(f"URDF {source!r}: package {module!r} has no file {rel!r}")
        return candidate
    path = Path(source).expanduser()
    if not path.is_file():
        raise RobotLoadError(f"URDF file {source!r} does not exist")
    return path


def mesh_dirs(urdf_path: str | Path | None) -> list[Path]:
    """Where the meshes of a URDF's collision shapes are searched: package:// roots, then the URDF's own folder."""
    return _share_dirs() + ([Path(urdf_path).parent] if urdf_path is not None else [])


def load_model(source: str | None = None, xml: str | None = None) -> pin.Model:
    """Kinematic model of the robot: from `xml` when given (e.g. /robot_description), else from `source`."""
    if xml is None and source is None:
        raise RobotLoadError("no URDF: give a source (path, package://, python://) or the XML string")
    if xml is not None and not xml.strip():
        raise RobotLoadError("robot_description XML is empty")
    path = None if xml is not None else resolve_urdf(source)
    what = "robot_description XML" if path is None else f"URDF {str(path)!r}"
    try:
        model = pin.buildModelFromXML(xml) if path is None else pin.buildModelFromUrdf(str(path))
    except (RuntimeError, ValueError) as error:  # pinocchio reports parse errors as RuntimeError
        raise RobotLoadError(f"{what} does not parse: {error}") from None
    if model.njoints <= 1:
        raise RobotLoadError(f"{what} has no movable joints")
    return model


def joint_id(model: pin.Model, name: str, role: str) -> int:
    """Id of a 1-DoF joint, or an error naming the joint and its role in the profile."""
    if not model.existJointName(name):
        raise RobotLoadError(f"{role}: joint {name!r} is not in the URDF of {model.name!r}")
    jid = model.getJointId(name)
    joint = model.joints[jid]
    if joint.nq != 1 or joint.nv != 1:
        raise RobotLoadError(f"{role}: joint {name!r} is a {joint.shortname()} with nq={joint.nq}; only revolute "
                             "and prismatic joints with limits can be commanded (continuous joints are not)")
    return jid


def frame_id(model: pin.Model, name: str, role: str) -> int:
    if not model.existFrame(name):
        raise RobotLoadError(f"{role}: link/frame {name!r} is not in the URDF of {model.name!r}")
    return model.getFrameId(name)


def reduced_model(model: pin.Model, keep: list[str]) -> pin.Model:
    """The model with every joint but `keep` locked at its neutral value (legs, wheels, head, mimic fingers)."""
    kept = {model.getJointId(name) for name in keep}
    locked = [jid for jid in range(1, model.njoints) if jid not in kept]
    return pin.buildReducedModel(model, locked, pin.neutral(model))


def describe(model: pin.Model, relative_to: str | None = None) -> str:
    """Joints (type, limits, parent) and frame positions at zero joint angles, one per line.

    Frame positions are in the root frame, or in frame `relative_to` (e.g. a hand link, to read off which of its
    axes points along the fingers and which toward the index finger).
    """
    lines = [f"robot {model.name!r}: {model.njoints - 1} joints, nq={model.nq}"]
    for jid in range(1, model.njoints):
        joint = model.joints[jid]
        lo, hi = model.lowerPositionLimit[joint.idx_q], model.upperPositionLimit[joint.idx_q]
        lines.append(f"  joint {model.names[jid]:<28} {joint.shortname():<28} nq={joint.nq} "
                     f"[{lo:+.3f}, {hi:+.3f}] v<={model.velocityLimit[joint.idx_v]:.3g}  "
                     f"parent={model.names[model.parents[jid]]}")
    data = model.createData()
    pin.framesForwardKinematics(model, data, pin.neutral(model))
    reference = pin.SE3.Identity() if relative_to is None else data.oMf[frame_id(model, relative_to, "describe")]
    lines.append(f"frames at zero joint angles, position in {relative_to or 'the root frame'} (metres):")
    for fid, frame in enumerate(model.frames):
        position = (reference.actInv(data.oMf[fid])).translation
        lines.append(f"  frame {frame.name:<40} {str(frame.type).split('.')[-1]:<12} "
                     f"{np.array2string(position, precision=3, suppress_small=True)}")
    return "\n".join(lines)
