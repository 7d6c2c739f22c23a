#!/usr/bin/env bash
# Set up everything the tests need on a fresh Debian 12 machine, then run them.
#
#   tests/run.sh                 # the whole suite (what CI runs)
#   tests/run.sh -k gallery      # extra arguments go to pytest
#
# System packages (GStreamer, mosquitto, Chromium and its driver for the review page's browser
# tests, build tools) are installed with apt when missing (as root, or through sudo); the
# Python side goes into .venv in the checkout.  The tests
# read real models and data from ../shared (override with FACEWATCH_SHARED).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=($(grep -v '^#' systemd/debian-packages.txt) mosquitto systemd chromium chromium-driver)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "tests/run.sh: installing ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]'

# TensorRT's Python bindings as a wheel (it cannot load here, but its names can be read):
# tests/engines/test_tensorrt_api.py checks every TensorRT call of the backend against the
# newest release.  Kept outside the repository; offline, that one test skips.
wheels="${FACEWATCH_TENSORRT_WHEELS:-$HOME/.cache/facewatch/tensorrt-wheel}"
mkdir -p "$wheels"
timeout 180 .venv/bin/pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
    --dest "$wheels" tensorrt-cu12-bindings >/dev/null 2>&1 \
    || echo "tests/run.sh: could not fetch tensorrt-cu12-bindings; the TensorRT API check will skip"

exec .venv/bin/python -m pytest "$@"
