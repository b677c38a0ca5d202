"""`python -m ha2g_ros.retargeting <URDF source> [frame]`: a robot's joints, limits and frames, to write a profile.

With `frame`, frame positions are given in that frame (e.g. the hand link: read off its forward and thumb-side axes).
"""
import sys

from ha2g_ros.retargeting.robot import RobotLoadError, describe, load_model

if len(sys.argv) not in (2, 3):
    sys.exit("usage: python -m ha2g_ros.retargeting <URDF path | package://pkg/path | python://module/path> [frame]")
try:
    print(describe(load_model(sys.argv[1]), *sys.argv[2:]))
except RobotLoadError as error:
    sys.exit(f"error: {error}")
