"""Test-wide setup: ROS 2 traffic stays on loopback, shared data is located, slow tests are marked.

ROS 2 reads ROS_AUTOMATIC_DISCOVERY_RANGE and ROS_DOMAIN_ID when a context is initialised, so they are set here, at
import time, before any test creates a node; child processes started by tests inherit them.
"""
import os
import sys
from pathlib import Path

import pytest

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"  # discovery never leaves this machine
os.environ.pop("ROS_LOCALHOST_ONLY", None)  # deprecated; conflicts with the range on newer distros
# A domain of our own per test session, so parallel runs (and other ROS users here) never see each other.
os.environ["ROS_DOMAIN_ID"] = os.environ.get("HA2G_TEST_ROS_DOMAIN_ID", str(10 + os.getpid() % 90))
# The ROS 2 wheels find their resources through the ament index of the environment they are installed in.
os.environ.setdefault("AMENT_PREFIX_PATH", sys.prefix)

REPO = Path(__file__).resolve().parents[1]
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
