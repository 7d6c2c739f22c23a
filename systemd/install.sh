#!/usr/bin/env bash
# Install facewatch as a systemd service on Debian 12, from this checkout, and start it.
#
#   sudo systemd/install.sh --camera door=rtsp://user:pass@192.168.1.20:554/stream2
#   sudo systemd/install.sh --camera door=URL --camera yard=URL    # repeat for more cameras
#   sudo systemd/install.sh                                         # no camera yet: add later
#   sudo FACEWATCH_MODELS_FROM=/media/usb/models systemd/install.sh ...   # offline: import models
#
# What it does: Debian packages (skipped when all are installed), a `facewatch` system user (in
# group video), a virtualenv in /opt/facewatch, the models in /var/lib/facewatch/models, a
# config in /etc/facewatch/config.yaml made from config/example.yaml (kept if present), each
# --camera added with `facewatch cameras add` (which opens the stream first), the unit, and
# `systemctl enable --now`.  Where systemd is not running (a container) it prints the command
# that runs the daemon in the foreground instead.  Nobody is enrolled: the daemon starts with
# every face unknown, groups them, and you name them (README, "First steps").
#
# For tests and packagers, where systemd is not running: FACEWATCH_PREFIX, FACEWATCH_ETC,
# FACEWATCH_STATE, FACEWATCH_USER, FACEWATCH_UNIT_DIR and FACEWATCH_BIN_DIR put the same install
# elsewhere.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
prefix="${FACEWATCH_PREFIX:-/opt/facewatch}"
etc="${FACEWATCH_ETC:-/etc/facewatch}"
state="${FACEWATCH_STATE:-/var/lib/facewatch}"
user="${FACEWATCH_USER:-facewatch}"
unit_dir="${FACEWATCH_UNIT_DIR:-/etc/systemd/system}"
bin_dir="${FACEWATCH_BIN_DIR:-/usr/local/bin}"

usage() {
    echo "usage: sudo $0 [--camera NAME=URL]..." >&2
    exit 2
}

cameras=()
while [ $# -gt 0 ]; do
    case "$1" in
        --camera) [ $# -ge 2 ] || usage; cameras+=("$2"); shift 2 ;;
        --camera=*) cameras+=("${1#--camera=}"); shift ;;
        -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "install.sh: unknown argument: $1" >&2; usage ;;
    esac
done
for camera in "${cameras[@]}"; do
    case "$camera" in
        ?*=?*) ;;
        *) echo "install.sh: --camera $camera: expected NAME=URL" >&2; exit 2 ;;
    esac
done

if [ "$(id -u)" -ne 0 ]; then
    echo "install.sh: run as root (sudo $0)" >&2
    exit 1
fi
systemd_running=false
[ -d /run/systemd/system ] && systemd_running=true
if $systemd_running && [ "$prefix$etc$state$user" != "/opt/facewatch/etc/facewatch/var/lib/facewatchfacewatch" ]; then
    echo "install.sh: FACEWATCH_PREFIX/ETC/STATE/USER are for installs without systemd; the unit" \
         "runs /opt/facewatch, /etc/facewatch and /var/lib/facewatch as user facewatch" >&2
    exit 2
fi

echo "== Debian packages"
mapfile -t packages < <(grep -v '^#' "$repo/systemd/debian-packages.txt")
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
    echo "all installed"
fi

echo "== user and folders"
getent group "$user" >/dev/null || groupadd --system "$user"
id "$user" >/dev/null 2>&1 || useradd --system --gid "$user" --groups video \
    --home-dir "$state" --no-create-home --shell /usr/sbin/nologin "$user"
install -d -m 0700 -o "$user" -g "$user" "$state" "$state/models"
# The service reads its config (group-readable); files `sudo facewatch ...` makes here take
# the folder's group and mode, so the service can read them too.
install -d -m 0750 -o root -g "$user" "$etc"

echo "== virtualenv in $prefix/venv"
# Debian's own interpreter, not whichever python3 comes first on root's PATH: a pyenv or
# conda one lives under /root, which the facewatch user cannot enter, so the service could
# not even start its interpreter.
install -d -m 0755 "$prefix"
/usr/bin/python3 -m venv "$prefix/venv"
"$prefix/venv/bin/pip" install -q --upgrade pip
"$prefix/venv/bin/pip" install -q "$repo[gstreamer]"
install -m 0644 "$repo/README.md" "$prefix/README.md"
facewatch="$prefix/venv/bin/facewatch"
# `sudo facewatch ...` from any shell
install -d -m 0755 "$bin_dir"
ln -sfn "$facewatch" "$bin_dir/facewatch"

echo "== models"
from_args=()
if [ -n "${FACEWATCH_MODELS_FROM:-}" ]; then from_args=(--from "$FACEWATCH_MODELS_FROM"); fi
runuser -u "$user" -- env FACEWATCH_MODELS="$state/models" \
    "$facewatch" models fetch "${from_args[@]}"

echo "== config"
config="$etc/config.yaml"
if [ ! -e "$config" ]; then
    # The example names no camera, gallery or broker that would not exist here.  state_dir and
    # models_dir are written out: systemd gives the service $STATE_DIRECTORY and
    # $FACEWATCH_MODELS, but `sudo facewatch ...` must find the same folders.
    sed -e "s|^# state_dir: /var/lib/facewatch\$|state_dir: $state   # the service's StateDirectory=; \`sudo facewatch ...\` finds it here|" \
        -e "s|^  # models_dir: /var/lib/facewatch/models .*|  models_dir: $state/models   # where install.sh put them|" \
        "$repo/config/example.yaml" > "$config.new"
    grep -q "^state_dir: $state " "$config.new" && grep -q "^  models_dir: $state/models " "$config.new" \
        || { echo "install.sh: example.yaml has no state_dir or models_dir line to set" >&2; exit 1; }
    chown "root:$user" "$config.new"
    chmod 0640 "$config.new"
    mv "$config.new" "$config"
    echo "wrote $config"
fi
for camera in "${cameras[@]}"; do
    name="${camera%%=*}"
    url="${camera#*=}"
    if "$facewatch" cameras list --config "$config" --json | grep -q "\"name\": \"$name\""; then
        echo "camera $name is already in $config"
        continue
    fi
    "$facewatch" cameras add --config "$config" "$name" "$url"
done
"$facewatch" config check "$config" || \
    echo "install.sh: fix $config, then: systemctl restart facewatch" >&2

echo "== service"
install -d -m 0755 "$unit_dir"
install -m 0644 "$repo/systemd/facewatch.service" "$unit_dir/facewatch.service"
if $systemd_running; then
    systemctl daemon-reload
    systemctl enable --now facewatch
    systemctl --no-pager status facewatch || true
else
    echo "systemd is not running here; start the daemon in the foreground with:"
    echo "  runuser -u $user -- env FACEWATCH_MODELS=$state/models $facewatch run --config $config"
fi
at=""
[ "$config" = /etc/facewatch/config.yaml ] || at=" --config $config"
echo
if [ ${#cameras[@]} -eq 0 ]; then
    echo "no camera yet: sudo facewatch cameras add$at door rtsp://user:pass@192.168.1.20:554/stream2"
fi
echo "the faces it sees are grouped; list them, then name one:"
echo "  sudo facewatch clusters list$at"
echo "  sudo facewatch clusters assign$at GROUP --person ada --name 'Ada Lovelace'"
