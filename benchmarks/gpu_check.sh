#!/usr/bin/env bash
# Every CUDA check of this package in one run on a GPU machine (docs/engine.md "GPU"): per-window latency of the
# full-size and compact models (benchmarks/engine.py), the engine streaming real speech on the GPU
# (benchmarks/engine_streaming.py), the GPU tests (pytest -m gpu), mixed-precision training of the default config
# with and without mirroring (issue 15's ablation), and full-size training throughput.
#
#   OUT=results_dir LIMIT_S=560 bash benchmarks/gpu_check.sh WINDOWS_DIR FEATURE_NET_DIR
#
# WINDOWS_DIR: training windows (e.g. `python -m training.export_default data --out DIR --synthetic 0`, the real
# clips only); FEATURE_NET_DIR: the FGD feature net (runs/feature_net). Needs torch with CUDA; runs from a checkout
# without installing it (PYTHONPATH); the streaming stage reads ../shared/data/ted_culture. Each stage has a time
# limit, and the last one takes what is left of LIMIT_S. Results: $OUT/gpu_check.log, engine_cuda.json,
# engine_streaming_cuda.json, training.tar.gz (logs) and the mirror runs' weights (mirror_*.tar) for evaluation
# elsewhere (training/evaluate.py needs librosa and espeak-ng).
set -u
WINDOWS=${1:?windows directory}
FEATURES=${2:?feature net directory}
OUT=${OUT:-benchmarks/results/gpu_check}
RUNS=${RUNS:-/tmp/ha2g_gpu_runs}
PY=${PYTHON:-python3}
LIMIT_S=${LIMIT_S:-560}
mkdir -p "$OUT" "$RUNS"
export PYTHONPATH="$PWD/ha2g_ros:$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-77}  # nothing here uses ROS
exec > >(tee "$OUT/gpu_check.log") 2>&1
stage() { echo; echo "=== $* (${SECONDS} s)"; }

stage machine
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
"$PY" -c "import torch, onnxruntime as o; print('torch', torch.__version__, 'CUDA', torch.version.cuda, \
torch.cuda.get_device_name(), '| onnxruntime', o.__version__, o.get_available_providers())"
echo "cores $(nproc); $(uptime)"

if [ -z "${SKIP_LATENCY:-}" ]; then  # SKIP_LATENCY=1: training and tests only
stage "per-window latency (engine.py), the GPU to itself"
timeout 210 "$PY" benchmarks/engine.py --device cuda --repeats 40 --out "$OUT/engine_cuda.json" \
    --variants torch-fp32 torch-fp32-graph torch-fp16 torch-fp16-graph

stage "streaming real speech (engine_streaming.py), the GPU to itself"
timeout 110 "$PY" benchmarks/engine_streaming.py --device cuda --out "$OUT/engine_streaming_cuda.json"
fi

stage "GPU tests (pytest -m gpu) beside two training runs: the default config, mirrored vs not (bf16)"
# The real windows alone: an epoch is 20 steps of 32, so 40 epochs are ~800 steps (the shipped run: 5 epochs of 153
# steps over the data with the synthetic corpus, which weighs 0), and the GAN warm-up of 2 x 153 steps is 15 epochs.
trainers=()
for mirror in 0.5 0.0; do
    timeout 200 "$PY" -m training.train --config training/configs/compact_english.yaml data="$WINDOWS" \
        out="$RUNS/mirror_$mirror" feature_net="$FEATURES" mirror=$mirror device=cuda epochs=40 \
        gan_warmup_epochs=15 checkpoint_every=10 max_minutes=2.7 workers=0 threads=2 \
        > "$RUNS/mirror_$mirror.log" 2>&1 &
    trainers+=($!)
done
timeout 190 "$PY" -m pytest -q -m gpu -p no:cacheprovider tests/test_backends.py tests/test_training_train.py
wait "${trainers[@]}"  # not a bare wait: it would also wait for the tee above, which never ends
for mirror in 0.5 0.0; do
    tail -c 600 "$RUNS/mirror_$mirror.log"; echo
    for checkpoint in best epoch_0040; do  # the weights: ONNX graphs are remade from them where needed
        [ -d "$RUNS/mirror_$mirror/$checkpoint" ] && tar -cf "$OUT/mirror_${mirror}_$checkpoint.tar" \
            --exclude='*.onnx' -C "$RUNS/mirror_$mirror" "$checkpoint"
    done
done

left=$((LIMIT_S - SECONDS - 20))
if [ "$left" -ge 60 ]; then
    stage "training throughput: full-size TED Expressive (bf16, batch 96), ${left} s"
    timeout "$left" "$PY" -m training.train --config training/configs/ted_expressive.yaml data="$WINDOWS" \
        out="$RUNS/ted_expressive" feature_net=null epochs=30 checkpoint_every=100 \
        max_minutes="$(awk "BEGIN { print ($left - 40) / 60 }")" workers=2 threads=4 device=cuda > "$RUNS/ted_expressive.log" 2>&1
    tail -c 400 "$RUNS/ted_expressive.log"; echo
else
    stage "training throughput: skipped, ${left} s left"
fi
"$PY" -c '
import json, sys
from pathlib import Path
for run in sorted(Path(sys.argv[1]).glob("*/log.jsonl")):  # windows/s after the first epoch (start-up, compiles)
    rows = [json.loads(line) for line in run.read_text().splitlines()]
    rate = sorted(r["windows_per_s"] for r in rows[1:] or rows)
    last = ", ".join(f"{k} {rows[-1][k]:.4g}" for k in ("train_huber", "val_huber", "val_fgd") if k in rows[-1])
    print(f"{run.parent.name}: {len(rows)} epochs, median {rate[len(rate) // 2]:.0f} windows/s; last: {last}")
' "$RUNS"
tar -czf "$OUT/training.tar.gz" -C "$RUNS" --exclude='*.safetensors' --exclude='*.pt' --exclude='*.onnx' .
stage done
