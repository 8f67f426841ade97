#!/usr/bin/env bash
# The U-Boot and GRUB environment formats, cross-checked with the tools that own them:
# fw_printenv/fw_setenv (libubootenv) and grub-editenv read what tern writes and tern
# reads what they write; redundant U-Boot copies (flags, wrap at 255, a torn newer copy)
# and a single copy. Prints "N passed, N failed".
source "$(cd "$(dirname "$0")" && pwd)/../lib/suite.sh"
set -u
BUILD=${BUILD:-build}
ENVTOOL=$(cd "$BUILD" && pwd)/tests/ternd-envtool
SRC=$(pwd)
work=$(mktemp -d /tmp/tern-bootenv.XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1
# same NAME WANT GOT

for tool in fw_printenv fw_setenv grub-editenv; do
	command -v $tool >/dev/null || { bad "$tool installed (scripts/install-deps.sh)"; # The grub.cfg snippet of docs/porting.md is valid GRUB script.
if command -v grub-script-check >/dev/null; then
	sed -n '/^### GRUB (grub.cfg)/,/^### Anything else/p' "$SRC/docs/porting.md" |
		sed -n '/^```$/,/^```$/p' | sed '1d;$d' >snippet.cfg
	if [ -s snippet.cfg ] && grub-script-check snippet.cfg; then
		ok "grub: the porting guide's grub.cfg snippet passes grub-script-check"
	else
		bad "grub: porting guide snippet" "$(grub-script-check snippet.cfg 2>&1 | tail -2)"
	fi
fi

echo "$pass passed, $fail failed"; exit 1; }
done

printf 'BOOT_ORDER=A B\nBOOT_A_LEFT=3\nBOOT_B_LEFT=0\nbootcmd=run tern_boot\nbootargs=console=ttyS0 quiet\n' >defaults

# --- U-Boot, redundant copies in two files
printf '# two copies: redundant\nenv.0 0x0 0x4000\nenv.1 0x0 0x4000\n' >redund.config
truncate -s 16K env.0 env.1
fw_setenv -c redund.config -f defaults BOOT_A_LEFT 3 >/dev/null 2>&1
same "redundant: tern reads what fw_setenv wrote" "$(fw_printenv -c redund.config | sort)" \
	"$("$ENVTOOL" uboot redund.config list | sort)"
"$ENVTOOL" uboot redund.config set BOOT_ORDER "B A"
"$ENVTOOL" uboot redund.config set BOOT_B_LEFT 3
same "redundant: fw_printenv reads what tern wrote" "B A" "$(fw_printenv -c redund.config -n BOOT_ORDER 2>/dev/null)"
same "redundant: other variables kept" "console=ttyS0 quiet" "$(fw_printenv -c redund.config -n bootargs 2>/dev/null)"
fw_setenv -c redund.config BOOT_B_LEFT 2 >/dev/null 2>&1
same "redundant: tern reads fw_setenv's next copy" "2" "$("$ENVTOOL" uboot redund.config get BOOT_B_LEFT)"
"$ENVTOOL" uboot redund.config set extra "with spaces = and more"
same "redundant: value with spaces and '='" "with spaces = and more" "$(fw_printenv -c redund.config -n extra 2>/dev/null)"
"$ENVTOOL" uboot redund.config set extra
same "redundant: deleted variable gone for fw_printenv" "" "$(fw_printenv -c redund.config 2>/dev/null | grep '^extra=')"
# 300 stores: the flag byte wraps from 255 to 0; the newest copy must still win for both.
"$ENVTOOL" uboot redund.config bump counter 300
same "flag wrap: fw_printenv reads tern's newest copy" "300" "$(fw_printenv -c redund.config -n counter 2>/dev/null)"
fw_setenv -c redund.config counter 301 >/dev/null 2>&1
same "flag wrap: tern reads fw_setenv's newest copy" "301" "$("$ENVTOOL" uboot redund.config get counter)"
f0=$(od -An -tu1 -j4 -N1 env.0 | tr -d ' ')
f1=$(od -An -tu1 -j4 -N1 env.1 | tr -d ' ')
d=$(((f0 - f1 + 256) % 256))
if [ "$d" = 1 ] || [ "$d" = 255 ]; then ok "flags of the two copies differ by one ($f0, $f1)"; else bad "flags $f0 $f1"; fi

# A torn store: tern writes the older copy; garble it mid-data. Both readers keep the
# previous environment.
"$ENVTOOL" uboot redund.config set BOOT_ORDER "A B"
newer=env.1
grep -q "BOOT_ORDER=A B" env.0 && ! grep -q "BOOT_ORDER=A B" env.1 && newer=env.0
printf 'garbage' | dd of=$newer bs=1 seek=40 conv=notrunc status=none
same "torn newer copy: fw_printenv falls back to the older" "B A" "$(fw_printenv -c redund.config -n BOOT_ORDER 2>/dev/null)"
same "torn newer copy: tern falls back to the older" "B A" "$("$ENVTOOL" uboot redund.config get BOOT_ORDER)"
"$ENVTOOL" uboot redund.config set BOOT_ORDER "A B"
same "after a torn copy, tern's next store is read by fw_printenv" "A B" "$(fw_printenv -c redund.config -n BOOT_ORDER 2>/dev/null)"
# Truncated copy (the file cut short): the other copy still reads.
"$ENVTOOL" uboot redund.config set BOOT_A_LEFT 1
newer=env.1
grep -q "BOOT_A_LEFT=1" env.0 && newer=env.0
truncate -s 100 $newer
same "truncated newer copy: tern reads the older" "3" "$("$ENVTOOL" uboot redund.config get BOOT_A_LEFT 2>&1)"
truncate -s 16K $newer

# A torn store, as a power cut leaves it: the first N bytes of the new copy landed over
# the old copy, the rest is still the old bytes. For every N both readers agree, and
# read the previous environment until the new copy is whole (its remaining bytes may
# equal the old ones: then it is whole early), never anything else.
torn_ok=0
torn_bad=""
for n in 0 1 4 5 6 20 64 200 4096 16383 16384; do
	"$ENVTOOL" uboot redund.config set TORN before
	cp env.0 old.0
	cp env.1 old.1
	"$ENVTOOL" uboot redund.config set TORN after
	if cmp -s env.0 old.0; then target=1; else target=0; fi
	{ head -c $n env.$target; tail -c +$((n + 1)) old.$target; } >torn.bin
	want=before
	cmp -s torn.bin env.$target && want=after # the rest was the same bytes already
	cp torn.bin env.$target
	a=$(fw_printenv -c redund.config -n TORN 2>/dev/null)
	b=$("$ENVTOOL" uboot redund.config get TORN 2>/dev/null)
	if [ "$a" = "$b" ] && [ "$a" = "$want" ]; then torn_ok=$((torn_ok + 1)); else torn_bad="$torn_bad n=$n:fw_printenv=$a,tern=$b"; fi
done
if [ -z "$torn_bad" ]; then ok "torn store cut at 11 points: both read the same, previous until complete"; else bad "torn stores" "$torn_bad"; fi

# --- U-Boot, both copies in one file at offsets
printf 'both.env 0x0 0x2000\nboth.env 0x2000 0x2000\n' >offsets.config
truncate -s 16K both.env
fw_setenv -c offsets.config -f defaults BOOT_A_LEFT 3 >/dev/null 2>&1
"$ENVTOOL" uboot offsets.config set BOOT_A_LEFT 2
same "one file, two offsets: fw_printenv reads tern's copy" "2" "$(fw_printenv -c offsets.config -n BOOT_A_LEFT 2>/dev/null)"
fw_setenv -c offsets.config BOOT_A_LEFT 1 >/dev/null 2>&1
same "one file, two offsets: tern reads fw_setenv's copy" "1" "$("$ENVTOOL" uboot offsets.config get BOOT_A_LEFT)"

# --- U-Boot, one copy
printf 'single.env 0 0x4000\n' >single.config
truncate -s 16K single.env
fw_setenv -c single.config -f defaults BOOT_A_LEFT 3 >/dev/null 2>&1
same "single: tern reads what fw_setenv wrote" "$(fw_printenv -c single.config | sort)" \
	"$("$ENVTOOL" uboot single.config list | sort)"
"$ENVTOOL" uboot single.config set BOOT_ORDER "B A"
same "single: fw_printenv reads what tern wrote" "B A" "$(fw_printenv -c single.config -n BOOT_ORDER 2>/dev/null)"
same "single: CRC32 little-endian over the data" "$(od -An -tx4 -N4 single.env | tr -d ' ')" \
	"$(tail -c +5 single.env | /usr/bin/python3 -c 'import sys,zlib; print("%08x" % zlib.crc32(sys.stdin.buffer.read()))')"
dd if=/dev/zero of=single.env bs=1 seek=10 count=4 conv=notrunc status=none
if ! "$ENVTOOL" uboot single.config get BOOT_ORDER >/dev/null 2>&1 &&
	! fw_printenv -c single.config BOOT_ORDER 2>/dev/null | grep -q BOOT_ORDER; then
	ok "single: a garbled copy is refused by both"
else
	bad "single: a garbled copy is refused by both"
fi
# fw_env.config errors
printf 'x.env 0x0\n' >bad.config
out=$("$ENVTOOL" uboot bad.config list 2>&1)
case "$out" in *bad.config:1:*) ok "fw_env.config error names file and line" ;; *) bad "fw_env.config error" "$out" ;; esac

# --- GRUB
grub-editenv grub.env create
grub-editenv grub.env set BOOT_ORDER="A B" BOOT_A_LEFT=3 'path=C:\dir'
same "grub: tern reads what grub-editenv wrote" "$(grub-editenv grub.env list)" "$("$ENVTOOL" grub grub.env list)"
same "grub: backslash escapes read" 'C:\dir' "$("$ENVTOOL" grub grub.env get path)"
"$ENVTOOL" grub grub.env set BOOT_B_LEFT 0
"$ENVTOOL" grub grub.env set BOOT_ORDER "B A"
"$ENVTOOL" grub grub.env set note 'a\b'
same "grub: grub-editenv reads what tern wrote" "$(printf 'BOOT_ORDER=B A\nBOOT_A_LEFT=3\npath=C:\\dir\nBOOT_B_LEFT=0\nnote=a\\b')" "$(grub-editenv grub.env list)"
same "grub: block stays 1024 bytes" 1024 "$(stat -c %s grub.env)"
grub-editenv g1.env create
grub-editenv g1.env set A=1 B=two 'C=x\y'
grub-editenv g1.env set A=changed
grub-editenv g2.env create
"$ENVTOOL" grub g2.env set A 1
"$ENVTOOL" grub g2.env set B two
"$ENVTOOL" grub g2.env set C 'x\y'
"$ENVTOOL" grub g2.env set A changed
if cmp -s g1.env g2.env; then ok "grub: byte for byte what grub-editenv writes"; else bad "grub: byte for byte" "$(cmp g1.env g2.env)"; fi
grub-editenv g1.env unset B
"$ENVTOOL" grub g2.env set B
if cmp -s g1.env g2.env; then ok "grub: unset byte for byte"; else bad "grub: unset byte for byte"; fi
long=$(head -c 1100 /dev/zero | tr '\0' x)
if ! "$ENVTOOL" grub g2.env set big "$long" 2>/dev/null && cmp -s g1.env g2.env; then
	ok "grub: a variable that does not fit is refused, block unchanged"
else
	bad "grub: a variable that does not fit is refused, block unchanged"
fi
printf 'not a grub env' >bad.env
if "$ENVTOOL" grub bad.env list >/dev/null 2>&1; then bad "grub: bad header refused"; else ok "grub: bad header refused"; fi

# The grub.cfg snippet of docs/porting.md is valid GRUB script.
if command -v grub-script-check >/dev/null; then
	sed -n '/^### GRUB (grub.cfg)/,/^### Anything else/p' "$SRC/docs/porting.md" |
		sed -n '/^```$/,/^```$/p' | sed '1d;$d' >snippet.cfg
	if [ -s snippet.cfg ] && grub-script-check snippet.cfg; then
		ok "grub: the porting guide's grub.cfg snippet passes grub-script-check"
	else
		bad "grub: porting guide snippet" "$(grub-script-check snippet.cfg 2>&1 | tail -2)"
	fi
fi

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
