# Shared helpers for scripts/run.sh and scripts/test.sh. Sourced, not run.

# Cargo lives in ~/.cargo/bin on the project's machines; non-login shells
# (CI, sudo) may not have it on PATH.
if [ -d "$HOME/.cargo/bin" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi

die() {
    echo "error: $*" >&2
    exit 1
}

ensure_rust() {
    command -v cargo >/dev/null 2>&1 ||
        die "cargo not found. Install Rust 1.89 or newer (https://rustup.rs), then run this again."
}

# ensure_apt_packages PKG...: installs the Debian packages that are missing,
# running 'apt-get update' only when something has to be installed.
ensure_apt_packages() {
    local missing=()
    local pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "$(id -u)" -eq 0 ] || die "missing packages: ${missing[*]}; run as root or install them first"
    echo "installing: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}
