"""Speech and gesture as the robot would play them: how far apart, and how soon an utterance is ready.

    python benchmarks/speech_sync.py [--repeats 3] [--out benchmarks/results/speech_sync.json]

Runs the demo's nodes (gesture node, simulated controllers, speech player writing a WAV on the ROS clock, a recorder)
in real time on this machine:
- speak mode, 5 s and 30 s espeak-ng utterances (`repeats` each): request-to-ready time of the speak action (what the
  default start_margin_s must exceed) and the sync measures of ha2g_ros.demo.measure_sync;
- stream mode on the demo's 23 s sample: the live speech relayed to the player playback_delay_s late.
Sync measures (ms, with correlation): speech heard vs scheduled, the controllers' played arm speed vs the gesture
node's targets, and loudness vs arm speed (played and targets; the model's own coupling, weak, see docs/speech.md).
Prints a table and saves JSON with the load average.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "ha2g_ros"))  # the package folder: ha2g_model, ha2g_ros

SENTENCES = ["Hello, and welcome to this little demonstration.",
             "Nice to meet you, and thank you for coming.",
             "I am a robot, and I move my arms while I speak, the way people do.",
             "A wide gesture for something big, and a small one for a detail.",
             "After a short pause, I go on with the next idea.",
             "This one is about the weather, which was lovely this morning.",
             "Then I tell you about my friends, who live far away from here.",
             "We meet every summer by the lake, and we talk for hours."]


def utterance(folder: Path, seconds: float) -> tuple[Path, Path]:
    """An espeak-ng speech file of about `seconds` (whole sentences) and its word timings."""
    import soundfile

    from ha2g_ros.demo import synthesize_speech
    from ha2g_ros.tts import SAMPLE_RATE

    sentences = []
    while True:
        sentences.append(SENTENCES[len(sentences) % len(SENTENCES)])
        wav, transcript = synthesize_speech(folder, [sentences])
        if soundfile.info(wav).frames / SAMPLE_RATE >= seconds:
            return wav, transcript


def run(mode: str, wav: Path, transcript: Path, folder: Path) -> dict:
    import soundfile

    from ha2g_ros.demo import check_recording, measure_sync, merged_motion, run_nodes

    played = folder / f"played_{mode}.wav"
    recording, retargeter, _, meta = run_nodes(mode, wav, transcript, "pepper", None, None, played)
    checks = check_recording(recording, retargeter, merged_motion(recording, retargeter))
    return {"mode": mode, "speech_s": round(soundfile.info(wav).duration, 2),
            "request_to_ready_s": meta.get("request_to_ready_s"), "playback_delay_s": meta["playback_delay_s"],
            "speech_sync": measure_sync(recording, meta, wav, played),
            "within_limits": checks["n_message_problems"] == 0 and checks["n_motion_problems"] == 0,
            "late_frames": meta["stats"]["late_frames"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "speech_sync.json")
    args = parser.parse_args()
    from ha2g_ros.demo import loopback_environment, synthesize_speech
    from ha2g_ros.gesture_node import PARAMS

    loopback_environment()
    load_before = os.getloadavg()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for seconds in (5.0, 30.0):
            folder = tmp / f"{seconds:g}s"
            wav, transcript = utterance(folder, seconds)
            for _ in range(args.repeats):
                runs.append(run("speak", wav, transcript, folder))
                print(json.dumps(runs[-1]), flush=True)
        wav, transcript = synthesize_speech(tmp / "sample")
        runs.append(run("stream", wav, transcript, tmp / "sample"))
        print(json.dumps(runs[-1]), flush=True)
    margin = next(p.default for p in PARAMS if p.name == "start_margin_s")
    print(f"\n{'mode':7} {'speech s':>8} {'ready s':>8} {'heard-sched ms':>15} {'played-targets ms':>18} "
          f"{'arm after loudness ms (played/targets)':>40}")
    for r in runs:
        s = r["speech_sync"]
        print(f"{r['mode']:7} {r['speech_s']:8.1f} {r['request_to_ready_s'] or float('nan'):8.2f} "
              f"{s['heard_after_scheduled']['ms']:15.1f} {s['played_after_targets']['ms']:18.1f} "
              f"{s['played_arm_speed_after_loudness']['ms']:19.1f} / {s['target_arm_speed_after_loudness']['ms']:.1f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": {"cpus": os.cpu_count(), "load_average_before": load_before,
                                                "load_average_after": os.getloadavg()},
                                    "date": time.strftime("%Y-%m-%d %H:%M"), "start_margin_s_default": margin,
                                    "runs": runs}, indent=1) + "\n")
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
