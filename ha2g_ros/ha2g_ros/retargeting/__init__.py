"""Retargeting HA2G gestures (human bone directions) onto robot arms and hands; no ROS imports, usable offline.

    from ha2g_ros.retargeting import Retargeter, load_profile
    retargeter = Retargeter(load_profile("pepper"))
    q = retargeter.solve(directions)  # (42, 3) or (9, 3) unit bone vectors in the TED frame -> joint positions

See docs/retargeting.md.
"""
from ha2g_ros.retargeting.profile import RobotProfile, load_profile, profile_from_dict, shipped_profiles
from ha2g_ros.retargeting.retargeter import JointCommand, Retargeter
from ha2g_ros.retargeting.robot import RobotLoadError, load_model

__all__ = ["JointCommand", "Retargeter", "RobotLoadError", "RobotProfile", "load_model", "load_profile",
           "profile_from_dict", "shipped_profiles"]
