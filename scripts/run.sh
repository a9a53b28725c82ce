#!/usr/bin/env bash
# Builds and starts what exists of the appliance on its embedded defaults.
# Installs what it needs on a fresh Debian machine when run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_rust
ensure_apt_packages build-essential pkg-config

cargo build --release --locked --bin provii-tool
echo
echo "Built: target/release/provii-tool (protocol toolbox)."
echo "The daemon (provii-appliance) is not built yet; until it is, this shows the toolbox:"
echo
target/release/provii-tool --help
echo
echo "Example: the commitment of spec vector A.7"
target/release/provii-tool commit --dob-days 11246 --r-bits 2f00491eea556f8228af865d35cd9e0e
