"""Where the gesture node's CPU goes: thread CPU time of each stage of its tick (and of the speak action's worker),
and of its whole process.

The tick marks the end of each stage (`lap`); the time since the previous mark counts for that stage. `shares` turns
what was counted since its last call into percent of one core, for /diagnostics: on a robot, rqt_robot_monitor then
shows which stage a slow CPU spends its time on (a profile's collision shapes in retargeting, a large model...).
Reading the clocks costs a fraction of a microsecond, a few times per tick.
"""
from __future__ import annotations

import time

TICK_STAGES = ("taking_messages", "utterances", "audio", "model", "retargeting", "planning", "publishing", "other")


class StageCPU:
    def __init__(self):
        self.seconds = dict.fromkeys(TICK_STAGES, 0.0)  # thread CPU time per stage since the node started
        self._mark = time.thread_time()
        self._since = (time.monotonic(), time.process_time(), dict(self.seconds))

    def start(self) -> None:
        """The tick begins: what the thread did before it (the executor, other callbacks) is not a stage's."""
        self._mark = time.thread_time()

    def lap(self, stage: str) -> None:
        """`stage` ends now: the thread CPU time since the last mark is its."""
        now = time.thread_time()
        self.seconds[stage] += now - self._mark
        self._mark = now

    def add(self, stage: str, seconds: float) -> None:
        """CPU time spent for `stage` on another thread (the speak action's worker), counted now."""
        self.seconds[stage] += seconds

    def shares(self) -> dict[str, float]:
        """Percent of one core since the last call: `process` (every thread of the process hosting the node:
        executor, middleware, the speak action's worker, and other nodes composed into it) and each stage."""
        wall, process, seconds = self._since
        self._since = (time.monotonic(), time.process_time(), dict(self.seconds))
        elapsed = self._since[0] - wall
        if elapsed <= 0:
            return {}
        out = {"process": 100 * (self._since[1] - process) / elapsed}
        out.update({stage: 100 * (self.seconds[stage] - seconds[stage]) / elapsed for stage in TICK_STAGES})
        return out
