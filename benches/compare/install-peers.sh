#!/bin/sh
# Install the programs that benches/compare/compare.py measures coffre against:
# restic and borg from Debian, rustic from crates.io, GNU time for peak memory,
# and for the --wan mode rclone (restic's REST server: `rclone serve restic`)
# and iproute2 (network namespaces).
# Idempotent: anything already on PATH is left alone. Prints the versions at the end.
#
#   sh benches/compare/install-peers.sh
#
# Needs root (or sudo) for apt-get. rustic is built with `cargo install --locked`
# into ~/.cargo/bin; its build directory is CARGO_TARGET_DIR (default
# /tmp/target-rustic, so the workspace's target/ is not touched). On 2 cores the
# rustic build takes several minutes.
set -eu

have() { command -v "$1" >/dev/null 2>&1; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if have sudo; then SUDO="sudo"; else SUDO=""; fi
fi

missing=""
have restic || missing="$missing restic"
have borg || missing="$missing borgbackup"
have rclone || missing="$missing rclone"
have ip || missing="$missing iproute2"
[ -x /usr/bin/time ] || missing="$missing time"
if [ -n "$missing" ]; then
    echo "installing from Debian:$missing"
    $SUDO apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
else
    echo "restic, borg, rclone, iproute2 and GNU time already installed"
fi

if have rustic; then
    echo "rustic already installed: $(command -v rustic)"
elif [ -x "$HOME/.cargo/bin/rustic" ]; then
    echo "rustic already installed: $HOME/.cargo/bin/rustic (not on PATH)"
else
    if ! have cargo; then
        echo "cargo not found: install Rust (https://rustup.rs) to build rustic" >&2
        exit 1
    fi
    echo "building rustic (cargo install --locked rustic-rs); this takes a while"
    CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/tmp/target-rustic}" cargo install --locked rustic-rs
fi

echo
echo "versions:"
restic version
borg --version
rclone version | head -n 1
rustic --version 2>/dev/null || "$HOME/.cargo/bin/rustic" --version
echo "GNU time $(dpkg-query -W -f='${Version}' time 2>/dev/null || echo present)"
