"""Draw a gesture sequence as a stick figure (fingers included): MP4 (audio muxed in when ffmpeg exists) or GIF.

Two views side by side, front (as the audience sees the speaker) and side, drawn in the body frame of
`skeleton.to_body_frame` (x forward, y left, z up), so both TED skeletons look the same way round.
"""
from __future__ import annotations

import itertools
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
from PIL import Image, ImageDraw

from ha2g_model.skeleton import FPS, Skeleton, directions_to_positions, to_body_frame

SIZE = 320  # pixels per view (square)
MAX_GIF_FRAMES = 1_800  # 2 minutes at 15 fps, ~1 GB: a GIF writer (pillow) holds every frame until the end
COLORS = {"left": (40, 110, 220), "right": (220, 60, 40), "centre": (60, 60, 60)}


def render_frames(directions: np.ndarray, skeleton: Skeleton, size: int = SIZE) -> Iterator[np.ndarray]:
    """(T, n_bones, 3) unit directions -> the T frames as (size, 2 * size, 3) uint8 RGB images (front view | side
    view), made one at a time as they are consumed: an hour of them at once would be 33 GB."""
    if directions.ndim != 3 or directions.shape[1:] != (skeleton.n_bones, 3):
        raise ValueError(f"directions must be (T, {skeleton.n_bones}, 3) for {skeleton.name}, "
                         f"got {directions.shape}")
    # front view: the speaker's left (+y) on the viewer's right; side view: forward (+x) to the right
    axes = ([1, 2], [0, 2])
    # one scale and centre for the whole sequence, so the figure does not breathe or drift
    low, high = np.full((2, 2), np.inf), np.full((2, 2), -np.inf)
    for views in _views(directions, skeleton, axes):
        for v, view in enumerate(views):
            low[v] = np.minimum(low[v], view.reshape(-1, 2).min(axis=0))
            high[v] = np.maximum(high[v], view.reshape(-1, 2).max(axis=0))
    scale = 0.9 * size / float((high - low).max())
    centres = (low + high) / 2
    colors = [COLORS[_side(skeleton, child)] for _, child in skeleton.bones]
    widths = [max(1, round(size / 100 * (2.5 if length > 0.1 else 1.2))) for length in skeleton.bone_lengths]

    def frames():
        t = 0
        for views in _views(directions, skeleton, axes):
            for i in range(len(views[0])):
                image = Image.new("RGB", (2 * size, size), (250, 250, 250))
                draw = ImageDraw.Draw(image)
                for v, view in enumerate(views):
                    # (horizontal, up) in metres -> pixels
                    px = (view[i, :, 0] - centres[v][0]) * scale + size / 2 + v * size
                    py = size / 2 - (view[i, :, 1] - centres[v][1]) * scale
                    for (parent, child), color, width in zip(skeleton.bones, colors, widths):
                        draw.line([(px[parent], py[parent]), (px[child], py[child])], fill=color, width=width)
                draw.line([(size, 0), (size, size)], fill=(200, 200, 200))
                draw.text((6, 4), f"front  {t / FPS:5.2f} s", fill=(90, 90, 90))
                draw.text((size + 6, 4), "side", fill=(90, 90, 90))
                yield np.asarray(image)
                t += 1
    return frames()


def _views(directions, skeleton: Skeleton, axes, chunk: int = 1_000):
    """Joint positions of both views, `chunk` frames at a time: (front (n, J, 2), side (n, J, 2))."""
    for i in range(0, len(directions), chunk):
        positions = to_body_frame(directions_to_positions(directions[i:i + chunk].astype(np.float32), skeleton),
                                  skeleton)
        yield tuple(positions[..., a] for a in axes)


def render_video(directions: np.ndarray, skeleton: Skeleton, path: str | Path, audio=None,
                 sample_rate: int = 16000, size: int = SIZE) -> Path:
    """Write `path` (.mp4 or .gif). For MP4 with `audio` (samples or an audio file), the speech is muxed in (needs
    an ffmpeg executable)."""
    path = _video_path(path)  # checked before the slow part
    return write_video(render_frames(directions, skeleton, size), path, audio, sample_rate)


def write_video(frames: Iterable[np.ndarray], path: str | Path, audio=None, sample_rate: int = 16000,
                fps: float = FPS) -> Path:
    """RGB frames (any iterable; they go to the encoder one by one) -> `path` (.mp4 or .gif) at `fps`.

    For MP4, `audio` is muxed in: mono samples at `sample_rate`, or the path of an audio file that ffmpeg reads
    itself. RuntimeError when no ffmpeg is found or the mux fails. A GIF holds every frame until it is written
    (pillow), so more than MAX_GIF_FRAMES are refused."""
    path = _video_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".gif":
        frames = list(itertools.islice(frames, MAX_GIF_FRAMES + 1))
        if len(frames) > MAX_GIF_FRAMES:
            raise ValueError(f"a GIF holds every frame in memory: at most {MAX_GIF_FRAMES} frames; write an MP4")
        imageio.mimsave(path, frames, duration=1000 / fps, loop=0)
        return path
    ffmpeg = find_ffmpeg()
    if ffmpeg is None:
        raise RuntimeError("writing MP4 needs ffmpeg: pip install imageio-ffmpeg, or apt install ffmpeg (or write a "
                           ".gif instead)")
    with tempfile.TemporaryDirectory() as tmp:
        silent = Path(tmp) / "video.mp4"
        with imageio.get_writer(silent, fps=fps, codec="libx264", macro_block_size=16,
                                pixelformat="yuv420p") as writer:
            for frame in frames:
                writer.append_data(frame)
        if audio is None:
            shutil.move(str(silent), path)
            return path
        if isinstance(audio, (str, Path)):
            sound = Path(audio)
        else:
            import soundfile

            sound = Path(tmp) / "audio.wav"
            soundfile.write(sound, np.asarray(audio, np.float32), sample_rate)
        result = subprocess.run([ffmpeg, "-y", "-loglevel", "error", "-i", str(silent), "-i", str(sound),
                                 "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy", "-c:a", "aac", "-shortest",
                                 str(path)], capture_output=True, text=True)
        if result.returncode:
            raise RuntimeError(f"ffmpeg could not mux the audio into {path}: {result.stderr.strip()}")
    return path


def _video_path(path: str | Path) -> Path:
    path = Path(path)
    if path.suffix.lower() not in (".mp4", ".gif"):
        raise ValueError(f"video path must end in .mp4 or .gif, got {path}")
    return path


def find_ffmpeg() -> str | None:
    """imageio-ffmpeg's bundled executable, else the system's ffmpeg, else None."""
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        return shutil.which("ffmpeg")


def _side(skeleton: Skeleton, joint: int) -> str:
    name = skeleton.joint_names[joint]
    return "left" if name.startswith("left") else "right" if name.startswith("right") else "centre"
