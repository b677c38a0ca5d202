"""ha2g-say: text -> speech -> the gesture node's speak action, so that the robot says it and gestures with it.

    ha2g-say "Hello, I am Pepper"                          # espeak-ng, word timings measured, starts when ready
    ha2g-say --tts "pico2wave -w {wav} {text}" "Hello"     # any TTS command that writes a WAV ({words}: timings)
    ha2g-say --listen                                      # a node: says every std_msgs/String sent to `say`

The speech itself goes out of the gesture node on speech_audio, stamped with its start time: run the speech player
(`ros2 run ha2g_ros speech_player`, or ha2g-bringup --speech-player) where the robot's speaker is, or play that
topic on the robot's own audio system. Node options (remapping, a namespace) follow `--ros-args`.
"""
from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np


class SayError(RuntimeError):
    """Speech that cannot be made or spoken; the text says why."""


def synthesize(text: str, tts_command: str | None = None):
    """(samples float32 (n, channels) or (n,), sample rate, timed words or None) for `text`."""
    if tts_command is None:
        from ha2g_ros.tts import SAMPLE_RATE, synthesize_paragraphs

        sentences = [s.strip() for s in re.split(r"(?<=[.!?;:])\s+", text.strip()) if s.strip()]
        if not sentences:
            raise SayError("nothing to say: the text is empty")
        audio, words = synthesize_paragraphs([sentences], lead_s=0.0)
        return audio, SAMPLE_RATE, words
    import soundfile

    from ha2g_ros.transcript import TranscriptError, parse_transcript

    with tempfile.TemporaryDirectory() as tmp:
        wav, timings = Path(tmp) / "speech.wav", Path(tmp) / "words.json"
        command = [part.replace("{wav}", str(wav)).replace("{text}", text).replace("{words}", str(timings))
                   for part in shlex.split(tts_command)]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode or not wav.is_file():
            raise SayError(f"the TTS command {command[0]!r} failed (exit {done.returncode}) or wrote no {{wav}}: "
                           f"{done.stderr.strip()[-300:]}")
        audio, rate = soundfile.read(wav, dtype="float32", always_2d=False)
        words = None
        if timings.is_file():
            try:
                words = list(parse_transcript(timings.read_text()).words)
            except TranscriptError as error:
                raise SayError(f"the TTS command's {{words}} file is not a transcript: {error}") from None
    return audio, rate, words


def goal_for(audio: np.ndarray, rate: int, words, text: str):
    from ha2g_interfaces.action import SpeakWithGestures

    audio = np.asarray(audio, np.float32)
    goal = SpeakWithGestures.Goal(sample_rate=int(rate), channels=1 if audio.ndim == 1 else audio.shape[1])
    goal.samples.frombytes(np.ascontiguousarray(audio).tobytes())
    if words:
        goal.words = [w for w, _, _ in words]
        goal.word_start_s = [float(s) for _, s, _ in words]
        goal.word_end_s = [float(e) for _, _, e in words]
    else:
        goal.text = text  # spread over the voiced part by the gesture node
    return goal


def main(argv=None) -> None:
    import rclpy
    from action_msgs.msg import GoalStatus
    from rclpy.action import ActionClient
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from std_msgs.msg import String

    from ha2g_interfaces.action import SpeakWithGestures

    argv = sys.argv[1:] if argv is None else argv
    ros_args = argv[argv.index("--ros-args"):] if "--ros-args" in argv else []
    parser = argparse.ArgumentParser(prog="ha2g-say", description=__doc__.split("\n\n")[0],
                                     epilog="Node options after --ros-args (e.g. -r speak:=/robot1/speak).")
    parser.add_argument("text", nargs="?", help="what to say (omit with --listen)")
    parser.add_argument("--tts", help="TTS command writing a WAV: {text}, {wav} and optionally {words} (transcript "
                                      "JSON with word timings) are replaced; default: espeak-ng")
    parser.add_argument("--listen", action="store_true", help="stay up and say every String on the `say` topic")
    parser.add_argument("--server-timeout", type=float, default=10.0, metavar="S",
                        help="how long to wait for the gesture node's speak action (default 10 s)")
    args = parser.parse_args(argv[:len(argv) - len(ros_args)])
    if not args.listen and not args.text:
        parser.error("give the text to say, or --listen")

    rclpy.init(args=["ha2g-say", *ros_args])
    node = rclpy.create_node("say")
    client = ActionClient(node, SpeakWithGestures, "speak")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    log = node.get_logger()

    def speak(text: str):
        audio, rate, words = synthesize(text, args.tts)
        return client.send_goal_async(goal_for(audio, rate, words, text))

    try:
        if not client.wait_for_server(timeout_sec=args.server_timeout):
            raise SayError(f"no gesture node offers the speak action (waited {args.server_timeout:g} s): start one (ha2g-bringup, or ros2 launch ha2g_ros gestures.launch.py) in this "
                           "ROS_DOMAIN_ID, or remap speak:=<its action>")
        if args.listen:
            node.create_subscription(String, "say", lambda msg: speak(msg.data) if msg.data.strip() else None, 10)
            log.info("saying every String sent to `say`")
            executor.spin()
            return
        sent = speak(args.text)
        executor.spin_until_future_complete(sent, timeout_sec=args.server_timeout)
        if not sent.done():
            raise SayError(f"the gesture node did not answer the goal within {args.server_timeout:g} s")
        handle = sent.result()
        if not handle.accepted:
            raise SayError("the gesture node rejected the utterance")
        done = handle.get_result_async()
        try:
            executor.spin_until_future_complete(done)
        except KeyboardInterrupt:  # Ctrl-C while it speaks: the robot stops talking and fades to rest
            executor.spin_until_future_complete(handle.cancel_goal_async(), timeout_sec=2.0)
            raise
        result, status = done.result().result, done.result().status
        start = result.start_time.sec + result.start_time.nanosec * 1e-9
        print(f"{result.message}: {result.duration_s:.2f} s of speech, {result.frames} gesture frames, ready "
              f"{result.ready_after_s:.2f} s after the request, started at ROS time {start:.3f}")
        if status != GoalStatus.STATUS_SUCCEEDED:
            raise SystemExit(1)
    except SayError as error:
        log.fatal(str(error))
        raise SystemExit(1) from None
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
