"""Draw a gesture sequence as a stick figure (fingers included): MP4 (audio muxed in when ffmpeg exists) or GIF.

Two views side by side, front (as the audience sees the speaker) and side, drawn in the body frame of
`skeleton.to_body_frame` (x forward, y left, z up), so both TED skeletons look the same way round.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
from PIL import Image, ImageDraw

from ha2g_model.skeleton import FPS, Skeleton, directions_to_positions, to_body_frame

SIZE = 320  # pixels per view (square)
COLORS = {"left": (40, 110, 220), "right": (220, 60, 40), "centre": (60, 60, 60)}


def render_frames(directions: np.ndarray, skeleton: Skeleton, size: int = SIZE) -> np.ndarray:
    """(T, n_bones, 3) unit directions -> (T, size, 2 * size, 3) uint8 RGB images (front view | side view)."""
    if directions.ndim != 3 or directions.shape[1:] != (skeleton.n_bones, 3):
        raise ValueError(f"directions must be (T, {skeleton.n_bones}, 3) for {skeleton.name}, "
                         f"got {directions.shape}")
    positions = to_body_frame(directions_to_positions(directions.astype(np.float32), skeleton), skeleton)
    # front view: the speaker's left (+y) on the viewer's right; side view: forward (+x) to the right
    views = (positions[..., [1, 2]], positions[..., [0, 2]])
    # one scale and centre for the whole sequence, so the figure does not breathe or drift
    low = [v.reshape(-1, 2).min(axis=0) for v in views]
    high = [v.reshape(-1, 2).max(axis=0) for v in views]
    scale = 0.9 * size / max(float((hi - lo).max()) for lo, hi in zip(low, high))
    centres = [(lo + hi) / 2 for lo, hi in zip(low, high)]
    colors = [COLORS[_side(skeleton, child)] for _, child in skeleton.bones]
    widths = [max(1, round(size / 100 * (2.5 if length > 0.1 else 1.2))) for length in skeleton.bone_lengths]
    frames = np.empty((len(directions), size, 2 * size, 3), np.uint8)
    for t in range(len(directions)):
        image = Image.new("RGB", (2 * size, size), (250, 250, 250))
        draw = ImageDraw.Draw(image)
        for v, view in enumerate(views):
            # (horizontal, up) in metres -> pixels
            px = (view[t, :, 0] - centres[v][0]) * scale + size / 2 + v * size
            py = size / 2 - (view[t, :, 1] - centres[v][1]) * scale
            for (parent, child), color, width in zip(skeleton.bones, colors, widths):
                draw.line([(px[parent], py[parent]), (px[child], py[child])], fill=color, width=width)
        draw.line([(size, 0), (size, size)], fill=(200, 200, 200))
        draw.text((6, 4), f"front  {t / FPS:5.2f} s", fill=(90, 90, 90))
        draw.text((size + 6, 4), "side", fill=(90, 90, 90))
        frames[t] = np.asarray(image)
    return frames


def render_video(directions: np.ndarray, skeleton: Skeleton, path: str | Path, audio: np.ndarray | None = None,
                 sample_rate: int = 16000, size: int = SIZE) -> Path:
    """Write `path` (.mp4 or .gif). For MP4 with `audio`, the speech is muxed in (needs an ffmpeg executable)."""
    path = _video_path(path)  # checked before the slow part
    return write_video(render_frames(directions, skeleton, size), path, audio, sample_rate)


def write_video(frames, path: str | Path, audio: np.ndarray | None = None, sample_rate: int = 16000,
                fps: float = FPS) -> Path:
    """RGB frames -> `path` (.mp4 or .gif) at `fps`. For MP4 with `audio`, the sound is muxed in (needs an ffmpeg
    executable); RuntimeError when no ffmpeg is found or the mux fails."""
    path = _video_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".gif":
        imageio.mimsave(path, list(frames), duration=1000 / fps, loop=0)
        return path
    ffmpeg = find_ffmpeg()
    if ffmpeg is None:
        raise RuntimeError("writing MP4 needs ffmpeg: pip install imageio-ffmpeg, or apt install ffmpeg (or write a "
                           ".gif instead)")
    with tempfile.TemporaryDirectory() as tmp:
        silent = Path(tmp) / "video.mp4"
        imageio.mimsave(silent, list(frames), fps=fps, codec="libx264", macro_block_size=16,
                        pixelformat="yuv420p")
        if audio is None:
            shutil.move(str(silent), path)
            return path
        import soundfile

        wav = Path(tmp) / "audio.wav"
        soundfile.write(wav, np.asarray(audio, np.float32), sample_rate)
        result = subprocess.run([ffmpeg, "-y", "-loglevel", "error", "-i", str(silent), "-i", str(wav),
                                 "-c:v", "copy", "-c:a", "aac", "-shortest", str(path)],
                                capture_output=True, text=True)
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
