#!/usr/bin/env bash
# Set up everything the tests need on a fresh Debian 12 machine, then run them.
#
#   tests/run.sh                 # the whole suite (what CI runs)
#   tests/run.sh -k gallery      # extra arguments go to pytest
#
# System packages (GStreamer, mosquitto, build tools) are installed with apt when missing
# (as root, or through sudo); the Python side goes into .venv in the checkout.  The tests
# read real models and data from ../shared (override with FACEWATCH_SHARED).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=($(grep -v '^#' systemd/debian-packages.txt) mosquitto systemd)
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
exec .venv/bin/python -m pytest "$@"
