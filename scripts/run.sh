#!/usr/bin/env bash
# Builds and starts the appliance on its embedded defaults (config/dev.toml):
# a SoftHSM token and SQLite under ./state, created on first run, a demo
# officer and a demo Issuing Party whose secrets land in ./state, and a
# copy-paste session to try it. Ctrl-C stops the daemon.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_rust
ensure_apt_packages build-essential pkg-config softhsm2 p11-kit p11-kit-modules opensc curl openssl xxd jq

cargo build --release --locked --bins
bin=target/release
config=config/dev.toml
state=state

mkdir -p "$state"
chmod 700 "$state"
eval "$(bash softhsm/token.sh "$state/softhsm" provii-dev)"

if [ ! -s "$state/demo-officer.secret" ]; then
    "$bin/provii-appliance" --config "$config" init --officer-id demo-officer --secret-out "$state/demo-officer.secret"
fi

"$bin/provii-appliance" --config "$config" serve 2> "$state/daemon.log" &
daemon=$!
trap 'kill "$daemon" 2>/dev/null; wait "$daemon" 2>/dev/null' EXIT INT TERM
for _ in $(seq 1 100); do
    curl -sf http://127.0.0.1:8080/ready >/dev/null && break
    kill -0 "$daemon" 2>/dev/null || die "the daemon exited; see $state/daemon.log"
    sleep 0.1
done
curl -sf http://127.0.0.1:8080/ready >/dev/null || die "the daemon is not ready; see $state/daemon.log"

if [ ! -s "$state/demo-client.secret" ]; then
    # Admin commands are approved by the caller's YubiKey; the demo officer's
    # is simulated with its secret file.
    "$bin/provii-appliance" --config "$config" --as demo-officer --responder "soft:$state/demo-officer.secret" \
        clients add demo-bank --name "Demo Bank" --secret-out "$state/demo-client.secret" >/dev/null
fi

cat <<SESSION

The appliance is running at http://127.0.0.1:8080 (log: $state/daemon.log).
Demo officer secret: $state/demo-officer.secret   Demo client secret: $state/demo-client.secret
In another terminal, from $(pwd):

# An officer attests a date of birth (the YubiKey's HMAC-SHA1 done by openssl):
S=http://127.0.0.1:8080; DOB=11246; NONCE=\$(openssl rand -hex 32)
CH=\$(curl -s -H 'Content-Type: application/json' -d "{\"officer_id\":\"demo-officer\",\"intent\":{\"dob_days\":\$DOB,\"nonce\":\"\$NONCE\"}}" \$S/v1/challenge)
MAC=\$(echo -n "\$(echo "\$CH" | jq -r .challenge)" | xxd -r -p | openssl dgst -sha1 -mac HMAC -macopt hexkey:\$(cat $state/demo-officer.secret) | awk '{print \$NF}')
ATT=\$(curl -s -H 'Content-Type: application/json' -d "{\"dob_days\":\$DOB,\"authorizer\":{\"format\":\"yubikey\",\"keyId\":\"demo-officer\",\"challengeId\":\"\$(echo "\$CH" | jq -r .challenge_id)\",\"timestamp\":\$(date +%s),\"hmac\":\"\$MAC\",\"nonce\":\"\$NONCE\"}}" \$S/v1/attestation/create | jq -r .attestation)

# A wallet obtains its blind credential (r_bits: 16 random bytes, base64url):
RB=\$(openssl rand 16 | base64 | tr '+/' '-_' | tr -d '=')
curl -s -H 'Content-Type: application/json' -d "{\"attestation\":\"\$ATT\",\"r_bits\":\"\$RB\"}" \$S/v1/issuance/blind | jq .

# Or the reference wallet enrols with a fresh attestation (make one as above), then proves it is
# over 18 on a cutoff of 2007-06-01 (13665 days); the first line makes INSECURE test parameters
# (about a minute, once):
$bin/provii-tool params generate --out $state/params --seed \$(printf '5a%.0s' \$(seq 32))
$bin/provii-tool wallet enrol --server \$S --attestation "\$ATT" --wallet $state/wallet.json
$bin/provii-tool wallet prove --params $state/params --wallet $state/wallet.json --direction over --cutoff-days 13665 --rp-challenge \$(openssl rand -hex 32) > $state/proof.json
$bin/provii-tool wallet verify --params $state/params --proof $state/proof.json --direction over --issuer-vk \$(curl -s \$S/.well-known/jwks.json | jq -r '.keys[0].x')

# Or an Issuing Party attests (HMAC-SHA256 over the canonical string of WIRE.md §3):
TS=\$(date +%s); N=\$(openssl rand -hex 32); DOB=7300
C="\$TS:POST:/v1/attestation/create:{\"dob_days\":\$DOB,\"authorizer\":{\"format\":\"client\",\"key_id\":\"demo-bank\",\"timestamp\":\$TS}}:\$N"
H=\$(echo -n "\$C" | openssl dgst -sha256 -mac HMAC -macopt hexkey:\$(cat $state/demo-client.secret) | awk '{print \$NF}')
curl -s -H 'Content-Type: application/json' -d "{\"dob_days\":\$DOB,\"authorizer\":{\"format\":\"client\",\"keyId\":\"demo-bank\",\"timestamp\":\$TS,\"hmac\":\"\$H\",\"nonce\":\"\$N\"}}" \$S/v1/attestation/create | jq .

Press Ctrl-C to stop the appliance.
SESSION
wait "$daemon"
