"""The main job, `ha2g-demo`: speech sample -> bringup -> recorded trajectories, limit checks, GIF, summary."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("rclpy")

pytestmark = [pytest.mark.ros, pytest.mark.slow]


@pytest.fixture(scope="module")
def espeak():
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed: it synthesises the demo's speech")


def test_speech_sample_has_consistent_word_timings(espeak, tmp_path):
    import soundfile

    from ha2g_ros.demo import synthesize_speech
    from ha2g_ros.voice_activity import frame_levels_db

    wav, transcript = synthesize_speech(tmp_path)
    audio, rate = soundfile.read(wav, dtype="float32")
    words = json.loads(transcript.read_text())["words"]
    assert rate == 16000 and len(audio) / rate > 15
    starts, ends = np.array([w["start"] for w in words]), np.array([w["end"] for w in words])
    assert np.all(ends > starts) and np.all(starts[1:] >= ends[:-1] - 1e-6)
    assert ends[-1] <= len(audio) / rate
    # the words sit on the speech: frames inside words are mostly voiced, the long pause is silent
    levels = frame_levels_db(audio)
    frame_t = (np.arange(len(levels)) + 0.5) * 0.02
    inside = np.zeros(len(levels), bool)
    for s, e in zip(starts, ends):
        inside |= (frame_t >= s) & (frame_t < e)
    assert np.mean(levels[inside] > -40) > 0.8
    gap = np.argmax(starts[1:] - ends[:-1])
    pause = (frame_t > ends[gap] + 0.1) & (frame_t < starts[gap + 1] - 0.1)
    assert pause.sum() > 50 and np.all(levels[pause] < -60)


def run_demo(out, checkpoint, *options):
    result = subprocess.run([sys.executable, "-m", "ha2g_ros.demo", "--checkpoint", str(checkpoint), "--out",
                             str(out), *options], env=os.environ.copy(), capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads((out / "summary.json").read_text())


def test_demo_end_to_end(espeak, checkpoint, tmp_path):  # noqa: F811
    """The README's first command: the robot says the sample through the speak action and the speech player."""
    out = tmp_path / "demo"
    summary = run_demo(out, checkpoint, "--video", "gif")
    assert summary["mode"] == "speak"
    assert summary["all_within_limits"], summary["limit_checks"]
    sync = summary["speech_sync"]
    assert abs(sync["heard_after_scheduled"]["ms"]) <= 1.0  # the player put the speech exactly at its stamp
    assert abs(sync["played_after_targets"]["ms"]) <= 100  # the controllers follow the targets closely (~40 ms)
    assert 0 < summary["request_to_ready_s"] < 30
    info = json.loads((out / "speech_played.wav.json").read_text())
    assert info["late_samples"] == 0
    assert set(summary["messages"]) == {"left_arm", "right_arm", "left_hand", "right_hand"}
    assert all(n > 5 for n in summary["messages"].values())
    assert summary["node_stats"]["bad_audio"] == 0 and summary["node_stats"]["inference_errors"] == 0
    import imageio.v2 as imageio

    frames = imageio.mimread(out / "demo.gif")
    assert len(frames) > 30 and frames[0].shape[0] >= 400
    with np.load(out / "trajectories.npz") as data:
        assert data["positions"].shape == (len(data["times"]), len(data["joint_names"]))


@pytest.mark.slow
def test_streaming_demo_relays_the_voice_to_meet_its_gestures(espeak, checkpoint, tmp_path):  # noqa: F811
    summary = run_demo(tmp_path / "demo", checkpoint, "--mode", "stream", "--video", "none")
    assert summary["mode"] == "stream" and summary["all_within_limits"], summary["limit_checks"]
    # the relayed voice is heard playback_delay_s after the live speech arrived: where its gestures play
    assert abs(summary["speech_sync"]["heard_after_scheduled"]["ms"]) <= 67
    assert summary["node_stats"]["late_frames"] == 0
    assert summary["latency"]["compute_ms_mean"] > 0
