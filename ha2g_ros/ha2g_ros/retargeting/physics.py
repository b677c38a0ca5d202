"""Physics check: published joint trajectories played on the robot with mass and motors (MuJoCo).

    python -m ha2g_ros.retargeting.physics out/demo/trajectories.npz --robot pepper --out out/physics

The robot is the profile's URDF loaded by MuJoCo (links, masses, inertias; base fixed), with
- the collision shapes of the profile's `collision` parts (the same convex hulls or capsules the retargeter keeps
  apart), colliding only pairwise as declared, so any contact between them is a self-collision;
- every joint the profile does not command locked at zero, as the retargeter assumes;
- per commanded joint a servo as joint_trajectory_controller drives it: position and velocity references from a
  cubic Hermite spline through the trajectory's points (positions and velocities, as the controller interpolates),
  torque = kp (q_ref - q) + kv (v_ref - v), saturated at the URDF effort limit. Gains come from the joint's own
  inertia at the rest pose (plus a rotor armature): a critically damped servo of `bandwidth_hz`.
It measures the tracking error, contacts between the declared parts and the actuator torque against the limit.
A trajectories.npz holds joint_names (J,), times (T,) seconds and positions (T, J) (what ha2g-demo writes), and
optionally velocities (T, J); without them velocities are central differences, zero at the last point.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

import coal
import numpy as np
import pinocchio as pin
from scipy.interpolate import CubicHermiteSpline

from ha2g_ros.retargeting.profile import load_profile
from ha2g_ros.retargeting.retargeter import Retargeter
from ha2g_ros.retargeting.robot import RobotLoadError, resolve_urdf

TIMESTEP = 1e-3  # s: a servo loop rate
SETTLE_S = 0.5  # s holding the first point before playing: a robot starts a gesture standing, not falling
# Reflected rotor inertia (kg m^2) per N m of the joint's effort limit: the URDFs give none, and a geared servo's
# rotor inertia grows with its torque (Pepper's wrist 0.2 mkg m^2, its shoulder 5 mkg m^2, TALOS's 0.1 kg m^2).
ARMATURE_PER_NM = 1e-3


def _import_mujoco():
    os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering; osmesa/glfw where the user says so
    try:
        import mujoco
    except ImportError:
        raise SystemExit("the physics check needs MuJoCo: pip install mujoco (or pip install ha2g_ros[physics])")
    return mujoco


class PhysicsRobot:
    """The robot of a Retargeter as a MuJoCo model with one servo per commanded joint."""

    def __init__(self, retargeter: Retargeter, bandwidth_hz: float = 8.0, urdf_xml: str | None = None):
        mujoco = self.mujoco = _import_mujoco()
        rt = self.rt = retargeter
        xml = urdf_xml if urdf_xml is not None else resolve_urdf(rt.profile.urdf).read_text()
        # Meshes and visuals are not loaded from the URDF (they need not exist, and MuJoCo reads no .dae): the shapes
        # are the retargeter's own. fusestatic off keeps every link a body, so shapes find their link by name.
        xml = re.sub(r"<(visual|collision)\b.*?</\1>", "", xml, flags=re.S)
        xml = re.sub(r"(<robot\b[^>]*>)", r'\1<mujoco><compiler fusestatic="false" discardvisual="true" '
                     r'balanceinertia="true" boundmass="0.001" boundinertia="1e-6"/></mujoco>', xml, count=1)
        spec = mujoco.MjSpec.from_string(xml)
        spec.option.timestep = TIMESTEP
        spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
        for body in spec.bodies:  # some URDF inertias are not positive definite (TIAGo's antennas): their diagonal
            ixx, iyy, izz, ixy, ixz, iyz = body.fullinertia
            if np.isfinite(ixx) and np.linalg.eigvalsh([[ixx, ixy, ixz], [ixy, iyy, iyz], [ixz, iyz, izz]]).min() <= 0:
                body.fullinertia = [np.nan] * 6
                body.inertia = np.abs([ixx, iyy, izz]) + 1e-9
        commanded = set(rt.joint_names)
        for joint in list(spec.joints):
            if joint.name not in commanded:
                spec.delete(joint)  # the body is welded to its parent at zero, as in the retargeter's model
        for equality in list(spec.equalities):  # URDF mimic joints: the mimicking finger joints are locked
            if equality.name1 not in commanded or equality.name2 not in commanded:
                spec.delete(equality)
        effort = rt.full_model.effortLimit
        for name in rt.joint_names:
            joint = spec.joint(name)
            limit = float(effort[rt.full_model.joints[rt.full_model.getJointId(name)].idx_v])
            if not (np.isfinite(limit) and limit > 0):
                raise RobotLoadError(f"joint {name!r} has no positive effort limit in the URDF ({limit})")
            joint.armature = ARMATURE_PER_NM * limit
            joint.actfrclimited = mujoco.mjtLimited.mjLIMITED_TRUE
            joint.actfrcrange = [-limit, limit]
        self._add_shapes(spec)
        for name in rt.joint_names:  # gains set below, once the joint inertias are known
            spec.add_actuator(name=f"{name}/position", target=name, trntype=mujoco.mjtTrn.mjTRN_JOINT,
                              gaintype=mujoco.mjtGain.mjGAIN_FIXED, biastype=mujoco.mjtBias.mjBIAS_AFFINE)
            spec.add_actuator(name=f"{name}/velocity", target=name, trntype=mujoco.mjtTrn.mjTRN_JOINT,
                              gaintype=mujoco.mjtGain.mjGAIN_FIXED, biastype=mujoco.mjtBias.mjBIAS_AFFINE)
        self.model = spec.compile()
        self.data = mujoco.MjData(self.model)
        self.qpos = np.array([self.model.jnt_qposadr[self.model.joint(n).id] for n in rt.joint_names])
        self.dof = np.array([self.model.jnt_dofadr[self.model.joint(n).id] for n in rt.joint_names])
        self.effort_limits = np.array([self.model.jnt_actfrcrange[self.model.joint(n).id][1] for n in rt.joint_names])
        # Critically damped servos: kp = I w^2, kv = 2 I w with I the joint's inertia at rest (mass matrix diagonal,
        # from pinocchio on the same locked model, plus the rotor armature).
        inertia = (np.diag(pin.crba(rt.model, rt.model.createData(), rt._to_model(rt.rest_pose())))[rt._qi]
                   + ARMATURE_PER_NM * self.effort_limits)
        omega = 2 * np.pi * bandwidth_hz
        self.kp, self.kv = inertia * omega ** 2, 2 * inertia * omega
        for k, name in enumerate(rt.joint_names):  # force = gain * ctrl + bias1 * q + bias2 * v
            position, velocity = self.model.actuator(f"{name}/position"), self.model.actuator(f"{name}/velocity")
            position.gainprm[0], position.biasprm[:3] = self.kp[k], (0.0, -self.kp[k], 0.0)
            velocity.gainprm[0], velocity.biasprm[:3] = self.kv[k], (0.0, 0.0, -self.kv[k])
        self._position_act = np.array([self.model.actuator(f"{n}/position").id for n in rt.joint_names])
        self._velocity_act = np.array([self.model.actuator(f"{n}/velocity").id for n in rt.joint_names])
        self._part_of_geom = {self.model.geom(f"{s.part}/{k}").id: s.part for k, s in enumerate(rt.collision.shapes)}

    def _add_shapes(self, spec) -> None:
        mujoco, rt = self.mujoco, self.rt
        if rt.collision is None:
            raise RobotLoadError(f"profile {rt.profile.origin} declares no collision parts to check")
        for k, shape in enumerate(rt.collision.shapes):
            link = rt.model.frames[shape.frame].name
            body = spec.body(link)
            if body is None:
                raise RobotLoadError(f"collision shape {shape.name!r}: MuJoCo has no body {link!r} (a frame that is "
                                     "not a URDF link)")
            quat = np.zeros(4)
            mujoco.mju_mat2Quat(quat, shape.placement.rotation.flatten())
            geom = body.add_geom(name=f"{shape.part}/{k}", pos=shape.placement.translation, quat=quat,
                                 contype=0, conaffinity=0, rgba=[0.7, 0.7, 0.75, 1])
            g = shape.geometry
            if isinstance(g, (coal.Capsule, coal.Cylinder)):  # along z in both libraries
                geom.type = mujoco.mjtGeom.mjGEOM_SPHERE if g.halfLength == 0 else \
                    mujoco.mjtGeom.mjGEOM_CAPSULE if isinstance(g, coal.Capsule) else mujoco.mjtGeom.mjGEOM_CYLINDER
                geom.size = [g.radius, g.halfLength, 0]
            elif isinstance(g, coal.Sphere):
                geom.type, geom.size = mujoco.mjtGeom.mjGEOM_SPHERE, [g.radius, 0, 0]
            elif isinstance(g, coal.Box):
                geom.type, geom.size = mujoco.mjtGeom.mjGEOM_BOX, list(g.halfSide)
            else:  # a convex hull: MuJoCo takes its vertices and hulls them again
                points = np.array([shape.geometry.points(i) for i in range(shape.geometry.num_points)])
                spec.add_mesh(name=f"mesh/{k}", uservert=points.flatten().tolist())
                geom.type = mujoco.mjtGeom.mjGEOM_MESH
                geom.meshname = f"mesh/{k}"
        shapes_of = {}
        for k, shape in enumerate(rt.collision.shapes):
            shapes_of.setdefault(shape.part, []).append(f"{shape.part}/{k}")
        for a, b in rt.profile.collision.pairs:  # only the declared pairs collide
            for ga in shapes_of[a]:
                for gb in shapes_of[b]:
                    spec.add_pair(geomname1=ga, geomname2=gb)

    def reset(self, q: np.ndarray) -> None:
        self.mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[self.qpos] = q
        self.mujoco.mj_forward(self.model, self.data)

    def follow(self, times: np.ndarray, positions: np.ndarray, velocities: np.ndarray,
               frame_callback=None) -> dict:
        """Play a trajectory (aligned with retargeter.joint_names) from rest at its first point; the numbers."""
        mujoco, m, d = self.mujoco, self.model, self.data
        spline = CubicHermiteSpline(times, positions, velocities, axis=0)
        self.reset(positions[0])
        d.ctrl[self._position_act], d.ctrl[self._velocity_act] = positions[0], 0.0
        for _ in range(int(SETTLE_S / TIMESTEP)):  # the servos take the robot's weight before the clock starts
            mujoco.mj_step(m, d)
        steps = int(round((times[-1] - times[0]) / TIMESTEP))
        errors, efforts, contact_steps, deepest = [], np.zeros(len(self.qpos)), 0, np.inf
        contacts, loads, free_peak = set(), [], 0.0
        sample = max(1, int(round(1 / 15 / TIMESTEP)))
        for k in range(steps + 1):
            t = times[0] + k * TIMESTEP
            d.ctrl[self._position_act] = spline(t)
            d.ctrl[self._velocity_act] = spline(t, 1)
            mujoco.mj_step(m, d)
            load = np.abs(d.qfrc_actuator[self.dof]) / self.effort_limits
            efforts = np.maximum(efforts, load)
            loads.append(load.max())
            touching = [c for c in d.contact[:d.ncon] if c.dist < 0]
            if touching:
                contact_steps += 1
                deepest = min(deepest, min(c.dist for c in touching))
                contacts |= {tuple(sorted((self._part_of_geom[c.geom1], self._part_of_geom[c.geom2])))
                             for c in touching}
            else:
                free_peak = max(free_peak, loads[-1])
            if k % sample == 0:
                errors.append(d.qpos[self.qpos] - spline(t + TIMESTEP))
                if frame_callback is not None:
                    frame_callback(t)
        errors = np.degrees(np.abs(np.array(errors)))
        arm = errors[:, :len(self.rt.profile.arm_joints)]
        worst = int(efforts.argmax())
        return {"duration_s": float(times[-1] - times[0]),
                "tracking_error_deg": {"arm_mean": float(arm.mean()), "arm_p95": float(np.percentile(arm, 95)),
                                       "arm_max": float(arm.max()), "all_p95": float(np.percentile(errors, 95))},
                "self_contact_steps": contact_steps,
                "self_contact_pairs": sorted("-".join(p) for p in contacts),
                "deepest_contact_m": float(-deepest) if contact_steps else 0.0,
                "peak_effort_fraction": float(efforts.max()), "peak_effort_joint": self.rt.joint_names[worst],
                # a servo pressing one body part against another saturates: the peak where none touches
                "peak_effort_fraction_without_contact": float(free_peak),
                # the share of servo ticks with some joint at its torque limit, and the 99th percentile load
                "effort_saturated_share": float(np.mean(np.array(loads) >= 0.999)),
                "effort_fraction_p99": float(np.percentile(loads, 99))}


def central_velocities(times: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Velocities for points that carry none: central differences, zero at the last point (as published)."""
    velocities = np.gradient(positions, times, axis=0, edge_order=1)
    velocities[-1] = 0.0
    return velocities


def load_trajectories(path: Path, joint_names: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(times, positions, velocities) from a trajectories.npz, columns in `joint_names` order."""
    with np.load(path, allow_pickle=False) as data:
        missing = {"joint_names", "times", "positions"} - set(data.files)
        if missing:
            raise ValueError(f"{path}: missing array(s) {sorted(missing)} (expected joint_names, times, positions)")
        names = [str(n) for n in data["joint_names"]]
        times, positions = np.asarray(data["times"], float), np.asarray(data["positions"], float)
        velocities = np.asarray(data["velocities"], float) if "velocities" in data.files else None
    absent = [n for n in joint_names if n not in names]
    if absent:
        raise ValueError(f"{path}: no trajectory for joint(s) {absent} of this robot (file has {names})")
    if positions.shape != (len(times), len(names)) or len(times) < 2 or (np.diff(times) <= 0).any():
        raise ValueError(f"{path}: positions must be (T, J) = ({len(times)}, {len(names)}) with T >= 2 strictly "
                         f"increasing times, got {positions.shape}")
    order = [names.index(n) for n in joint_names]
    positions = positions[:, order]
    velocities = central_velocities(times, positions) if velocities is None else velocities[:, order]
    return times, positions, velocities


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ha2g_ros.retargeting.physics", description=__doc__.split("\n\n")[0])
    parser.add_argument("trajectories", type=Path, help="trajectories.npz (joint_names, times, positions)")
    parser.add_argument("--robot", default="pepper", help="robot profile name or YAML path (default: pepper)")
    parser.add_argument("--out", type=Path, default=Path("out/physics"), help="folder for physics.json and the video")
    parser.add_argument("--bandwidth", type=float, default=8.0, help="servo bandwidth in Hz (default 8)")
    parser.add_argument("--video-seconds", type=float, default=10.0, help="length of the video (0: none)")
    args = parser.parse_args(argv)
    try:
        rt = Retargeter(load_profile(args.robot))
        robot = PhysicsRobot(rt, args.bandwidth)
        times, positions, velocities = load_trajectories(args.trajectories, rt.joint_names)
    except (ValueError, OSError) as error:
        sys.exit(f"error: {error}")
    args.out.mkdir(parents=True, exist_ok=True)
    frames, renderer = [], None
    if args.video_seconds > 0:
        renderer = robot.mujoco.Renderer(robot.model, 480, 480)
        camera = robot.mujoco.MjvCamera()
        camera.lookat[:] = robot.data.xpos[robot.model.body(rt.profile.torso).id]
        camera.distance, camera.azimuth, camera.elevation = 2.5 * rt.collision.reach, 150.0, -15.0

        def frame(t):
            if t - times[0] <= args.video_seconds:
                renderer.update_scene(robot.data, camera)
                frames.append(renderer.render().copy())
    result = robot.follow(times, positions, velocities, frame if renderer else None)
    result = {"robot": rt.profile.name, "trajectories": str(args.trajectories), **result}
    (args.out / "physics.json").write_text(json.dumps(result, indent=1))
    if frames:
        from ha2g_model.render import write_video
        write_video(frames, args.out / "physics.mp4", fps=15)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
