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

import functools
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

import coal
import numpy as np
import pinocchio as pin

from ha2g_ros.retargeting.profile import Capsule, CollisionConfig
from ha2g_ros.retargeting.robot import RobotLoadError, frame_id, mesh_dirs

_WORLD = pin.ReferenceFrame.LOCAL_WORLD_ALIGNED
_NO_BOUND = 1e6  # lever of a chain with a sliding joint: its shapes are never culled while it moves


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
    """The declared pairs of body parts of one robot, on `model` (the retargeter's reduced model, 1-DoF joints)."""

    def __init__(self, config: CollisionConfig, model: pin.Model, urdf_path: str | None,
                 urdf_xml: str | None, origin: str):
        self.config = config
        self.model = model
        self.data = model.createData()
        urdf_shapes = _urdf_shapes(urdf_path, urdf_xml, config, origin)
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
        # Placements of all shapes at once: frame poses (few frames) times the shapes' fixed offsets, in numpy (a
        # pinocchio SE3 product costs microseconds of Python binding per shape).
        self._frames = sorted({s.frame for s in self.shapes})
        self._slot = np.array([self._frames.index(s.frame) for s in self.shapes], dtype=np.int64)
        self._local_rotation = np.array([s.placement.rotation for s in self.shapes])
        self._local_translation = np.array([s.placement.translation for s in self.shapes])
        self._centres = np.array([s.centre for s in self.shapes])
        self._radii = np.array([s.radius for s in self.shapes])
        self._levers = self._lever_bounds()
        self._pair_levers = self._levers[self._first] + self._levers[self._second]
        self._distance = [coal.ComputeDistance(self.shapes[i].geometry, self.shapes[j].geometry) for i, j in self.pairs]
        self._request = coal.DistanceRequest()  # for measurements, which leave the filter's memory alone
        self._result = coal.DistanceResult()
        self.forget()

    def _lever_bounds(self) -> np.ndarray:
        """(n_shapes, nv): for each joint moving a shape, an upper bound on the distance from the joint's origin to
        any point of the shape in every configuration: the chain of joint origins between them (rigid links, so
        constant lengths) plus the shape's bounding sphere around the last joint. Turning joint v by a moves no point
        of shape s further than |a| * levers[s, v], so a step dq moves it at most levers[s] @ |dq|."""
        self._update(pin.neutral(self.model))
        centres = self._centres_now
        levers = np.zeros((len(self.shapes), self.model.nv))
        for s, shape in enumerate(self.shapes):
            chain = list(self.model.supports[self.model.frames[shape.frame].parentJoint])[1:]  # without the universe
            reach = 0.0
            if chain:
                reach = np.linalg.norm(centres[s] - self.data.oMi[chain[-1]].translation) + self._radii[s]
            for outer, inner in zip(chain[::-1], [None] + chain[::-1][:-1]):
                if inner is not None:
                    reach += np.linalg.norm(self.data.oMi[inner].translation - self.data.oMi[outer].translation)
                levers[s, self.model.joints[outer].idx_v] = reach
            if any(self.model.joints[j].shortname().startswith("JointModelP") for j in chain):  # prismatic
                levers[s, [self.model.joints[j].idx_v for j in chain]] = _NO_BOUND  # chain lengths change
        return levers

    def forget(self) -> None:
        """Start afresh (a reset): the same motion then gives bitwise the same distances."""
        # Each pair's last computed distance and where: d - pair_levers @ |q - q_known| bounds it from below at q
        # (coherence between frames: the torso's or base's bounding sphere alone culls nothing near it).
        self._known_q = np.zeros((len(self.pairs), self.model.nv))
        self._known_d = np.full(len(self.pairs), -np.inf)
        self._known = [None] * len(self.pairs)  # (d, nearest points, normal): reused at the same q (the filter's
        # first linearisation is at the pose its last re-check computed)
        # GJK starts from the pair's last answer: frames are close in time, so it converges in a few steps (a third
        # of the time on G1's hulls).
        self._requests = [coal.DistanceRequest() for _ in self.pairs]
        for request in self._requests:
            request.gjk_initial_guess = coal.GJKInitialGuess.CachedGuess

    @property
    def reach(self) -> float:
        """The furthest any shape point can be from a joint that moves it (metres): the size of the moving body."""
        return float(self._levers.max())

    def _update(self, q_model: np.ndarray) -> None:
        """Forward kinematics, then every shape's placement (rotation, translation) and bounding-sphere centre."""
        pin.framesForwardKinematics(self.model, self.data, q_model)
        self._q = np.array(q_model, dtype=np.float64)
        frames = [self.data.oMf[f] for f in self._frames]
        rotation = np.array([m.rotation for m in frames])[self._slot]
        translation = np.array([m.translation for m in frames])[self._slot]
        self._rotation = np.einsum("sij,sjk->sik", rotation, self._local_rotation)
        self._translation = np.einsum("sij,sj->si", rotation, self._local_translation) + translation
        self._centres_now = np.einsum("sij,sj->si", rotation, self._centres) + translation

    def _closest(self, within: np.ndarray, remember: bool = True
                 ) -> list[tuple[int, float, np.ndarray, np.ndarray, np.ndarray]]:
        """(pair, distance, nearest point on the first shape, on the second, unit normal first -> second) for the
        pairs closer than `within` (n_pairs,) at the last _update. Two lower bounds cull the others cheaply: the
        bounding spheres, and (`remember`: the filter's own queries) each pair's last computed distance less how far
        its shapes can have moved since."""
        centres = self._centres_now
        lower = (np.linalg.norm(centres[self._first] - centres[self._second], axis=1)
                 - self._radii[self._first] - self._radii[self._second])
        same = np.zeros(len(self.pairs), dtype=bool)
        if remember:
            moved = np.abs(self._q - self._known_q)
            known = self._known_d - np.einsum("pv,pv->p", self._pair_levers, moved)  # -inf until computed once
            lower = np.maximum(lower, known)
            same = (moved == 0).all(axis=1) & np.isfinite(self._known_d)
        transforms, found, result = {}, [], self._result
        for k in np.flatnonzero(lower < within):
            if same[k]:
                answer = self._known[k]
            else:
                i, j = self.pairs[k]
                for s in (i, j):
                    if s not in transforms:
                        transforms[s] = coal.Transform3s(self._rotation[s], self._translation[s])
                result.clear()
                request = self._requests[k] if remember else self._request
                d = self._distance[k](transforms[i], transforms[j], request, result)
                answer = (d, result.getNearestPoint1().copy(), result.getNearestPoint2().copy(), result.normal.copy())
                if remember:
                    request.updateGuess(result)
                    self._known_d[k], self._known_q[k], self._known[k] = d, self._q, answer
            if answer[0] < within[k]:
                found.append((int(k), *answer))
        return found

    def distances(self, q_model: np.ndarray) -> np.ndarray:
        """(n_pairs,) signed distance of every declared shape pair at q_model (metres)."""
        self._update(q_model)
        out = np.full(len(self.pairs), np.inf)
        for k, d, *_ in self._closest(np.full(len(self.pairs), np.inf), remember=False):
            out[k] = d
        return out

    def part_distances(self, q_model: np.ndarray) -> dict[tuple[str, str], float]:
        """The smallest distance per declared pair of parts at q_model."""
        out = {}
        for parts, d in zip(self.pair_parts, self.distances(q_model)):
            out[parts] = min(out.get(parts, np.inf), float(d))
        return out

    def closest_distance(self, q_model: np.ndarray, within: float) -> float:
        """The smallest distance over all pairs at q_model when it is below `within`, else some value >= `within`."""
        self._update(q_model)
        return min((d for _, d, *_ in self._closest(np.full(len(self.pairs), within), remember=False)),
                   default=float(within))

    def linearise(self, q_model: np.ndarray, columns: np.ndarray, within: float,
                  step: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Distances d (m,), their Jacobians J (m, len(columns)) and pair indices of the pairs that are closer than
        `within` at q_model, or could become so after a joint step of `step` (column-aligned; none: no step).

        d(q + dq) = d + J dq to first order. The pairs left out are certainly further than `within` at q_model +
        step: each shape's points move at most levers @ |step| (see _lever_bounds).
        """
        self._update(q_model)
        reach = 0.0
        if step is not None:
            dq = np.zeros(self.model.nv)
            dq[columns] = np.abs(step)
            moved = self._levers @ dq
            reach = moved[self._first] + moved[self._second]
        found = self._closest(within + np.broadcast_to(reach, (len(self.pairs),)))
        if not found:
            return np.zeros(0), np.zeros((0, len(columns))), np.zeros(0, dtype=np.int64)
        # Jacobians only now: most steps keep every pair far apart, and they cost more than the culling
        pin.computeJointJacobians(self.model, self.data, q_model)
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
            r = point - origin
            r_x_n = r[:, [1, 2, 0]] * normal[:, [2, 0, 1]] - r[:, [2, 0, 1]] * normal[:, [1, 2, 0]]  # np.cross, 20x faster
            along = np.einsum("mi,min->mn", normal, jac[:, :3]) + np.einsum("mi,min->mn", r_x_n, jac[:, 3:])
            rows += along if side else -along
        return d, rows, pairs


def _capsule(part: str, name: str, frame: int, capsule: Capsule) -> Shape:
    a, b = np.array(capsule.start), np.array(capsule.end)
    axis = b - a
    length = float(np.linalg.norm(axis))
    # coal's capsule lies along its local z axis, centred on the origin.
    z = axis / length if length > 1e-9 else np.array([0.0, 0.0, 1.0])
    rotation = pin.Quaternion.FromTwoVectors(np.array([0.0, 0.0, 1.0]), z).matrix()
    placement = pin.SE3(rotation, (a + b) / 2)
    return Shape(part, name, frame, placement, coal.Capsule(capsule.radius, length), placement.translation.copy(),
                 capsule.radius + length / 2)


def _bounded(shape: Shape) -> Shape:
    shape.geometry.computeLocalAABB()
    return Shape(shape.part, shape.name, shape.frame, shape.placement, shape.geometry,
                 shape.placement.act(np.array(shape.geometry.aabb_center)), float(shape.geometry.aabb_radius))


def _urdf_shapes(urdf_path: str | None, urdf_xml: str | None, config: CollisionConfig,
                 origin: str) -> dict[str, list[tuple[str, pin.SE3, coal.CollisionGeometry]]]:
    """link -> [(name, link -> shape placement, convex geometry)] for the links the parts name (none: no loading)."""
    wanted = frozenset(item for items in config.parts.values() for item in items if isinstance(item, str))
    if not wanted:
        return {}
    xml = urdf_xml if urdf_xml is not None else Path(urdf_path).read_text()
    try:
        return _convex_shapes(xml, wanted, tuple(str(d) for d in mesh_dirs(urdf_path)))
    except (RuntimeError, ValueError) as error:  # a mesh file that cannot be found or read
        raise RobotLoadError(f"profile {origin}: the URDF's collision geometry does not load: {error}") from None


@functools.lru_cache(maxsize=8)
def _convex_shapes(xml: str, wanted: frozenset[str], dirs: tuple[str, ...]
                   ) -> dict[str, list[tuple[str, pin.SE3, coal.CollisionGeometry]]]:
    """_urdf_shapes' work, once per process and robot: reading and hulling G1's meshes takes seconds. The shapes are
    only ever read, so retargeters of one robot share them."""
    # Only the named links' collision elements are kept: loading every mesh of a humanoid (legs, fingers) would
    # take longer still, for shapes that are never used.
    root = ElementTree.fromstring(xml)
    for link in root.iter("link"):
        if link.get("name") not in wanted:
            for element in link.findall("collision"):
                link.remove(element)
    full_model = pin.buildModelFromXML(xml)
    geometry = pin.buildGeomFromUrdfString(full_model, ElementTree.tostring(root, encoding="unicode"), pin.COLLISION,
                                           package_dirs=list(dirs))
    out: dict[str, list] = {}
    for obj in geometry.geometryObjects:
        frame = full_model.frames[obj.parentFrame]
        shape = obj.geometry
        if isinstance(shape, coal.BVHModelBase):  # a mesh: its convex hull, by qhull
            points = coal.StdVec_Vec3s()
            points.extend(list(np.asarray(shape.vertices())))
            shape = coal.Convex.convexHull(points, False, "Qt")
        out.setdefault(frame.name, []).append((obj.name, frame.placement.inverse() * obj.placement, shape))
    return out
