#!/usr/bin/env bash
# make demo. The main job - a staged rollout to a simulated fleet over MQTT - needs the
# device agent, the MQTT transport and the rollout controller, which are not built yet.
# Until they are, this says so plainly and walks through what does exist: a signing key,
# a signed release, inspecting and verifying it, and a tampered copy being refused.
set -euo pipefail
BUILD=${BUILD:-build}
TERN=$(cd "$BUILD" && pwd)/tern
work=$(mktemp -d /tmp/tern-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work"

echo "tern demo"
echo "Not yet: the staged rollout to a simulated fleet (it lands with the rollout work)."
echo "What runs today: keys and signed releases."
echo
run() { echo "\$ $*"; "$@"; echo; }
run "$TERN" key generate --out signing.key
head -c $((4 * 1024 * 1024)) /dev/urandom >fw.bin
printf 'Fixes the boot loop on cold start.\n' >NOTES.md
run "$TERN" release create --key signing.key --board sim --version 1.2.0 --sequence 12 \
	--firmware fw.bin --notes NOTES.md --out fw-1.2.0.tern
run "$TERN" release inspect fw-1.2.0.tern
run "$TERN" release verify fw-1.2.0.tern --pubkey signing.pub
cp fw-1.2.0.tern tampered.tern
printf '\x00' | dd of=tampered.tern bs=1 seek=$((2 * 1024 * 1024)) conv=notrunc 2>/dev/null
echo "\$ $TERN release verify tampered.tern --pubkey signing.pub   # one byte changed"
if "$TERN" release verify tampered.tern --pubkey signing.pub; then
	echo "demo: the tampered release was accepted - this is a bug" >&2
	exit 1
fi
echo "(refused, as it must be)"
