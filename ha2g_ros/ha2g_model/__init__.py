"""ha2g_model: HA2G (Hierarchical Audio-to-Gesture, CVPR 2022) in PyTorch, its front-ends, checkpoints and runtimes.

No ROS imports here: the model, the engine and the backends are usable from plain Python.
"""
