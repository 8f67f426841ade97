#!/usr/bin/env bash
# The operator's commands end to end: tern key generate, tern release create|inspect|verify.
# Every refusal must exit non-zero with exactly one line on stderr, and leave nothing behind.
source "$(cd "$(dirname "$0")" && pwd)/../lib/suite.sh"
set -u
BUILD=${BUILD:-build}
TERN=$(cd "$BUILD" && pwd)/tern
TERND=$(cd "$BUILD" && pwd)/ternd
PY=/usr/bin/python3
work=$(mktemp -d /tmp/tern-cli-test.XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1


json_get() { $PY -c "import json,sys; d=json.load(open('$1')); print(eval('d' + sys.argv[1]))" "$2"; }

# --- keys
expect_ok "key generate" "$TERN" key generate --out signing.key
check "private key is 0600" [ "$(stat -c %a signing.key)" = 600 ]
check "public key written" grep -q "BEGIN PUBLIC KEY" signing.pub
check "public key world-readable is fine" [ "$(stat -c %a signing.pub)" = 644 ]
expect_fail "key generate refuses to overwrite" "exists already" "$TERN" key generate --out signing.key
expect_fail "key generate without --out" "--out" "$TERN" key generate
"$TERN" key generate --out other.key >/dev/null
for cmd in "key generate" "release create" "release inspect" "release verify"; do
	# shellcheck disable=SC2086
	if "$TERN" $cmd --help | grep -q "^usage: tern $cmd"; then ok "help: $cmd"; else bad "help: $cmd"; fi
done
expect_fail "unknown command" "unknown command" "$TERN" frobnicate
for group in key release rollout usb; do
	# "tern GROUP --help" lists the group's commands on stdout and exits 0.
	if "$TERN" $group --help >out.txt 2>err.txt && grep -q "^usage: tern $group COMMAND" out.txt &&
		[ "$(grep -c "^  tern $group " out.txt)" = "$("$TERN" --help | grep -c "^  tern $group ")" ]; then
		ok "help: $group"
	else
		bad "help: $group" "$(cat err.txt out.txt | head -3)"
	fi
	expect_fail "$group without a command" "see 'tern $group --help'" "$TERN" $group
done
check "tern --version" grep -qE "^tern [0-9]+\.[0-9]+\.[0-9]+$" <<<"$("$TERN" --version)"
same "ternd --version: the same version" "$("$TERN" --version | sed 's/^tern /ternd /')" \
	"$("$TERND" --version)"
# "ternd CMD --help" prints the usage and exits 0, before any argument check.
for cmd in check run "install r.tern" activate status mark-good mark-bad "sim init" \
	"sim install d r.tern" "sim reboot" "sim status" "sim mkimage" "sim cancel" fleet; do
	# shellcheck disable=SC2086
	if "$TERND" $cmd --help >out.txt 2>err.txt && grep -q "^usage" out.txt && [ ! -s err.txt ]; then
		ok "help: ternd $cmd"
	else
		bad "help: ternd $cmd" "$(cat err.txt | head -2)"
	fi
done

# --- create, inspect, verify
head -c 300001 /dev/urandom >fw.bin
printf 'broker=mqtt://127.0.0.1\n' >app.conf
printf 'Fixes the boot loop on cold start.\nSecond line "quoted".\n' >NOTES.md
expect_ok "create firmware+config+notes" "$TERN" release create --key signing.key --board sim \
	--board sim-rev2 --version 1.2.0 --sequence 12 --security-counter 3 --firmware fw.bin \
	--config app.conf --notes NOTES.md --out both.tern
expect_ok "verify firmware+config" "$TERN" release verify both.tern --pubkey signing.pub
check "verify names the release" grep -q "ok: release sim-1.2.0-12" out.txt
expect_ok "verify with two keys in the keyring" "$TERN" release verify both.tern --pubkey other.pub --pubkey signing.pub
expect_ok "inspect --json" "$TERN" release inspect both.tern --json
cp out.txt both.json
check "json: version" [ "$(json_get both.json "['version']")" = 1.2.0 ]
check "json: sequence" [ "$(json_get both.json "['sequence']")" = 12 ]
check "json: security counter" [ "$(json_get both.json "['security_counter']")" = 3 ]
check "json: boards" [ "$(json_get both.json "['boards']")" = "['sim', 'sim-rev2']" ]
check "json: firmware size" [ "$(json_get both.json "['components'][0]['size']")" = 300001 ]
check "json: firmware chunks" [ "$(json_get both.json "['components'][0]['chunks']")" = 19 ]
check "json: config kind" [ "$(json_get both.json "['components'][1]['kind']")" = config ]
check "json: notes" [ "$(json_get both.json "['notes'].splitlines()[1]")" = 'Second line "quoted".' ]
check "json: kid is the key's" grep -q "$("$TERN" release verify both.tern --pubkey signing.pub | sed -n 's/.*signed by key \([0-9a-f]*\).*/\1/p')" both.json
expect_ok "inspect text" "$TERN" release inspect both.tern
check "inspect shows notes" grep -q "Fixes the boot loop" out.txt
check "inspect shows board" grep -q "boards *sim sim-rev2" out.txt
check "inspect: sizes and chunk counts" \
	grep -q "firmware -> slot group firmware, 300001 bytes (293.0 KiB), 19 chunks$" out.txt
check "inspect: a small component, one chunk" \
	grep -q "config   -> slot group config, 24 bytes, 1 chunk$" out.txt
check "inspect: the default early life" grep -q "early life  3 trial boots, health check within 60 s, settle 10 s$" out.txt
expect_ok "create with the early life as durations" "$TERN" release create --key signing.key \
	--board sim --version 1.0 --sequence 1 --firmware fw.bin --trial-attempts 2 \
	--health-timeout 2m --settle 90 --out life.tern
expect_ok "... inspect" "$TERN" release inspect life.tern
check "... 2m is 120 s, 90 is 90 s" grep -q "early life  2 trial boots, health check within 120 s, settle 90 s$" out.txt
expect_fail "a duration that is not one" "--settle takes a duration" \
	"$TERN" release create --key signing.key --board sim --version 1.0 --sequence 1 \
	--firmware fw.bin --settle 5x --out bad-life.tern
check "... and no file" [ ! -e bad-life.tern ]
before=$(sha256sum life.tern)
expect_fail "an existing release is not replaced" "life.tern: the file exists already.*--force" \
	"$TERN" release create --key signing.key --board sim --version 9 --sequence 9 \
	--firmware fw.bin --out life.tern
same "... it is left as it was" "$before" "$(sha256sum life.tern)"
check "... and no temporary file is left" [ -z "$(ls life.tern.tmp.* 2>/dev/null)" ]
expect_ok "--force replaces it" "$TERN" release create --key signing.key --board sim --version 9 \
	--sequence 9 --firmware fw.bin --out life.tern --force
check "... with the new release" eval '"$TERN" release inspect life.tern | grep -q "^version *9 (sequence 9"'
expect_ok "create firmware only" "$TERN" release create --key signing.key --board sim --version 1.0 --sequence 1 --firmware fw.bin --out fw.tern
expect_ok "verify firmware only" "$TERN" release verify fw.tern --pubkey signing.pub
expect_ok "create config only" "$TERN" release create --key signing.key --board sim --version c1 --sequence 2 --config app.conf --out cfg.tern
expect_ok "verify config only" "$TERN" release verify cfg.tern --pubkey signing.pub
for cs in 1K 16K 1M 4096; do
	expect_ok "create chunk size $cs" "$TERN" release create --key signing.key --board sim --version 1 --sequence 1 --chunk-size $cs --firmware fw.bin --out cs.tern
	expect_ok "verify chunk size $cs" "$TERN" release verify cs.tern --pubkey signing.pub
	rm -f cs.tern
done
head -c 1 /dev/urandom >one.bin
expect_ok "create 1-byte image" "$TERN" release create --key signing.key --board sim --version 1 --sequence 1 --chunk-size 1K --firmware one.bin --out one.tern
expect_ok "verify 1-byte image" "$TERN" release verify one.tern --pubkey signing.pub
head -c 65536 /dev/urandom >exact.bin
expect_ok "create exact multiple of chunk" "$TERN" release create --key signing.key --board sim --version 1 --sequence 1 --chunk-size 16K --firmware exact.bin --out exact.tern
expect_ok "verify exact multiple of chunk" "$TERN" release verify exact.tern --pubkey signing.pub

# Reproducible: same inputs and SOURCE_DATE_EPOCH give the same bytes (RFC 6979 signatures).
SOURCE_DATE_EPOCH=1700000000 "$TERN" release create --key signing.key --board sim --version 1 --sequence 1 --firmware fw.bin --out r1.tern >/dev/null
SOURCE_DATE_EPOCH=1700000000 "$TERN" release create --key signing.key --board sim --version 1 --sequence 1 --firmware fw.bin --out r2.tern >/dev/null
check "reproducible release bytes" cmp -s r1.tern r2.tern

# --- refusals at creation
expect_fail "public key as signing key" "public key" "$TERN" release create --key signing.pub --board sim --version 1 --sequence 1 --firmware fw.bin --out x.tern
cp signing.key loose.key && chmod 644 loose.key
expect_fail "group/world-readable signing key" "chmod 600" "$TERN" release create --key loose.key --board sim --version 1 --sequence 1 --firmware fw.bin --out x.tern
expect_fail "missing signing key" "not found" "$TERN" release create --key nokey.key --board sim --version 1 --sequence 1 --firmware fw.bin --out x.tern
expect_fail "garbage signing key" "not a P-256 key" "$TERN" release create --key fw.bin --board sim --version 1 --sequence 1 --firmware fw.bin --out x.tern
expect_fail "missing firmware" "not found" "$TERN" release create --key signing.key --board sim --version 1 --sequence 1 --firmware nothing.bin --out x.tern
: >empty.bin
expect_fail "empty firmware" "empty" "$TERN" release create --key signing.key --board sim --version 1 --sequence 1 --firmware empty.bin --out x.tern
expect_fail "bad board id" "board id" "$TERN" release create --key signing.key --board "my board" --version 1 --sequence 1 --firmware fw.bin --out x.tern
expect_fail "chunk size not power of two" "power of two" "$TERN" release create --key signing.key --board sim --version 1 --sequence 1 --chunk-size 3K --firmware fw.bin --out x.tern
expect_fail "chunk size too small" "power of two" "$TERN" release create --key signing.key --board sim --version 1 --sequence 1 --chunk-size 512 --firmware fw.bin --out x.tern
expect_fail "no component" "firmware" "$TERN" release create --key signing.key --board sim --version 1 --sequence 1 --out x.tern
expect_fail "missing sequence" "required" "$TERN" release create --key signing.key --board sim --version 1 --firmware fw.bin --out x.tern
head -c 5000 /dev/zero | tr '\0' 'n' >long-notes.md
expect_fail "notes too long" "4096 bytes" "$TERN" release create --key signing.key --board sim --version 1 --sequence 1 --firmware fw.bin --notes long-notes.md --out x.tern
printf '\xff\xfe notes\n' >latin.md
expect_fail "notes not UTF-8" "UTF-8" "$TERN" release create --key signing.key --board sim --version 1 --sequence 1 --firmware fw.bin --notes latin.md --out x.tern
long32=$(printf 'b%.0s' {1..32})
expect_fail "default release id too long" "name the release with --id" "$TERN" release create --key signing.key --board "$long32" --version "$long32" --sequence 1 --firmware fw.bin --out x.tern
expect_ok "long board and version with --id" "$TERN" release create --key signing.key --board "$long32" --version "$long32" --sequence 1 --id long-1 --firmware fw.bin --out long.tern
check "refused creates leave no output" [ ! -e x.tern ]
check "refused creates leave no temporary files" [ -z "$(ls | grep '\.tmp\.')" ]

# --- refusals at verification
expect_fail "verify without --pubkey" "pubkey" "$TERN" release verify both.tern
expect_fail "wrong key" "other|not among" "$TERN" release verify both.tern --pubkey other.pub
expect_fail "a private key as --pubkey is refused, by name" \
	"^tern: signing.key: this is a private signing key; give its public key" \
	"$TERN" release verify both.tern --pubkey signing.key
expect_fail "publish refuses a private key as --pubkey too" "private signing key" \
	"$TERN" publish both.tern --pubkey signing.key --broker mqtt://127.0.0.1:1
# Not random bytes: about 1 random file in 40 starts like a CBOR array of 4 or an
# indefinite item and is (rightly) called damaged instead.
printf 'Just some firmware notes, not a release.\n' >notes.txt
expect_fail "not a release" "not a tern release" "$TERN" release verify notes.txt --pubkey signing.pub
expect_fail "unreadable file (a directory)" "read or write failed" "$TERN" release verify . --pubkey signing.pub
expect_fail "missing file" "not found" "$TERN" release verify none.tern --pubkey signing.pub
cp both.tern trail.tern && printf 'x' >>trail.tern
expect_fail "trailing bytes" "after the end" "$TERN" release verify trail.tern --pubkey signing.pub
size=$(stat -c %s both.tern)
head_len=$($PY -c "
import sys
d=open('both.tern','rb').read(64)
# tag(1) array(1) bstr(1+3) map(1) 04 bstr(1+8) payload head
i=1+1+4+1+1+9
b=d[i]; ai=b&31
print(i + (1 if ai<24 else 1+(1<<(ai-24))))")
# Cut short at offsets across every part of the file.
for cut in 0 1 2 10 $((head_len)) $((head_len + 40)) 400 500 $((size / 2)) $((size - 1)); do
	head -c "$cut" both.tern >cut.tern
	expect_fail "truncated at $cut of $size" "ends early|not a tern release" "$TERN" release verify cut.tern --pubkey signing.pub
done
# One byte changed in each part: manifest, signature, index, payload.
flip() { # FILE OFFSET
	$PY -c "
import sys
p, off = sys.argv[1], int(sys.argv[2])
b = bytearray(open(p, 'rb').read()); b[off] ^= 0x01; open(p, 'wb').write(b)" "$1" "$2"
}
sig_off=$(($($PY -c "
d=open('both.tern','rb').read()
import re
print(d.find(b'\x58\x40', 20))") + 2))
idx_off=$($PY -c "
d=open('both.tern','rb').read(20000)
print(d.find(b'\x58\x40', $sig_off) + 64 + 2 + 2)")
for what in "manifest:$((head_len + 30))" "signature:$((sig_off + 5))" "index:$((idx_off + 3))" "payload:$((size - 100000))" "config:$((size - 3))"; do
	name=${what%%:*}
	off=${what#*:}
	cp both.tern flip.tern
	flip flip.tern "$off"
	expect_fail "byte flipped in $name" "bad signature|does not match|corrupted|damaged" "$TERN" release verify flip.tern --pubkey signing.pub
done
check "a refused verify does not change the file" cmp -s both.tern both.tern

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
