#!/usr/bin/env bash
# Install facewatch as a systemd service on Debian 12, from this checkout, and start it.
#
#   sudo systemd/install.sh                      # models downloaded from their public sources
#   sudo FACEWATCH_MODELS_FROM=/media/usb/models systemd/install.sh   # offline: import them
#
# What it does: Debian packages, a `facewatch` system user (in group video), a virtualenv in
# /opt/facewatch, the models in /var/lib/facewatch/models, an example config in
# /etc/facewatch/config.yaml (kept if present), the unit, and `systemctl enable --now`.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
prefix=/opt/facewatch
state=/var/lib/facewatch
etc=/etc/facewatch

if [ "$(id -u)" -ne 0 ]; then
    echo "install.sh: run as root (sudo $0)" >&2
    exit 1
fi

echo "== Debian packages"
apt-get update -qq
# shellcheck disable=SC2046
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    $(grep -v '^#' "$repo/systemd/debian-packages.txt")

echo "== user and folders"
getent group facewatch >/dev/null || groupadd --system facewatch
id facewatch >/dev/null 2>&1 || useradd --system --gid facewatch --groups video \
    --home-dir "$state" --no-create-home --shell /usr/sbin/nologin facewatch
install -d -m 0700 -o facewatch -g facewatch "$state" "$state/models"
install -d -m 0755 "$etc"

echo "== virtualenv in $prefix/venv"
# Debian's own interpreter, not whichever python3 comes first on root's PATH: a pyenv or
# conda one lives under /root, which the facewatch user cannot enter, so the service could
# not even start its interpreter.
/usr/bin/python3 -m venv "$prefix/venv"
"$prefix/venv/bin/pip" install -q --upgrade pip
"$prefix/venv/bin/pip" install -q "$repo[gstreamer]"
install -m 0644 "$repo/README.md" "$prefix/README.md"

echo "== models"
from_args=()
if [ -n "${FACEWATCH_MODELS_FROM:-}" ]; then from_args=(--from "$FACEWATCH_MODELS_FROM"); fi
runuser -u facewatch -- env FACEWATCH_MODELS="$state/models" \
    "$prefix/venv/bin/facewatch" models fetch "${from_args[@]}"

echo "== config"
if [ ! -e "$etc/config.yaml" ]; then
    install -m 0640 -g facewatch "$repo/config/example.yaml" "$etc/config.yaml"
    echo "wrote $etc/config.yaml: edit its cameras and gallery"
fi
"$prefix/venv/bin/facewatch" config check "$etc/config.yaml" || \
    echo "install.sh: fix $etc/config.yaml, then: systemctl restart facewatch" >&2

echo "== service"
install -m 0644 "$repo/systemd/facewatch.service" /etc/systemd/system/facewatch.service
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    systemctl enable --now facewatch
    systemctl --no-pager status facewatch || true
else
    echo "systemd is not running here; start the daemon in the foreground with:"
    echo "  runuser -u facewatch -- env FACEWATCH_MODELS=$state/models $prefix/venv/bin/facewatch run --config $etc/config.yaml"
fi
