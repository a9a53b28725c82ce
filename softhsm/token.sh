#!/usr/bin/env bash
# Initialise a SoftHSM token in a project-local directory, never touching the
# host's global SoftHSM configuration.
#
#   softhsm/token.sh DIR LABEL
#
# Writes DIR/softhsm2.conf (tokens in DIR/tokens, or in $SOFTHSM_TOKENDIR when
# set, e.g. on tmpfs for fast tests) and initialises token LABEL unless it
# exists. PINs: $SOFTHSM_SO_PIN / $SOFTHSM_USER_PIN if set, else DIR/so-pin and
# DIR/user-pin, generated at random (mode 0600) on first use. Prints the
# SOFTHSM2_CONF line to export. Installs softhsm2, p11-kit and opensc when
# missing (as root).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/../scripts/lib.sh"

[ $# -eq 2 ] || die "usage: softhsm/token.sh DIR LABEL"
dir="$1"
label="$2"
ensure_apt_packages softhsm2 p11-kit p11-kit-modules opensc

mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
tokendir="${SOFTHSM_TOKENDIR:-$dir/tokens}"
mkdir -p "$tokendir"
chmod 700 "$dir" "$tokendir"

conf="$dir/softhsm2.conf"
tmp="$(mktemp "$dir/.softhsm2.conf.XXXXXX")"
cat > "$tmp" <<CONF
# Written by softhsm/token.sh; project-local, not the host's /etc/softhsm.
directories.tokendir = $tokendir
objectstore.backend = file
log.level = ERROR
slots.removable = false
slots.mechanisms = ALL
CONF
mv "$tmp" "$conf"
export SOFTHSM2_CONF="$conf"

pin_file() { # pin_file NAME: prints the PIN, creating the file if needed
    local f="$dir/$1"
    if [ ! -s "$f" ]; then
        (umask 077 && head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$f")
    fi
    cat "$f"
}
so_pin="${SOFTHSM_SO_PIN:-$(pin_file so-pin)}"
user_pin="${SOFTHSM_USER_PIN:-$(pin_file user-pin)}"

# 'Label:' lines of --show-slots are padded to 32 characters.
if softhsm2-util --show-slots 2>/dev/null | sed -n 's/^ *Label: *//p' | sed 's/ *$//' | grep -qxF "$label"; then
    echo "token '$label' already initialised" >&2
else
    softhsm2-util --init-token --free --label "$label" --so-pin "$so_pin" --pin "$user_pin" >/dev/null
    echo "token '$label' initialised" >&2
fi
echo "export SOFTHSM2_CONF=$conf"
