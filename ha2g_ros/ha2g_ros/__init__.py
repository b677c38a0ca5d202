"""ha2g_ros: ROS 2 nodes that make a robot gesture while it speaks (HA2G + URDF-driven retargeting).

Importing this package imports no ROS module: `ha2g_ros.retargeting` is usable offline.
"""
