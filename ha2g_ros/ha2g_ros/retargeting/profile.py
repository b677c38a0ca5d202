"""Robot profiles: how the human skeleton maps onto one robot, loaded from YAML and checked against its URDF.

A profile names the robot's torso frame, per arm the joints and the frames at the shoulder, elbow and wrist centres
(the upper arm is shoulder->elbow, the forearm elbow->wrist), optionally the hand frame and two axes in it, per hand
the joints and which human finger curl drives each, the rest pose, speed scaling and the controller groups.
Shipped profiles live in config/robots/<name>.yaml; docs/retargeting.md explains every field with a worked example.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import pinocchio as pin
import yaml

from ha2g_model.skeleton import FINGER_NAMES
from ha2g_model.untrusted import read_bounded, short_repr
from ha2g_ros.retargeting.robot import RobotLoadError, frame_id, joint_id

SIDES = ("left", "right")
FINGERS = FINGER_NAMES  # a hand joint follows one of these fingers (TED Expressive order)
# What drives a hand joint: overall closure, one finger's curl, or one finger joint (1 = knuckle, 2 = middle joint).
# rad/s^2: reaches a typical arm joint's scaled speed limit (3-4 rad/s) in about half a second.
DEFAULT_ACCELERATION_LIMIT = 6.0
CURL_SOURCES = ("closure",) + FINGERS + tuple(f"{finger}.{k}" for finger in FINGERS for k in (1, 2))
# A URDF velocity limit above this (rad/s, or m/s for a prismatic joint) is a placeholder, not a motor: 1e30 would
# switch velocity limiting off. The fastest commanded joint of the shipped robots: 37 rad/s (G1's fingers).
MAX_JOINT_VELOCITY = 100.0
MAX_PROFILE_BYTES = 1_000_000  # the shipped profiles are ~5 kB
# Each IK iteration costs ~0.3 ms per frame and the solver is warm-started (2 is the default): 1e9 would hang the
# node on the first speech.
MAX_SOLVER_ITERATIONS = 50


@dataclass(frozen=True)
class HandAxes:
    """The robot hand's orientation: a frame and unit axes expressed in it.

    Leave `forward` out when the wrist only turns about the forearm (Pepper, NAO): the hand then cannot point
    elsewhere than the forearm, and a forward target would only pull the forearm off its own target.
    """

    frame: str
    thumb_side: tuple[float, float, float]  # little finger -> index finger, across the palm
    forward: tuple[float, float, float] | None = None  # wrist -> fingertips


@dataclass(frozen=True)
class ArmProfile:
    joints: tuple[str, ...]  # every joint the IK may move for this arm, shoulder to wrist
    shoulder: str  # frames whose origins are the shoulder, elbow and wrist centres
    elbow: str
    wrist: str
    hand: HandAxes | None = None  # None: the robot has no wrist to orient (or it is not worth orienting)


@dataclass(frozen=True)
class HandJoint:
    """One hand joint: q = open + curl * (closed - open), curl in [0, 1] from the human `source`."""

    joint: str
    source: str  # one of CURL_SOURCES
    open: float
    closed: float


@dataclass(frozen=True)
class Capsule:
    """A capsule fixed to `link`: the segment start -> end (link coordinates, metres) thickened by `radius`."""

    link: str
    start: tuple[float, float, float]
    end: tuple[float, float, float]
    radius: float


@dataclass(frozen=True)
class CollisionConfig:
    """Body parts (links whose URDF collision shapes they take, or capsules) and the pairs that must stay apart."""

    parts: dict[str, tuple[str | Capsule, ...]]
    pairs: tuple[tuple[str, str], ...]
    margin: float = 0.03  # metres kept between the two parts of every pair


@dataclass(frozen=True)
class SolverConfig:
    amplitude: float = 1.0  # 1 imitates, <1 calms, up to 1.5 exaggerates (rotation from the rest direction)
    rest_blend: float = 0.0  # 0 follows the human, 1 holds the rest pose (joint-space blend)
    damping: float = 0.05  # DLS damping (rad-scale); larger = smoother near singularities, less exact
    posture_weight: float = 1e-3  # pull toward the rest pose; picks the elbow of redundant (7-DoF) arms
    hand_weight: float = 0.3  # weight of the hand orientation relative to the arm bone directions
    hand_smoothing_s: float = 0.2  # time constant of a low-pass on hand orientation and curl targets; 0 = off
    iterations: int = 2  # DLS iterations per frame (warm-started: a third changes the error by < 0.5 degree)
    curl_range_deg: tuple[float, float] = (30.0, 130.0)  # finger flexion (knuckle + middle joint) mapped to 0..1


@dataclass(frozen=True)
class RobotProfile:
    name: str
    urdf: str  # a path, package://pkg/path or python://module/path (see robot.py)
    torso: str  # frame the human torso maps onto (x forward, y left, z up expected; see docs)
    arms: dict[str, ArmProfile]  # "left"/"right"
    groups: dict[str, tuple[str, ...]]  # controller group -> joints; every commanded joint in exactly one
    hands: dict[str, tuple[HandJoint, ...]] = field(default_factory=dict)  # empty: no hands, fingers ignored
    rest: dict[str, float] = field(default_factory=dict)  # missing joints rest at 0 clipped into their limits
    speed_scale: dict[str, float] = field(default_factory=dict)  # per joint; key "default" for the others
    # rad/s^2 per joint, key "hands" for the hand joints and "default" for the others. URDFs carry no acceleration
    # limits: each shipped profile states a conservative value; a profile without one gets DEFAULT_ACCELERATION_LIMIT.
    acceleration_limits: dict[str, float] = field(default_factory=dict)
    solver: SolverConfig = field(default_factory=SolverConfig)
    collision: CollisionConfig | None = None  # None: no self-collision margin (the shipped profiles all have one)
    origin: str = "<dict>"  # where the profile came from, for messages (not a YAML key)

    @property
    def arm_joints(self) -> tuple[str, ...]:
        return tuple(j for side in SIDES if side in self.arms for j in self.arms[side].joints)

    @property
    def hand_joints(self) -> tuple[str, ...]:
        return tuple(h.joint for side in SIDES for h in self.hands.get(side, ()))

    @property
    def joint_names(self) -> tuple[str, ...]:
        """Every commanded joint: left arm, right arm, left hand, right hand."""
        return self.arm_joints + self.hand_joints

    def speed_scale_of(self, joint: str) -> float:
        return float(self.speed_scale.get(joint, self.speed_scale.get("default", 1.0)))

    def acceleration_limit_of(self, joint: str) -> float:
        limits = self.acceleration_limits
        group = "hands" if joint in self.hand_joints and "hands" in limits else "default"
        return float(limits.get(joint, limits.get(group, DEFAULT_ACCELERATION_LIMIT)))


def _take(data: dict, cls, where: str, internal: tuple[str, ...] = (), **converters):
    """Build dataclass `cls` from a YAML mapping, rejecting unknown keys (typos) and missing required ones."""
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(data).__name__}")
    names = {f.name for f in fields(cls)} - set(internal)
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(names)}")
    values = {key: converters[key](value) if key in converters else value for key, value in data.items()}
    try:
        return cls(**values)
    except TypeError as error:
        raise ValueError(f"{where}: {error}") from None


def _number(value, where: str, kind=float):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where}: expected a number, got {short_repr(value)}")
    return kind(value)


def _axis(value, where: str) -> tuple[float, float, float]:
    axis = np.asarray(value, dtype=float)
    if axis.shape != (3,) or not np.isfinite(axis).all() or np.linalg.norm(axis) < 1e-6:
        raise ValueError(f"{where}: an axis must be 3 finite numbers, not all zero; got {short_repr(value)}")
    return tuple(float(v) for v in axis / np.linalg.norm(axis))


def _names(value, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(name, str) and name for name in value):
        raise ValueError(f"{where}: expected a list of joint names (strings), got {short_repr(value)}")
    return tuple(value)


def _arm(data, where: str) -> ArmProfile:
    def hand(value):
        if value is None:
            return None
        axes = _take(value, HandAxes, f"{where}.hand")
        forward = None if axes.forward is None else _axis(axes.forward, f"{where}.hand.forward")
        return HandAxes(axes.frame, _axis(axes.thumb_side, f"{where}.hand.thumb_side"), forward)
    return _take(data, ArmProfile, where, joints=lambda v: _names(v, f"{where}.joints"), hand=hand)


def _hand_joint(data, where: str) -> HandJoint:
    joint = _take(data, HandJoint, where, open=lambda v: _number(v, f"{where}.open"),
                  closed=lambda v: _number(v, f"{where}.closed"))
    if joint.source not in CURL_SOURCES:
        raise ValueError(f"{where}: source {short_repr(joint.source)} is not one of {list(CURL_SOURCES)}")
    return joint


def _collision(data, where: str) -> CollisionConfig | None:
    if data is None:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("parts"), dict) or not data["parts"]:
        raise ValueError(f"{where}: expected a mapping with `parts` (name -> links or capsules), `pairs` and "
                         "optionally `margin`")

    def item(value, at):
        if isinstance(value, str):
            return value
        if not isinstance(value, dict) or set(value) != {"link", "from", "to", "radius"}:
            raise ValueError(f"{at}: a part item is a link name or a capsule {{link, from, to, radius}}, got "
                             f"{short_repr(value)}")
        ends = [np.asarray(value[k], dtype=float) for k in ("from", "to")]
        if any(e.shape != (3,) or not np.isfinite(e).all() for e in ends):
            raise ValueError(f"{at}: capsule from/to must be 3 finite numbers each, got {short_repr(value)}")
        radius = _number(value["radius"], f"{at}.radius")
        if not radius > 0:
            raise ValueError(f"{at}.radius must be > 0, got {radius}")
        return Capsule(str(value["link"]), tuple(map(float, ends[0])), tuple(map(float, ends[1])), radius)

    parts = {}
    for name, items in data["parts"].items():
        if not isinstance(items, list) or not items:
            raise ValueError(f"{where}.parts.{name}: expected a non-empty list of links or capsules")
        parts[str(name)] = tuple(item(v, f"{where}.parts.{name}[{k}]") for k, v in enumerate(items))
    pairs = []
    for k, pair in enumerate(data.get("pairs") or []):
        if not (isinstance(pair, list) and len(pair) == 2 and all(p in parts for p in pair) and pair[0] != pair[1]):
            raise ValueError(f"{where}.pairs[{k}]: expected two different parts among {sorted(parts)}, got "
                             f"{short_repr(pair)}")
        pairs.append((str(pair[0]), str(pair[1])))
    if not pairs:
        raise ValueError(f"{where}: `pairs` must name at least one pair of parts")
    unknown = sorted(set(data) - {"parts", "pairs", "margin"})
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; allowed: ['margin', 'pairs', 'parts']")
    margin = validate_margin(_number(data.get("margin", CollisionConfig.margin), f"{where}.margin"))
    return CollisionConfig(parts, tuple(pairs), margin)


def profile_from_dict(data: dict, source: str = "<dict>") -> RobotProfile:
    """A RobotProfile from the parsed YAML mapping; structural errors name the offending key."""
    def sided(value, make, what):
        if not isinstance(value, dict) or not set(value) <= set(SIDES):
            raise ValueError(f"{source}: {what} must be a mapping with keys among {list(SIDES)}")
        return {side: make(value[side], f"{source}: {what}.{side}") for side in SIDES if side in value}

    def hands(value):
        return sided(value or {}, lambda joints, where: tuple(_hand_joint(j, f"{where}[{i}]")
                                                               for i, j in enumerate(joints)), "hands")

    def solver(value):
        where = f"{source}: solver"
        numbers = {f.name: lambda v, name=f.name: _number(v, f"{where}.{name}", int if name == "iterations" else float)
                   for f in fields(SolverConfig) if f.name != "curl_range_deg"}
        return _take(value or {}, SolverConfig, where, **numbers,
                     curl_range_deg=lambda v: tuple(_number(x, f"{where}.curl_range_deg") for x in v))

    def numbers(what):
        return lambda v: {str(k): _number(x, f"{source}: {what}.{k}") for k, x in (v or {}).items()}

    profile = _take(data, RobotProfile, source, internal=("origin",),
                    arms=lambda v: sided(v, _arm, "arms"),
                    groups=lambda v: {str(k): _names(j, f"{source}: groups.{k}") for k, j in (v or {}).items()},
                    hands=hands,
                    rest=numbers("rest"),
                    speed_scale=numbers("speed_scale"),
                    acceleration_limits=numbers("acceleration_limits"),
                    solver=solver,
                    collision=lambda v: _collision(v, f"{source}: collision"))
    profile = RobotProfile(**{**profile.__dict__, "origin": source})
    _check_consistency(profile)
    return profile


def _check_consistency(profile: RobotProfile) -> None:
    """Checks that need no URDF: arms present, joints listed once, groups cover the commanded joints, values sane."""
    where = profile.origin
    if not profile.arms:
        raise ValueError(f"{where}: a profile needs at least one arm")
    named = [("name", profile.name), ("urdf", profile.urdf), ("torso", profile.torso)]
    for side, arm in profile.arms.items():
        named += [(f"arms.{side}.{role}", getattr(arm, role)) for role in ("shoulder", "elbow", "wrist")]
        named += [(f"arms.{side}.hand.frame", arm.hand.frame)] if arm.hand is not None else []
    named += [(f"hands.{side}[{i}].joint", h.joint) for side, joints in profile.hands.items()
              for i, h in enumerate(joints)]
    not_names = [f"{key} ({short_repr(value)})" for key, value in named if not (isinstance(value, str) and value)]
    if not_names:
        raise ValueError(f"{where}: these must be names (non-empty strings): {', '.join(not_names[:5])}")
    names = profile.joint_names
    duplicates = sorted({j for j in names if names.count(j) > 1})
    if duplicates:
        raise ValueError(f"{where}: joint(s) {duplicates} listed more than once across arms and hands")
    grouped = [j for joints in profile.groups.values() for j in joints]
    if sorted(grouped) != sorted(names):
        missing = sorted(set(names) - set(grouped))
        extra = sorted(set(grouped) - set(names))
        twice = sorted({j for j in grouped if grouped.count(j) > 1})
        raise ValueError(f"{where}: groups must hold every commanded joint exactly once; "
                         f"ungrouped {missing}, not commanded {extra}, in several groups {twice}")
    for joint, scale in profile.speed_scale.items():
        if joint != "default" and joint not in names:
            raise ValueError(f"{where}: speed_scale names {joint!r}, which is not a commanded joint")
        if not 0.0 < scale <= 1.0:
            raise ValueError(f"{where}: speed_scale of {joint!r} must be in (0, 1], got {scale}")
    for joint, limit in profile.acceleration_limits.items():
        if joint not in ("default", "hands") and joint not in names:
            raise ValueError(f"{where}: acceleration_limits names {joint!r}, which is not a commanded joint (or "
                             "'default', 'hands')")
        if not (math.isfinite(limit) and limit > 0):
            raise ValueError(f"{where}: acceleration limit of {joint!r} must be a positive, finite number of "
                             f"rad/s^2, got {limit}")
    for joint in profile.rest:
        if joint not in names:
            raise ValueError(f"{where}: rest names {joint!r}, which is not a commanded joint")
    s = profile.solver
    validate_amplitude(s.amplitude)
    validate_rest_blend(s.rest_blend)
    if len(s.curl_range_deg) != 2:
        raise ValueError(f"{where}: solver.curl_range_deg must be [open_deg, closed_deg], got {s.curl_range_deg}")
    lo, hi = s.curl_range_deg
    if not (s.damping > 0 and s.posture_weight >= 0 and s.hand_weight >= 0 and s.hand_smoothing_s >= 0
            and 1 <= s.iterations <= MAX_SOLVER_ITERATIONS and 0 <= lo < hi):
        raise ValueError(f"{where}: solver needs damping > 0, posture_weight >= 0, hand_weight >= 0, "
                         f"hand_smoothing_s >= 0, 1 <= iterations <= {MAX_SOLVER_ITERATIONS} and "
                         f"0 <= curl_range_deg[0] < curl_range_deg[1]; got {s}")


def validate_amplitude(value: float) -> float:
    if not (np.isfinite(value) and 0.0 <= value <= 1.5):
        raise ValueError(f"amplitude must be in [0, 1.5], got {value}")
    return float(value)


def validate_margin(value: float) -> float:
    if not (np.isfinite(value) and 0.0 <= value <= 0.3):
        raise ValueError(f"collision margin must be in [0, 0.3] metres, got {value}")
    return float(value)


def validate_rest_blend(value: float) -> float:
    if not (np.isfinite(value) and 0.0 <= value <= 1.0):
        raise ValueError(f"rest_blend must be in [0, 1], got {value}")
    return float(value)


def validate_against_model(profile: RobotProfile, model: pin.Model) -> None:
    """Every link, frame and joint the profile names exists in the URDF and can be commanded; all problems at once."""
    problems = []

    def check(lookup, name, role):
        try:
            lookup(model, name, role)
        except RobotLoadError as error:
            problems.append(str(error))

    check(frame_id, profile.torso, "torso")
    for side, arm in profile.arms.items():
        for joint in arm.joints:
            check(joint_id, joint, f"arms.{side}.joints")
        for role in ("shoulder", "elbow", "wrist"):
            check(frame_id, getattr(arm, role), f"arms.{side}.{role}")
        if arm.hand is not None:
            check(frame_id, arm.hand.frame, f"arms.{side}.hand.frame")
    for side, joints in profile.hands.items():
        for hand_joint in joints:
            check(joint_id, hand_joint.joint, f"hands.{side}")
    if problems:
        raise RobotLoadError(f"profile {profile.origin} does not fit the URDF:\n  " + "\n  ".join(problems))
    for name in profile.joint_names:
        jid = model.getJointId(name)
        idx_q, idx_v = model.joints[jid].idx_q, model.joints[jid].idx_v
        lo, hi, v = model.lowerPositionLimit[idx_q], model.upperPositionLimit[idx_q], model.velocityLimit[idx_v]
        if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
            problems.append(f"joint {name!r} has no finite position limits in the URDF ([{lo}, {hi}])")
        if not 0 < v <= MAX_JOINT_VELOCITY:
            problems.append(f"joint {name!r} has no physical velocity limit in the URDF ({v:.3g}; the profile needs "
                            f"one in (0, {MAX_JOINT_VELOCITY:g}] rad/s or m/s)")
        if name in profile.rest and not lo <= profile.rest[name] <= hi:
            problems.append(f"rest value {profile.rest[name]} of joint {name!r} is outside its limits [{lo}, {hi}]")
    for side, joints in profile.hands.items():
        for hj in joints:
            jid = model.getJointId(hj.joint)
            lo, hi = (model.lowerPositionLimit[model.joints[jid].idx_q],
                      model.upperPositionLimit[model.joints[jid].idx_q])
            for label, value in (("open", hj.open), ("closed", hj.closed)):
                if not lo - 1e-9 <= value <= hi + 1e-9:
                    problems.append(f"hands.{side}: {label} value {value} of {hj.joint!r} is outside [{lo}, {hi}]")
    if problems:
        raise RobotLoadError(f"profile {profile.origin} does not fit the URDF:\n  " + "\n  ".join(problems))


def shipped_profiles() -> list[str]:
    """Names of the profiles in config/robots/."""
    return sorted(path.stem for path in _profile_dir().glob("*.yaml"))


def _profile_dir() -> Path:
    """config/robots of the source tree, else share/ha2g_ros/config/robots of the installed package."""
    source_tree = Path(__file__).resolve().parents[2] / "config" / "robots"
    if source_tree.is_dir():
        return source_tree
    try:  # pure Python part of ROS 2 (no rclpy); absent in a plain pip environment
        from ament_index_python.packages import get_package_share_directory
        return Path(get_package_share_directory("ha2g_ros")) / "config" / "robots"
    except (ImportError, LookupError, OSError):  # not installed / no AMENT_PREFIX_PATH
        return source_tree


def load_profile(name_or_path: str | Path) -> RobotProfile:
    """A shipped profile by name ("pepper") or a profile YAML file by path."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = _profile_dir() / f"{name_or_path}.yaml"
        if not path.is_file():
            raise ValueError(f"unknown robot profile {str(name_or_path)!r}; shipped: {shipped_profiles()} "
                             "(or give the path to a .yaml file)")
    try:
        data = yaml.load(read_bounded(path, "robot profile", MAX_PROFILE_BYTES), Loader=_ProfileLoader)
    except FileNotFoundError as error:
        raise ValueError(str(error)) from None
    except yaml.YAMLError as error:  # one line: the problem and where, not PyYAML's multi-line excerpt
        mark = getattr(error, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ValueError(f"robot profile {str(path)!r} is not valid YAML{at}: {problem[:200]}") from None
    return profile_from_dict(data, source=str(path))


class _ProfileLoader(yaml.SafeLoader):
    """yaml.safe_load without aliases (*name). Profiles need none, and a 2 KB "billion laughs" of nested aliases
    expands to gigabytes when walked: it took 46 s and 4.5 GB before the profile checks refused it."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, f"alias *{event.anchor[:40]} found: a robot profile "
                                              "writes its values out (aliases are refused)", event.start_mark)
        return super().compose_node(parent, index)
