#!/usr/bin/env bash
# One command on a fresh Debian/Ubuntu machine with Python 3.10+:
#   creates .venv, installs everything the package needs, then runs the main job (the gesture demo on the shipped
#   checkpoint, the default robot and the bundled speech sample). `--no-run` stops after the setup.
# Idempotent: a second run only re-installs when requirements*.txt, setup.py or package.xml changed.
set -euo pipefail
cd "$(dirname "$0")/.."

run_demo=1
[ "${1:-}" = "--no-run" ] && run_demo=0
export PIP_DISABLE_PIP_VERSION_CHECK=1

log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

# 1. System packages: PortAudio (microphone node), espeak-ng (speech sample), ffmpeg (videos with sound).
missing=()
for pkg in libportaudio2 espeak-ng ffmpeg; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then apt=(); elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then apt=(sudo); else apt=(none); fi
  if [ "${apt[*]}" = none ]; then
    log "WARNING: missing Debian packages ${missing[*]} and no root/sudo: install them yourself for the microphone, speech sample and video sound"
  else
    log "installing Debian packages: ${missing[*]}"
    "${apt[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

# 2. The virtual environment.
python=${PYTHON:-python3}
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' || { log "Python 3.10+ is required (found $("$python" --version))"; exit 1; }
[ -x .venv/bin/python ] || { log "creating .venv"; "$python" -m venv .venv; }
venv_python=.venv/bin/python
pip() { "$venv_python" -m pip "$@"; }

stamp=.venv/.ha2g-setup-stamp
want=$(cat requirements.txt requirements-ros.txt setup.py package.xml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  # 3. torch first and pinned: an open range would pull a multi-GB CUDA build where a CPU build is wanted.
  if ! "$venv_python" -c 'import torch' 2>/dev/null; then
    log "installing torch 2.13.0"
    pip install -q "torch==2.13.0"
  fi
  # 4. ROS 2: the system's when it imports (apt-installed and sourced), otherwise the wheels from the package registry.
  if "$venv_python" -c 'import rclpy' 2>/dev/null; then
    log "using the ROS 2 found on this system"
  else
    log "installing the ROS 2 Python wheels (rclpy + messages)"
    pip install -q -r requirements-ros.txt
  fi
  # 5. Everything else, then the package itself (editable, so the checkout is what runs).
  log "installing Python requirements"
  pip install -q -r requirements.txt
  # Pepper's and NAO's URDFs ship inside qibullet; its simulator dependency (pybullet, a long native build) is not
  # needed for them, and requirements.txt cannot say --no-deps.
  pip install -q --no-deps "qibullet==1.4.6"
  pip install -q --no-build-isolation -e . 2>&1 | grep -v -i "editable\|!!\|\*\*\*\|name as your package\|^ *$\|with strategy" || true
  echo "$want" > "$stamp"
  log "setup complete"
else
  log ".venv is up to date"
fi

# 6. The main job.
if [ "$run_demo" = 1 ]; then
  exec .venv/bin/ha2g-demo
fi
