"""Self-collision: the robot's body parts that must stay a margin apart, their distances and distance Jacobians.

A profile's `collision` section names body parts (forearm, hand, torso, head, thighs, base...) and the pairs of parts
that must not meet. A part is made of
- links, whose URDF collision shapes it takes (loaded by pinocchio, meshes searched like package:// URDFs). Meshes
  are replaced by their convex hulls: a distance is then one GJK/EPA query of a few microseconds (a mesh-to-mesh
  query takes milliseconds) and never smaller than the distance between the meshes themselves;
- capsules declared in the profile on a link (`{link, from, to, radius}`, a sphere when from == to), for robots whose
  meshes are not available (Pepper's and NAO's sit in a password-protected archive inside qibullet).

Distances are signed (negative: penetration depth) and computed by coal on the retargeter's reduced model; the
derivative of a distance along the joints is n . (J(p2) - J(p1)), with p1, p2 the nearest points and n the unit
normal from the first shape to the second. retargeter.py keeps every declared pair at least `margin` apart with it.
"""
from __future__ import annotations

from dataclasses import dataclass

import coal
import numpy as np
import pinocchio as pin

from ha2g_ros.retargeting.profile import Capsule, CollisionConfig
from ha2g_ros.retargeting.robot import RobotLoadError, frame_id, mesh_dirs

_WORLD = pin.ReferenceFrame.LOCAL_WORLD_ALIGNED


@dataclass(frozen=True)
class Shape:
    """One convex shape fixed to a frame of the reduced model."""

    part: str
    name: str
    frame: int
    placement: pin.SE3  # frame -> shape
    geometry: coal.CollisionGeometry
    centre: np.ndarray  # bounding sphere in the frame's coordinates, for a cheap lower bound on distances
    radius: float


class SelfCollision:
    """The declared pairs of body parts of one robot, on `model` (the retargeter's reduced model)."""

    def __init__(self, config: CollisionConfig, full_model: pin.Model, model: pin.Model, urdf_path: str | None,
                 urdf_xml: str | None, origin: str):
        self.config = config
        self.model = model
        self.data = model.createData()
        urdf_shapes = _urdf_shapes(full_model, urdf_path, urdf_xml, config, origin)
        self.shapes: list[Shape] = []
        problems = []
        for part, items in config.parts.items():
            for k, item in enumerate(items):
                where = f"collision.parts.{part}[{k}]"
                link = item.link if isinstance(item, Capsule) else item
                try:
                    frame = frame_id(model, link, where)
                except RobotLoadError as error:
                    problems.append(str(error))
                    continue
                if isinstance(item, Capsule):
                    self.shapes.append(_capsule(part, where, frame, item))
                elif not urdf_shapes.get(link):
                    problems.append(f"{where}: link {link!r} has no collision geometry in the URDF; declare capsules "
                                    "for it instead ({link, from, to, radius})")
                else:
                    self.shapes += [_bounded(Shape(part, name, frame, placement, geometry, np.zeros(3), 0.0))
                                    for name, placement, geometry in urdf_shapes[link]]
        if problems:
            raise RobotLoadError(f"profile {origin}: collision shapes do not fit the URDF:\n  " + "\n  ".join(problems))
        by_part = {}
        for i, shape in enumerate(self.shapes):
            by_part.setdefault(shape.part, []).append(i)
        # Every shape of one part against every shape of the other: each is its own smooth constraint.
        self.pairs = [(i, j) for a, b in config.pairs for i in by_part[a] for j in by_part[b]]
        self.pair_parts = [(a, b) for a, b in config.pairs for _ in by_part[a] for _ in by_part[b]]
        self._first = np.array([i for i, _ in self.pairs], dtype=np.int64)
        self._second = np.array([j for _, j in self.pairs], dtype=np.int64)
        self._frames = sorted({s.frame for s in self.shapes})
        self._request = coal.DistanceRequest()
        self._result = coal.DistanceResult()

    def lever(self, q_model: np.ndarray, joints: list[int]) -> float:
        """Upper bound on the distance from any of `joints`' origins to any point of any shape (metres): a joint
        turning by a radians moves no shape point further than a * lever."""
        pin.framesForwardKinematics(self.model, self.data, q_model)
        placements = self._placements()
        centres = np.array([m.act(s.centre) for m, s in zip(placements, self.shapes)])
        radii = np.array([s.radius for s in self.shapes])
        origins = np.array([self.data.oMi[j].translation for j in joints])
        return float((np.linalg.norm(centres[:, None] - origins[None], axis=2) + radii[:, None]).max())

    def _placements(self) -> list[pin.SE3]:
        return [self.data.oMf[s.frame] * s.placement for s in self.shapes]

    def _lower_bounds(self, placements: list[pin.SE3]) -> np.ndarray:
        """Per pair, a lower bound on its distance from the bounding spheres (cheap, vectorised)."""
        centres = np.array([m.act(s.centre) for m, s in zip(placements, self.shapes)])
        radii = np.array([s.radius for s in self.shapes])
        gap = np.linalg.norm(centres[self._first] - centres[self._second], axis=1)
        return gap - radii[self._first] - radii[self._second]

    def _distance(self, k: int, transforms: list) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
        i, j = self.pairs[k]
        self._result.clear()
        d = coal.distance(self.shapes[i].geometry, transforms[i], self.shapes[j].geometry, transforms[j],
                          self._request, self._result)
        return d, self._result.getNearestPoint1().copy(), self._result.getNearestPoint2().copy(), \
            self._result.normal.copy()

    def distances(self, q_model: np.ndarray) -> np.ndarray:
        """(n_pairs,) signed distance of every declared shape pair at q_model (metres)."""
        pin.framesForwardKinematics(self.model, self.data, q_model)
        transforms = _transforms(self._placements())
        return np.array([self._distance(k, transforms)[0] for k in range(len(self.pairs))])

    def part_distances(self, q_model: np.ndarray) -> dict[tuple[str, str], float]:
        """The smallest distance per declared pair of parts at q_model."""
        out = {}
        for parts, d in zip(self.pair_parts, self.distances(q_model)):
            out[parts] = min(out.get(parts, np.inf), float(d))
        return out

    def linearise(self, q_model: np.ndarray, columns: np.ndarray,
                  within: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Distances d (m,), their Jacobians J (m, len(columns)) and pair indices of the pairs closer than `within`.

        d(q + dq) = d + J dq to first order. Pairs whose bounding spheres are further apart than `within` are left out.
        """
        pin.computeJointJacobians(self.model, self.data, q_model)  # also runs forward kinematics
        pin.updateFramePlacements(self.model, self.data)
        placements = self._placements()
        near = np.flatnonzero(self._lower_bounds(placements) < within)
        transforms = _transforms(placements) if len(near) else []
        found = [(k, *self._distance(k, transforms)) for k in near]
        found = [f for f in found if f[1] < within]
        if not found:
            return np.zeros(0), np.zeros((0, len(columns))), np.zeros(0, dtype=np.int64)
        pairs = np.array([f[0] for f in found], dtype=np.int64)
        d = np.array([f[1] for f in found])
        normal = np.array([f[4] for f in found])
        rows = np.zeros((len(found), len(columns)))
        frames = {self.shapes[self.pairs[k][side]].frame for k in pairs for side in (0, 1)}
        jacobians = {f: pin.getFrameJacobian(self.model, self.data, f, _WORLD)[:, columns] for f in frames}
        for side, point in ((0, np.array([f[2] for f in found])), (1, np.array([f[3] for f in found]))):
            frames = [self.shapes[self.pairs[k][side]].frame for k in pairs]
            jac = np.array([jacobians[f] for f in frames])
            origin = np.array([self.data.oMf[f].translation for f in frames])
            # Velocity of the point p fixed to the frame: v_o + w x (p - o); its component along the normal.
            along = (np.einsum("mi,min->mn", normal, jac[:, :3])
                     + np.einsum("mi,min->mn", np.cross(point - origin, normal), jac[:, 3:]))
            rows += along if side else -along
        return d, rows, pairs


def _transforms(placements: list[pin.SE3]) -> list:
    return [coal.Transform3s(m.rotation, m.translation) for m in placements]


def _capsule(part: str, name: str, frame: int, capsule: Capsule) -> Shape:
    a, b = np.array(capsule.start), np.array(capsule.end)
    axis = b - a
    length = float(np.linalg.norm(axis))
    # coal's capsule lies along its local z axis, centred on the origin.
    z = axis / length if length > 1e-9 else np.array([0.0, 0.0, 1.0])
    rotation = pin.Quaternion.FromTwoVectors(np.array([0.0, 0.0, 1.0]), z).matrix()
    placement = pin.SE3(rotation, (a + b) / 2)
    return Shape(part, name, frame, placement, coal.Capsule(capsule.radius, length), np.zeros(3),
                 capsule.radius + length / 2)


def _bounded(shape: Shape) -> Shape:
    shape.geometry.computeLocalAABB()
    return Shape(shape.part, shape.name, shape.frame, shape.placement, shape.geometry,
                 np.array(shape.geometry.aabb_center), float(shape.geometry.aabb_radius))


def _urdf_shapes(full_model: pin.Model, urdf_path: str | None, urdf_xml: str | None, config: CollisionConfig,
                 origin: str) -> dict[str, list[tuple[str, pin.SE3, coal.CollisionGeometry]]]:
    """link -> [(name, link -> shape placement, convex geometry)] for the links the parts name (none: no loading)."""
    wanted = {item for items in config.parts.values() for item in items if isinstance(item, str)}
    if not wanted:
        return {}
    dirs = [str(d) for d in mesh_dirs(urdf_path)]
    try:
        if urdf_xml is not None:
            geometry = pin.buildGeomFromUrdfString(full_model, urdf_xml, pin.COLLISION, package_dirs=dirs)
        else:
            geometry = pin.buildGeomFromUrdf(full_model, urdf_path, pin.COLLISION, package_dirs=dirs)
    except (RuntimeError, ValueError) as error:  # a mesh file that cannot be found or read
        raise RobotLoadError(f"profile {origin}: the URDF's collision geometry does not load: {error}") from None
    out: dict[str, list] = {}
    for obj in geometry.geometryObjects:
        frame = full_model.frames[obj.parentFrame]
        if frame.name not in wanted:
            continue
        shape = obj.geometry
        if isinstance(shape, coal.BVHModelBase):  # a mesh: its convex hull, by qhull
            points = coal.StdVec_Vec3s()
            points.extend(list(np.asarray(shape.vertices())))
            shape = coal.Convex.convexHull(points, False, "Qt")
        out.setdefault(frame.name, []).append((obj.name, frame.placement.inverse() * obj.placement, shape))
    return out
