#!/usr/bin/env bash
# One idempotent set-up for users, developers and CI: system libraries (apt,
# when root; otherwise the exact command is printed), a .venv with livedance
# and its dev tools. Re-running it only does what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  libportaudio2 libsndfile1                                # audio I/O
  pulseaudio pulseaudio-utils libasound2-plugins           # virtual audio device (tests, headless demo)
  libegl1 libegl-mesa0 libgl1-mesa-dri libgles2            # OpenGL via EGL (offscreen render)
  xvfb xauth                                               # virtual display (viewer tests)
  ffmpeg                                                   # video encode/mux
  jackd2 iproute2                                          # MIDI ports without ALSA's sequencer; Link tests' private network namespace
)

missing=()
if command -v dpkg-query >/dev/null 2>&1; then
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
fi
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing system packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: missing system packages; install them with:" >&2
    echo "  sudo apt-get install -y ${missing[*]}" >&2
    echo "setup: continuing; the parts that need them will say so." >&2
  fi
fi

PY=""
for cand in python3.13 python3.12 python3.11 python3; do
  if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    PY="$cand"; break
  fi
done
if [ -z "$PY" ]; then
  echo "setup: error: livedance needs Python >= 3.11 (install it, e.g. apt-get install python3 python3-venv)" >&2
  exit 2
fi

if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv || { echo "setup: error: cannot create .venv (install python3-venv)" >&2; exit 2; }
fi

# Reinstall only when the dependency list changed.
stamp=.venv/.livedance-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: installing livedance into .venv (first time takes a minute)"
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[dev,link]"  # link: the tests use real Link peers
  echo "$want" > "$stamp"
fi
