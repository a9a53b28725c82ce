#!/usr/bin/env bash
# The whole test suite: formatting, lints, and every test of the workspace.
# Installs what it needs on a fresh Debian machine when run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_rust
ensure_apt_packages build-essential pkg-config softhsm2 p11-kit p11-kit-modules opensc systemd tmux
# HSM tests make a fresh token per run; drop the ones earlier runs left.
rm -rf target/softhsm-test target/e2e /dev/shm/provii-softhsm-test-* /dev/shm/provii-e2e-tokens

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo build (the binaries the end-to-end tests start)"
cargo build --workspace --bins --locked
echo "== age circuit test parameters (one INSECURE seeded setup, shared by every proving test)"
export PROVII_TEST_PARAMS="$PWD/target/test-params"
rm -rf "$PROVII_TEST_PARAMS"
./target/debug/provii-tool params generate --out "$PROVII_TEST_PARAMS" --seed "$(printf '5a%.0s' $(seq 32))"
echo "== cargo test"
cargo test --workspace --locked
