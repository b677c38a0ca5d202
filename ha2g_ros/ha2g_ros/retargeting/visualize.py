"""Pictures: the human skeleton and the robot side by side, seen from the front and from the side.

The human is drawn from its bone directions (ha2g_model.skeleton), the robot as a stick figure through the joint
placements pinocchio computes for the full URDF model. Both are drawn in their own torso frame (x forward, y left,
z up); the arm bones the retargeting matches are coloured (left arm blue, right arm red) on both.
"""
from __future__ import annotations

from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pinocchio as pin
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ha2g_model.skeleton import directions_to_positions
from ha2g_ros.retargeting.human import bone_map_for, torso_rotation, unit_bones
from ha2g_ros.retargeting.retargeter import Retargeter

SIDE_COLOURS = {"left": "tab:blue", "right": "tab:red"}
GREY = "0.45"  # everything that is not a matched arm bone
# (horizontal, vertical) body axes of each view: the front view faces the person, so their left (+y) appears on the
# viewer's right; the side view looks at their right side, so forward (+x) points to the viewer's right.
VIEWS = {"front": (1, 2), "side": (0, 2)}


class SideBySide:
    """Reusable figure: human | robot, front view on top, side view below. `draw` returns an RGB image."""

    def __init__(self, retargeter: Retargeter, size_px: tuple[int, int] = (640, 640)):
        self.rt = retargeter
        self.model = retargeter.full_model
        self.data = self.model.createData()
        self._q_full = pin.neutral(self.model)
        self._full_qi = np.array([self.model.joints[self.model.getJointId(n)].idx_q for n in retargeter.joint_names])
        self._torso = self.model.getFrameId(retargeter.profile.torso)
        self._arm_frames = {side: [self.model.getFrameId(getattr(arm, r)) for r in ("shoulder", "elbow", "wrist")]
                            for side, arm in retargeter.profile.arms.items()}
        self.figure = Figure(figsize=(size_px[0] / 100, size_px[1] / 100), dpi=100)
        self.canvas = FigureCanvasAgg(self.figure)
        self.axes = {}
        for row, view in enumerate(VIEWS):
            for col, who in enumerate(("human", "robot")):
                ax = self.figure.add_subplot(2, 2, 2 * row + col + 1)
                ax.set_aspect("equal")
                ax.set_xticks([])
                ax.set_yticks([])
                ax.set_title(f"{who if who == 'human' else retargeter.profile.name} ({view})", fontsize=9)
                self.axes[who, view] = ax
        self.figure.tight_layout()
        self._lines: dict = {}

    # --- geometry -------------------------------------------------------------------------------------------------

    def human_segments(self, directions: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """(n_bones, 2, 3) bone end points in the speaker's torso frame, and a colour per bone."""
        bones = bone_map_for(directions)
        unit, valid = unit_bones(directions)
        unit[~valid] = bones.skeleton.rest_directions()[~valid]  # draw missing bones at rest rather than not at all
        rotation = torso_rotation(unit, valid, bones)
        if rotation is None:
            rotation = bones.rest_torso
        positions = directions_to_positions(unit, bones.skeleton) @ rotation.T
        parents, children = zip(*bones.skeleton.bones)
        colours = [GREY] * len(parents)
        for side in ("left", "right"):
            colours[bones.upper_arm[side]] = colours[bones.forearm[side]] = SIDE_COLOURS[side]
        return np.stack([positions[list(parents)], positions[list(children)]], axis=1), colours

    def robot_segments(self, q: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """(n, 2, 3) stick-figure segments of the whole robot at q, in its torso frame, and a colour per segment."""
        self._q_full[self._full_qi] = q
        pin.forwardKinematics(self.model, self.data, self._q_full)
        pin.updateFramePlacements(self.model, self.data)
        torso_inv = self.data.oMf[self._torso].inverse()
        joints = np.array([(torso_inv * placement).translation for placement in self.data.oMi])
        segments = [(joints[self.model.parents[j]], joints[j]) for j in range(2, self.model.njoints)]
        colours = [GREY] * len(segments)
        for side, frames in self._arm_frames.items():
            points = [(torso_inv * self.data.oMf[f]).translation for f in frames]
            segments += [(points[0], points[1]), (points[1], points[2])]
            colours += [SIDE_COLOURS[side]] * 2
        return np.array(segments), colours

    # --- drawing --------------------------------------------------------------------------------------------------

    def draw(self, directions: np.ndarray, q: np.ndarray, title: str = "") -> np.ndarray:
        for who, (segments, colours) in (("human", self.human_segments(np.asarray(directions))),
                                         ("robot", self.robot_segments(q))):
            for view, (h, v) in VIEWS.items():
                ax = self.axes[who, view]
                key = (who, view)
                xs, ys = segments[:, :, h], segments[:, :, v]
                if key not in self._lines:  # first frame: create the artists and fix the limits
                    self._lines[key] = [ax.plot(x, y, color=c, lw=1.2 if c == GREY else 2.5,
                                                solid_capstyle="round")[0]
                                        for x, y, c in zip(xs, ys, colours)]
                    # Frame the upper body: centred between the shoulders, wide enough for outstretched arms.
                    arms = segments[[i for i, c in enumerate(colours) if c != GREY]]
                    reach = 1.15 * np.linalg.norm(arms[:, 1] - arms[:, 0], axis=1).sum() / 2
                    centre = arms[:, 0].mean(axis=0)
                    ax.set_xlim(centre[h] - reach, centre[h] + reach)
                    ax.set_ylim(centre[v] - reach, centre[v] + reach)
                else:
                    for line, x, y in zip(self._lines[key], xs, ys):
                        line.set_data(x, y)
        self.figure.suptitle(title, fontsize=9)
        self.canvas.draw()
        return np.asarray(self.canvas.buffer_rgba())[:, :, :3].copy()


def save_frames_png(path: str | Path, retargeter: Retargeter, directions: np.ndarray, q: np.ndarray,
                    frames: list[int], fps: float = 15.0) -> Path:
    """One image of several frames of a clip next to each other (one side-by-side panel per frame)."""
    panels = []
    for i in frames:
        view = SideBySide(retargeter, size_px=(480, 480))
        panels.append(view.draw(directions[i], q[i], title=f"t = {i / fps:.1f} s"))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    imageio.imwrite(path, np.concatenate(panels, axis=1))
    return path


def save_animation(path: str | Path, retargeter: Retargeter, directions: np.ndarray, q: np.ndarray,
                   fps: float = 15.0) -> Path:
    """A clip as .mp4 (ffmpeg through imageio-ffmpeg) or .gif, chosen by the suffix of `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    view = SideBySide(retargeter, size_px=(480, 480))
    options = {"fps": fps, "macro_block_size": 16} if path.suffix == ".mp4" else {"duration": 1000 / fps, "loop": 0}
    with imageio.get_writer(path, **options) as writer:
        for i, (frame, angles) in enumerate(zip(directions, q)):
            writer.append_data(view.draw(frame, angles, title=f"t = {i / fps:.1f} s"))
    return path
