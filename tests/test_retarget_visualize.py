"""The side-by-side pictures: both figures drawn, arms coloured on the right side of each view, files written."""
import imageio.v2 as imageio
import numpy as np
import pytest

from ha2g_model.skeleton import TED_EXPRESSIVE
from ha2g_ros.retargeting import Retargeter, load_profile
from ha2g_ros.retargeting.visualize import SIDE_COLOURS, SideBySide, save_animation, save_frames_png

RGB = {side: np.array([int(c[i:i + 2], 16) for i in (1, 3, 5)])
       for side, c in {"left": "#1f77b4", "right": "#d62728"}.items()}  # matplotlib's tab:blue and tab:red


@pytest.fixture(scope="module")
def pepper():
    return Retargeter(load_profile("pepper"))


def colour_columns(image: np.ndarray, side: str) -> np.ndarray:
    """Column indices of the pixels drawn in a side's colour."""
    close = np.abs(image.astype(int) - RGB[side]).sum(axis=-1) < 40
    return np.nonzero(close)[1]


def test_front_view_shows_each_persons_left_arm_on_the_viewers_right(pepper):
    assert SIDE_COLOURS == {"left": "tab:blue", "right": "tab:red"}
    directions = TED_EXPRESSIVE.rest_directions()
    q = pepper.rest_pose()
    image = SideBySide(pepper, size_px=(400, 400)).draw(directions, q, title="rest")
    assert image.shape == (400, 400, 3) and image.dtype == np.uint8
    front = image[:200]  # top row: front views, human left, robot right
    for half in (front[:, :200], front[:, 200:]):
        left, right = colour_columns(half, "left"), colour_columns(half, "right")
        assert len(left) > 20 and len(right) > 20, "both arms are drawn in their colours"
        assert left.mean() > right.mean(), "facing the figure, its left arm appears on the viewer's right"


def test_pictures_and_animations_are_written(pepper, tmp_path, ted_culture_clips):
    clip = ted_culture_clips[0]["dir_vec"][:6]
    pepper.reset()
    q = pepper.solve_sequence(clip)
    png = save_frames_png(tmp_path / "frames.png", pepper, clip, q, [0, 5])
    assert imageio.imread(png).shape[1] == 2 * imageio.imread(png).shape[0]  # two square panels side by side
    for suffix in (".gif", ".mp4"):
        path = save_animation(tmp_path / f"clip{suffix}", pepper, clip, q)
        assert path.stat().st_size > 1000
    assert len(imageio.mimread(tmp_path / "clip.gif")) == len(clip)


def test_missing_bones_are_drawn_at_rest(pepper):
    directions = TED_EXPRESSIVE.rest_directions().copy()
    directions[3] = np.nan
    segments, colours = SideBySide(pepper).human_segments(directions)
    assert np.isfinite(segments).all() and len(colours) == TED_EXPRESSIVE.n_bones
