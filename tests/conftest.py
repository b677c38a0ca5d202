"""Test-wide setup: ROS 2 traffic stays on loopback, shared data is located, slow tests are marked.

ROS 2 reads the discovery range (ROS_LOCALHOST_ONLY on Humble) and ROS_DOMAIN_ID when a context is initialised, so
they are set here, at import time, before any test creates a node; child processes started by tests inherit them.
"""
import atexit
import json
import os
import shutil
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import pytest

from ha2g_ros.bringup import loopback_discovery

loopback_discovery()  # discovery never leaves this machine (on Humble too)
# A domain of our own per test session, so parallel runs (and other ROS users here) never see each other.
os.environ["ROS_DOMAIN_ID"] = os.environ.get("HA2G_TEST_ROS_DOMAIN_ID", str(10 + os.getpid() % 90))
# The ROS 2 wheels find their resources through the ament index of the environment they are installed in.
os.environ.setdefault("AMENT_PREFIX_PATH", sys.prefix)
# Exported ONNX files (the nodes' default backend is onnxruntime) go to a cache of this session, not the user's.
_CACHE = tempfile.mkdtemp(prefix="ha2g-test-cache-")
os.environ["XDG_CACHE_HOME"] = _CACHE
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "ha2g_ros"  # the ament_python package folder (package.xml, setup.py, launch/, config/)
SHARED = REPO.parent / "shared"
TED_CULTURE = SHARED / "data" / "ted_culture"
OFFICIAL_FIXTURES = SHARED / "fixtures" / "official_ha2g"


def require_path(path: Path) -> Path:
    """Skip (with the reason) when shared data that lives beside the checkout in CI is missing."""
    if not path.exists():
        pytest.skip(f"{path} not found: the shared data sits beside the checkout in CI, not in a user's clone")
    return path


@pytest.fixture(scope="session")
def ted_culture_dir() -> Path:
    return require_path(TED_CULTURE)


@pytest.fixture(scope="session")
def ted_culture_clips(ted_culture_dir):
    """The real clips as dicts of numpy arrays, sorted by clip id."""
    import numpy as np

    clips = []
    for path in sorted(ted_culture_dir.glob("*.npz")):
        with np.load(path, allow_pickle=False) as data:
            clips.append({key: data[key] for key in data.files})
    assert clips, f"no clips in {ted_culture_dir}"
    return clips


@pytest.fixture(scope="session")
def official_fixtures_dir() -> Path:
    return require_path(OFFICIAL_FIXTURES)


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module of small models: they gain nothing from threads, and on a shared 2-core CPU
    spinning OpenMP threads slow everything down (the modules opt in with `pytest.mark.usefixtures`)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def rclpy_context():
    """A fresh, initialised rclpy Context, shut down after the test (nodes must be destroyed by the test)."""
    rclpy = pytest.importorskip("rclpy")
    context = rclpy.context.Context()
    rclpy.init(context=context)
    try:
        yield context
    finally:
        context.try_shutdown()


# --- the gesture node's inputs, shared by the ROS test modules (tests/ros_harness.py drives the node) ----------

# ~12 s: speech, a 3 s silence (the robot must come to rest), speech again
SPEECH = (("Hello, and welcome to this little demonstration.",
           "I am a robot, and I move my arms while I speak."),
          ("Then I start again, and the gestures come back.",))


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory):
    """The shipped default checkpoint; a random tiny one where it is not installed."""
    torch = pytest.importorskip("torch")
    from ha2g_model.engine import DEFAULT_CHECKPOINT

    if (DEFAULT_CHECKPOINT / "config.json").is_file():
        return DEFAULT_CHECKPOINT
    from ha2g_model.checkpoint import save_checkpoint
    from ha2g_model.config import PRESETS
    from ha2g_model.model import HA2G
    from ha2g_model.text import Vocab

    torch.manual_seed(0)
    config = PRESETS["tiny_expressive"]
    vocab = Vocab("hello and welcome to this little demonstration i am a robot move my arms".split()[:16])
    model = HA2G(replace(config, n_words=len(vocab))).eval()
    return save_checkpoint(tmp_path_factory.mktemp("checkpoint"), model, vocab, {"note": "random, for tests"})


@pytest.fixture(scope="session")
def speech(tmp_path_factory):
    """~12 s of espeak-ng speech with a 3 s pause: (audio, words, wav path, transcript path)."""
    import shutil

    import soundfile

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed: it synthesises the test speech")
    from ha2g_ros.demo import synthesize_speech

    wav, transcript = synthesize_speech(tmp_path_factory.mktemp("speech"), SPEECH)
    audio, rate = soundfile.read(wav, dtype="float32")
    assert rate == 16_000
    words = [(w["word"], w["start"], w["end"]) for w in json.loads(transcript.read_text())["words"]]
    return audio, words, wav, transcript
