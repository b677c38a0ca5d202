"""`python -m ha2g_ros.retargeting <URDF source>`: print a robot's joints, limits and frames (to write a profile)."""
import sys

from ha2g_ros.retargeting.robot import RobotLoadError, describe, load_model

if len(sys.argv) != 2:
    sys.exit("usage: python -m ha2g_ros.retargeting <URDF path | package://pkg/path | python://module/path>")
try:
    print(describe(load_model(sys.argv[1])))
except RobotLoadError as error:
    sys.exit(f"error: {error}")
