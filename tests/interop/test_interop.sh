#!/usr/bin/env bash
# Release files both ways between tern's C (build/tern) and tests/interop/tern_release.py,
# a second implementation written from docs/FORMAT.md only:
#  - releases made by `tern release create` verify with the Python verifier;
#  - releases made by the Python `create` verify with `tern release verify`, and
#    `tern release inspect --json` reports what was put in;
#  - a byte changed in a chunk, an index, the manifest or the signature, a byte added,
#    a byte cut: refused by both, for the same reason;
#  - the worked example in docs/FORMAT.md is what tern writes, byte for byte.
# Prints "N passed, N failed" last; exits non-zero on any failure.
set -u

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$root/$BUILD ;; esac
TERN=$BUILD/tern
PY=/usr/bin/python3
REL=$here/tern_release.py
FORMAT_MD=$root/docs/FORMAT.md

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp" || exit 1

n_pass=0
n_fail=0
pass() {
	n_pass=$((n_pass + 1))
	echo "ok   $1"
}
fail() {
	n_fail=$((n_fail + 1))
	echo "FAIL $1"
	shift
	for line in "$@"; do echo "     $line"; done
}

if [ ! -x "$TERN" ]; then
	fail "build/tern exists" "$TERN is missing; run make first"
	echo "$n_pass passed, $n_fail failed"
	exit 1
fi

tern() { "$TERN" "$@"; }
py() { "$PY" "$REL" "$@"; }

# A file of @2 bytes of deterministic noise named @1.
mkfile() {
	head -c "$2" <(openssl enc -aes-128-ctr -nosalt -pass "pass:$1" </dev/zero 2>/dev/null) >"$1"
}

# What `tern release verify` says (tern_strerror()) for each reason name of FORMAT.md,
# as an extended regular expression.
sentence_for() {
	case $1 in
	bad-signature) echo "bad signature" ;;
	digest-mismatch) echo "does not match" ;;
	trailing-bytes) echo "unexpected bytes after the end" ;;
	truncated) echo "ends early" ;;
	unknown-key) echo "not among the --pubkey keys|signed by a key this device or command does not trust" ;;
	malformed) echo "its structure is not what tern writes" ;;
	unknown-critical) echo "unknown critical field" ;;
	too-large) echo "exceeds tern's limits" ;;
	format-version) echo "format version not supported" ;;
	unsupported-algorithm) echo "unsupported signature algorithm" ;;
	not-a-release) echo "not a tern release" ;;
	*) echo "$1" ;;
	esac
}

# verify_both NAME FILE: both verifiers accept FILE (signed with k.key).
verify_both() {
	local name=$1 file=$2 out_py out_c
	out_py=$(py verify "$file" --pubkey k.pub 2>&1)
	local rc_py=$?
	out_c=$(tern release verify "$file" --pubkey k.pub 2>&1)
	local rc_c=$?
	if [ $rc_py -eq 0 ] && [ $rc_c -eq 0 ]; then
		pass "$name"
	else
		fail "$name" "python (exit $rc_py): $out_py" "tern (exit $rc_c): $out_c"
	fi
}

# refuse_both NAME FILE REASON: both verifiers refuse FILE cleanly, for REASON.
refuse_both() {
	local name=$1 file=$2 reason=$3 out_py out_c want
	out_py=$(py verify "$file" --pubkey k.pub 2>&1)
	local rc_py=$?
	out_c=$(tern release verify "$file" --pubkey k.pub 2>&1)
	local rc_c=$?
	want=$(sentence_for "$reason")
	if [ $rc_py -eq 1 ] && [[ $out_py == "refused: $reason:"* ]] &&
		[ $rc_c -eq 1 ] && [[ $out_c =~ $want ]]; then
		pass "$name"
	else
		fail "$name" "want $reason" "python (exit $rc_py): $out_py" "tern (exit $rc_c): $out_c"
	fi
}

# copy_with SRC DST OFFSET: DST is SRC with the byte at OFFSET inverted.
flip() {
	cp "$1" "$2"
	"$PY" - "$2" "$3" <<'EOF'
import sys
path, off = sys.argv[1], int(sys.argv[2])
with open(path, "r+b") as f:
    f.seek(off)
    b = f.read(1)
    f.seek(off)
    f.write(bytes([b[0] ^ 0xFF]))
EOF
}

# -------------------------------------------------------------------------------------
# Keys: one made by tern, one by Python; each side signs with the other's key too.
tern key generate --out k.key >/dev/null || fail "tern key generate"
py key --out other.key || fail "python key"

printf '# 1.2.0\n\n- Fix the watchdog.\n- "Quotes", tabs\tand ünïcode.\n' >NOTES.md
printf 'log=info\nmode=fast\n' >app.conf
mkfile one.bin 1
mkfile k1.bin 1024
mkfile k1p.bin 1025
mkfile odd.bin 50001
mkfile big.bin $((3 * 1024 * 1024 + 17))
mkfile m3.bin $((3 * 1024 * 1024))
mkfile cfg.bin 300

# -------------------------------------------------------------------------------------
# 1. tern creates, Python verifies (and tern too).
c_case() { # NAME ARGS...: create with tern, verify with both
	local name=$1
	shift
	rm -f "c-$name.tern"
	if ! out=$(tern release create --key k.key --board sim --version 1.2.0 --sequence 12 \
		"$@" --out "c-$name.tern" 2>&1); then
		fail "tern create $name" "$out"
		return
	fi
	verify_both "tern -> python: $name" "c-$name.tern"
}
c_case fw-1byte-1K --chunk-size 1K --firmware one.bin
c_case fw-1K-exact-1K --chunk-size 1K --firmware k1.bin
c_case fw-1K+1-1K --chunk-size 1K --firmware k1p.bin
c_case fw-odd-16K --chunk-size 16K --firmware odd.bin
c_case fw-3M+17-16K --firmware big.bin
c_case fw-3M-1M --chunk-size 1M --firmware m3.bin
c_case fw-3M+17-1M --chunk-size 1M --firmware big.bin
c_case config-only-16K --config app.conf
c_case config-only-1K --chunk-size 1K --config cfg.bin
c_case both-notes-1K --chunk-size 1K --firmware odd.bin --config app.conf --notes NOTES.md
c_case both-notes-1M --chunk-size 1M --firmware big.bin --config cfg.bin --notes NOTES.md \
	--security-counter 7 --board sim2 --board qemu-x86_64 --id rel.2026-01_a

# -------------------------------------------------------------------------------------
# 2. Python creates, tern verifies and inspects.
# Checks `tern release inspect --json` output against the Python create arguments.
cat >check_inspect.py <<'EOF'
import hashlib, json, os, sys
j = json.load(open(sys.argv[1]))
check = json.loads(sys.argv[2])
args = sys.argv[3:]
def arg(flag, default=None):
    return args[args.index(flag) + 1] if flag in args else default
errors = []
def want(key, value):
    if j.get(key) != value:
        errors.append(f"{key}: {j.get(key)!r}, want {value!r}")
want("format_version", 1)
want("version", "2.0.0-rc.1")
want("sequence", 4000000000)
want("security_counter", int(arg("--security-counter", 0)))
want("chunk_size", {"1K": 1024, "16K": 16384, "1M": 1048576}[arg("--chunk-size", "16K")])
want("file_complete", True)
want("file_size", os.path.getsize(sys.argv[1][:-5] + ".tern"))
notes = arg("--notes")
want("notes", open(notes, encoding="utf-8").read() if notes else "")
for key, value in check.items():
    want(key, value)
comps = []
for flag, kind in (("--firmware", "firmware"), ("--config", "config")):
    path = arg(flag)
    if path:
        data = open(path, "rb").read()
        cs = j["chunk_size"]
        index = b"".join(hashlib.sha256(data[i:i + cs]).digest() for i in range(0, len(data), cs))
        comps.append({"name": kind, "kind": kind, "slot_group": kind, "size": len(data),
                      "chunks": len(index) // 32,
                      "index_digest": hashlib.sha256(index).hexdigest()})
want("components", comps)
if errors:
    sys.exit("; ".join(errors))
EOF
p_case() { # NAME JSON-CHECK ARGS...: create with Python, verify with both, check inspect
	local name=$1 check=$2
	shift 2
	rm -f "p-$name.tern"
	if ! out=$(py create --key k.key --board sim --version 2.0.0-rc.1 --sequence 4000000000 \
		"$@" --out "p-$name.tern" 2>&1); then
		fail "python create $name" "$out"
		return
	fi
	verify_both "python -> tern: $name" "p-$name.tern"
	if ! tern release inspect --json "p-$name.tern" >"p-$name.json" 2>&1; then
		fail "tern inspect --json $name" "$(cat "p-$name.json")"
		return
	fi
	if out=$("$PY" check_inspect.py "p-$name.json" "$check" "$@" 2>&1); then
		pass "tern inspect --json: $name"
	else
		fail "tern inspect --json: $name" "$out" "$(cat "p-$name.json")"
	fi
}
el='"early_life":{"trial_attempts":3,"health_timeout_s":60,"settle_s":10}'
p_case fw-1byte-1K "{\"boards\":[\"sim\"],\"release_id\":\"sim-2.0.0-rc.1-4000000000\",$el}" \
	--chunk-size 1K --firmware one.bin
p_case fw-1K+1-1K '{}' --chunk-size 1K --firmware k1p.bin
p_case fw-3M+17-16K '{"created":1767225600}' --firmware big.bin --created 1767225600
p_case fw-3M-1M '{}' --chunk-size 1M --firmware m3.bin
p_case config-only '{}' --config app.conf --notes NOTES.md
p_case both-notes-1M \
	'{"boards":["sim","sim2"],"release_id":"x_1","early_life":{"trial_attempts":5,"health_timeout_s":120,"settle_s":0}}' \
	--chunk-size 1M --firmware big.bin --config cfg.bin --notes NOTES.md --security-counter 9 \
	--board sim2 --id x_1 --trial-attempts 5 --health-timeout 120 --settle 0

# -------------------------------------------------------------------------------------
# 3. Damage, on one release from each side: both must refuse, for the same reason.
damage() { # WHO FILE
	local who=$1 f=$2
	eval "$(py layout "$f")"
	local last=$((c0_data_off + c0_size - 1))
	flip "$f" d1.tern $((c0_data_off + 5))
	refuse_both "$who: byte flipped in the first chunk" d1.tern digest-mismatch
	flip "$f" d2.tern "$last"
	refuse_both "$who: byte flipped in the last chunk" d2.tern digest-mismatch
	flip "$f" d3.tern $((c0_index_off + c0_index_len - 1))
	refuse_both "$who: byte flipped in the chunk index" d3.tern digest-mismatch
	flip "$f" d4.tern $((manifest_off + manifest_len / 2))
	refuse_both "$who: byte flipped in the manifest" d4.tern bad-signature
	flip "$f" d5.tern $((sig_off + 10))
	refuse_both "$who: byte flipped in the signature" d5.tern bad-signature
	flip "$f" d6.tern 10 # inside the kid
	refuse_both "$who: byte flipped in the key id" d6.tern unknown-key
	flip "$f" d7.tern $((c1_data_off + c1_size - 1))
	refuse_both "$who: byte flipped in the second component" d7.tern digest-mismatch
	cp "$f" d8.tern && printf '\0' >>d8.tern
	refuse_both "$who: one trailing byte" d8.tern trailing-bytes
	cp "$f" d9.tern && printf '\xd2\x84' >>d9.tern
	refuse_both "$who: a second COSE_Sign1 head after the end" d9.tern trailing-bytes
	head -c $((end - 1)) "$f" >d10.tern
	refuse_both "$who: truncated by one byte" d10.tern truncated
	head -c $((c0_index_off + 3)) "$f" >d11.tern
	refuse_both "$who: truncated inside the index" d11.tern truncated
	head -c $((head_len - 1)) "$f" >d12.tern
	refuse_both "$who: truncated inside the signed manifest" d12.tern truncated
	# A wrong length in the firmware's byte-string head (59 xx xx: one more byte).
	cp "$f" d13.tern
	"$PY" - d13.tern $((c0_data_off - 1)) <<'EOF'
import sys
path, off = sys.argv[1], int(sys.argv[2])
with open(path, "r+b") as f:
    f.seek(off)
    b = f.read(1)
    f.seek(off)
    f.write(bytes([(b[0] + 1) & 0xFF]))
EOF
	refuse_both "$who: component head announces another length" d13.tern malformed
}
damage "tern-made" c-both-notes-1K.tern
damage "python-made" p-both-notes-1M.tern

# Another key: refused by both as an unknown key.
py create --key other.key --board sim --version 1 --sequence 1 --firmware odd.bin --out o.tern
refuse_both "signed by a key not given" o.tern unknown-key
if out=$(py verify o.tern --pubkey other.pub) && out2=$(tern release verify o.tern --pubkey other.pub); then
	pass "python-made with a python key, verified by tern"
else
	fail "python-made with a python key, verified by tern" "$out" "${out2:-}"
fi

# -------------------------------------------------------------------------------------
# 4. Rules for keys a reader does not know (FORMAT.md 3.3), from the Python writer.
py create --key k.key --board sim --version 1 --sequence 1 --firmware odd.bin \
	--extra 12=a201617818640a --extra 63=83010203 --out unknown.tern
verify_both "unknown manifest keys are skipped by both" unknown.tern
py create --key k.key --board sim --version 1 --sequence 1 --firmware odd.bin --critical 2,9 \
	--out crit-known.tern
verify_both "critical list of known keys accepted by both" crit-known.tern
py create --key k.key --board sim --version 1 --sequence 1 --firmware odd.bin --critical 12 \
	--extra 12=01 --no-check --out crit.tern
refuse_both "unknown critical key refused by both" crit.tern unknown-critical

# One release per reader rule of FORMAT.md sections 2.4 and 3 (tests/interop/rule_cases.py):
# both accept, or both refuse for the reason FORMAT.md names.
mkdir rules && cd rules || exit 1
cp ../k.pub . && "$PY" "$here/rule_cases.py" ../k.key >cases.txt || fail "rule_cases.py"
while read -r file expect name; do
	if [ "$expect" = ok ]; then
		verify_both "rule: $name" "$file"
	else
		refuse_both "rule: $name" "$file" "$expect"
	fi
done <cases.txt
cd .. || exit 1

# -------------------------------------------------------------------------------------
# 5. The worked example of docs/FORMAT.md section 7.
block() { # NAME: the fenced block after <!-- interop:NAME --> in FORMAT.md
	awk -v tag="<!-- interop:$1 -->" '
		$0 == tag { want = 1; next }
		want && /^```/ { if (inside) exit; inside = 1; next }
		inside { print }' "$FORMAT_MD"
}
block example-key >example.key && chmod 600 example.key
block example-pub >example.pub
"$PY" - <<'EOF'
open("fw.bin", "wb").write(bytes(i % 251 for i in range(1100)))
open("app.conf", "wb").write(b"log=info\n")
open("NOTES.md", "wb").write(b"Fix the watchdog.\n")
EOF
block example-file | "$PY" -c '
import sys
out = bytearray()
for line in sys.stdin:
    line = line.strip()
    if line.startswith("<firmware:"):
        out += open("fw.bin", "rb").read()
    else:
        out += bytes.fromhex(line)
open("doc-example.tern", "wb").write(out)
'
if out=$(py verify doc-example.tern --pubkey example.pub 2>&1) &&
	out2=$(tern release verify doc-example.tern --pubkey example.pub 2>&1); then
	pass "FORMAT.md example verifies with both"
else
	fail "FORMAT.md example verifies with both" "$out" "${out2:-}"
fi
eval "$(py layout doc-example.tern)"
block example-manifest | sed 's/#.*//' | tr -d ' \n' >manifest.hex
if [ "$(cat manifest.hex)" = "$(tail -c +$((manifest_off + 1)) doc-example.tern |
	head -c "$manifest_len" | od -An -v -tx1 | tr -d ' \n')" ]; then
	pass "FORMAT.md annotated manifest is the example's manifest"
else
	fail "FORMAT.md annotated manifest is the example's manifest"
fi
rm -f ex-c.tern
SOURCE_DATE_EPOCH=1767225600 tern release create --key example.key --board sim --version 1.2.0 \
	--sequence 12 --security-counter 3 --chunk-size 1K --firmware fw.bin --config app.conf \
	--notes NOTES.md --id sim-1.2.0 --out ex-c.tern >/dev/null
if cmp -s ex-c.tern doc-example.tern; then
	pass "FORMAT.md example is what tern writes, byte for byte"
else
	fail "FORMAT.md example is what tern writes, byte for byte" "$(cmp ex-c.tern doc-example.tern 2>&1)"
fi
py create --key example.key --board sim --version 1.2.0 --sequence 12 --security-counter 3 \
	--chunk-size 1K --firmware fw.bin --config app.conf --notes NOTES.md --id sim-1.2.0 \
	--created 1767225600 --out ex-py.tern
# ECDSA in Python is randomized: everything but the 64 signature bytes must match.
if cmp -s <(head -c "$sig_off" ex-py.tern) <(head -c "$sig_off" doc-example.tern) &&
	cmp -s <(tail -c +$((head_len + 1)) ex-py.tern) <(tail -c +$((head_len + 1)) doc-example.tern); then
	pass "Python writes the FORMAT.md example too (all but the signature)"
else
	fail "Python writes the FORMAT.md example too (all but the signature)"
fi

# -------------------------------------------------------------------------------------
# 6. The Python verifier streams: a 64 MiB release does not need 64 MiB of memory.
mkfile huge.bin $((64 * 1024 * 1024))
tern release create --key k.key --board sim --version 1 --sequence 1 --chunk-size 1M \
	--firmware huge.bin --out huge.tern >/dev/null
rm -f huge.bin
if out=$(/usr/bin/time -f '%M' "$PY" "$REL" verify huge.tern --pubkey k.pub 2>&1); then
	kib=$(echo "$out" | tail -n 1)
	if [ "$kib" -lt 40000 ]; then
		pass "python verify of 64 MiB streams (max RSS $kib KiB)"
	else
		fail "python verify of 64 MiB streams" "max RSS $kib KiB"
	fi
else
	fail "python verify of 64 MiB" "$out"
fi

echo "$n_pass passed, $n_fail failed"
[ "$n_fail" -eq 0 ]
