"""Draw both HA2G skeletons (rest pose, bones coloured by hierarchy level) to docs/images/skeletons.png."""
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ha2g_model.skeleton import TED_EXPRESSIVE, TED_GESTURE, directions_to_positions, to_body_frame  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "docs" / "images" / "skeletons.png"


def draw(ax, skeleton, view):
    positions = to_body_frame(directions_to_positions(skeleton.rest_directions(), skeleton), skeleton)
    # Body frame: x forward, y left, z up. Front view: the person faces us, so their left (+y) is on our right.
    horizontal = positions[:, 1] if view == "front" else positions[:, 0]
    vertical = positions[:, 2]
    level_of = {}
    for level, bones in enumerate(skeleton.levels):
        for bone in bones:
            level_of.setdefault(bone, level)
    colours = plt.cm.viridis(np.linspace(0, 0.9, len(skeleton.levels)))
    for bone, (parent, child) in enumerate(skeleton.bones):
        ax.plot(horizontal[[parent, child]], vertical[[parent, child]], color=colours[level_of[bone]], lw=2)
    ax.scatter(horizontal, vertical, s=8, color="k", zorder=3)
    for joint in (0, 1):
        ax.annotate(skeleton.joint_names[joint], (horizontal[joint], vertical[joint]), fontsize=7,
                    xytext=(4, -8), textcoords="offset points")
    left = skeleton.joint_names.index("left_wrist")
    ax.annotate("left wrist", (horizontal[left], vertical[left]), fontsize=7, xytext=(4, 0),
                textcoords="offset points")
    handles = [plt.Line2D([], [], color=c, lw=2, label=f"level {i + 1} ({3 * len(skeleton.levels[i])} values)")
               for i, c in enumerate(colours)]
    ax.legend(handles=handles, fontsize=6, loc="upper left" if view == "front" else "lower left", frameon=False)
    ax.set_title(f"{skeleton.name}: {skeleton.n_joints} joints, {skeleton.n_bones} bones ({view} view)", fontsize=9)
    ax.set_aspect("equal")
    ax.axis("off")


def main():
    fig, axes = plt.subplots(1, 3, figsize=(12, 5))
    draw(axes[0], TED_GESTURE, "front")
    draw(axes[1], TED_EXPRESSIVE, "front")
    draw(axes[2], TED_EXPRESSIVE, "side")
    fig.suptitle("HA2G skeletons at the mean (rest) pose; colour = hierarchy level that first predicts the bone")
    fig.tight_layout()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT, dpi=110)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
