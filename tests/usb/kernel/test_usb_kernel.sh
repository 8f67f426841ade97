#!/usr/bin/env bash
# make check-usb-kernel: the device side on the real Linux USB stack (../shared
# USB-TESTING.md section 2, docs/usb.md). Debian's kernel (linux-image-amd64) and its
# modules (dummy_hcd, libcomposite, usb_f_fs, configfs, udc-core) boot in QEMU (TCG, no
# KVM needed) from a small initramfs: busybox, ternd (Linux board) as the FunctionFS
# gadget, and tern on the same kernel as the host through libusb. The guest
# (tests/usb/kernel/guest-init) prints "TERNTEST ok|fail ..." lines on the console; this
# script reads them and prints "N passed, N failed".
#
# The kernel package is fetched with `apt-get download` and unpacked with dpkg-deb into
# $TERN_CACHE (default ~/.cache/tern), keyed by its version, and reused by later runs
# (also offline: then the newest unpacked one is used). When QEMU or a kernel cannot be
# had at all the test says so and exits 0 (skipped), unless TERN_USB_KERNEL_REQUIRED=1;
# a test that ran and failed always exits 1.
set -u
BUILD=${BUILD:-build}
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
BUILD=$(cd "$BUILD" && pwd)
HERE=$ROOT/tests/usb/kernel
CACHE=${TERN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tern}/kernel
TIMEOUT=${TERN_USB_KERNEL_TIMEOUT:-180}
MODULES="dummy_hcd libcomposite usb_f_fs"
t_start=$(date +%s.%N)

skip() {
	echo "check-usb-kernel: SKIPPED: $1"
	echo "check-usb-kernel: the real-kernel USB test did not run on this machine"
	[ "${TERN_USB_KERNEL_REQUIRED:-0}" = 1 ] && exit 1
	exit 0
}
elapsed() { awk -v a="$t_start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

command -v qemu-system-x86_64 >/dev/null ||
	skip "qemu-system-x86_64 is not installed (scripts/install-deps.sh installs qemu-system-x86)"
BUSYBOX=
for b in /bin/busybox /usr/bin/busybox; do
	# static: the initramfs has no libc for it
	[ -x "$b" ] && ! ldd "$b" >/dev/null 2>&1 && { BUSYBOX=$b; break; }
done
[ -n "$BUSYBOX" ] || skip "no static busybox (busybox-static) is installed"
for b in tern ternd; do
	[ -x "$BUILD/$b" ] || { echo "check-usb-kernel: $BUILD/$b is missing: run make first"; exit 1; }
done

# --- the kernel: download once per version, unpack once
mkdir -p "$CACHE" || skip "cannot create the cache folder $CACHE"
pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
ver=
[ -n "$pkg" ] && ver=$(apt-cache policy "$pkg" 2>/dev/null | awk '/Candidate:/ { print $2; exit }')
kdir=
if [ -n "$pkg" ] && [ -n "$ver" ] && [ "$ver" != "(none)" ]; then
	kdir=$CACHE/${pkg}_$ver
	if [ ! -e "$kdir/.unpacked" ]; then
		echo "check-usb-kernel: fetching $pkg $ver (once; cached in $CACHE)"
		dl=$(mktemp -d "$CACHE/dl.XXXXXX")
		if (cd "$dl" && apt-get download -q "$pkg=$ver" >/dev/null 2>"$dl/err" &&
			rm -rf "$kdir" && mkdir -p "$kdir" && dpkg-deb -x ./*.deb "$kdir"); then
			touch "$kdir/.unpacked"
		else
			echo "check-usb-kernel: cannot fetch $pkg $ver: $(tail -n 1 "$dl/err" 2>/dev/null)"
			kdir=
		fi
		rm -rf "$dl"
	fi
fi
if [ -z "$kdir" ]; then
	# Offline or no apt: the newest kernel unpacked by an earlier run.
	kdir=$(ls -d "$CACHE"/linux-image-*/.unpacked 2>/dev/null | sort -V | tail -n 1)
	kdir=${kdir%/.unpacked}
	[ -n "$kdir" ] || skip "no kernel package (apt-get download linux-image-amd64 failed) and none cached in $CACHE"
	echo "check-usb-kernel: using the cached $(basename "$kdir")"
fi
kver=$(ls "$kdir/lib/modules" | head -n 1)
vmlinuz=$kdir/boot/vmlinuz-$kver
[ -r "$vmlinuz" ] || skip "$kdir has no kernel image"

# --- the initramfs
work=$BUILD/usb-kernel
rm -rf "$work"
root=$work/root
mkdir -p "$root"/{bin,sbin,etc,proc,sys,dev,tmp,modules,data/keys,data/slots,data/state} || exit 1
cp "$BUSYBOX" "$root/bin/busybox"
ln -s busybox "$root/bin/sh"

# Modules and what they depend on (read from each module's .modinfo), in load order.
declare -A kopath seen
while read -r n f; do
	n=${n%.ko}
	kopath[$n]=$f
	kopath[${n//-/_}]=$f
done < <(find "$kdir/lib/modules/$kver/kernel/drivers/usb" "$kdir/lib/modules/$kver/kernel/fs" \
	-name '*.ko' -printf '%f %p\n')
order=()
add_module() {
	local m=$1 f=${kopath[$1]:-}
	[ -n "$f" ] || { echo "check-usb-kernel: module $m is not in $kver"; exit 1; }
	[ -n "${seen[$m]:-}" ] && return
	seen[$m]=1
	local deps
	deps=$(grep -ao 'depends=[a-z0-9_,-]*' "$f" | head -n 1 | cut -d= -f2)
	for d in ${deps//,/ }; do add_module "$d"; done
	order+=("$(basename "$f" .ko)")
	cp "$f" "$root/modules/"
}
for m in $MODULES; do add_module "$m"; done
printf '%s\n' "${order[@]}" >"$root/modules/order"

# tern and ternd, mosquitto and mosquitto_pub (ternd serving MQTT and USB at once), and
# the shared libraries ldd names.
cp "$BUILD/tern" "$BUILD/ternd" "$root/bin/"
MOSQ=
if command -v mosquitto >/dev/null && command -v mosquitto_pub >/dev/null; then
	MOSQ="$(command -v mosquitto) $(command -v mosquitto_pub)"
	cp $MOSQ "$root/bin/"
else
	echo "check-usb-kernel: no mosquitto here: the MQTT-and-USB part will report a failure"
fi
for lib in $(ldd "$BUILD/tern" "$BUILD/ternd" $MOSQ | awk '/=>/ { print $3 } /^\t\/lib/ { print $1 }' | sort -u); do
	mkdir -p "$root$(dirname "$lib")"
	cp -L "$lib" "$root$lib"
done
cp "$HERE/guest-init" "$root/init"
cp "$ROOT/boards/linux/usb-gadget-setup" "$root/usb-gadget-setup"
cp "$HERE/ternd.conf" "$HERE/bootctl" "$HERE/boot" "$HERE/reboot" "$root/data/"

# A signing key the device trusts, the release (2 MB, 123 chunks: long enough to be
# unplugged in the middle), and the slots (4 MiB files).
"$BUILD/tern" key generate --out "$work/signing.key" >/dev/null || exit 1
cp "$work/signing.pub" "$root/data/keys/"
head -c 2000000 /dev/urandom >"$work/fw-2.0.0.bin"
"$BUILD/tern" release create --key "$work/signing.key" --board qemu-gadget --version 2.0.0 \
	--sequence 2 --firmware "$work/fw-2.0.0.bin" --out "$root/data/fw-2.0.0.tern" >/dev/null || exit 1
truncate -s 4M "$root/data/slots/a.img" "$root/data/slots/b.img"
# For ternd serving MQTT and USB at once: 3.0.0 flashed over USB, 4.0.0 deployed over MQTT.
for v in 3 4; do
	head -c 300000 /dev/urandom >"$work/fw-$v.0.0.bin"
	"$BUILD/tern" release create --key "$work/signing.key" --board qemu-gadget --version $v.0.0 \
		--sequence $v --firmware "$work/fw-$v.0.0.bin" --out "$root/data/fw-$v.0.0.tern" >/dev/null || exit 1
done
cp "$work/signing.key" "$root/data/signing.key"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$work/initrd.gz" || exit 1
echo "check-usb-kernel: kernel $kver, initramfs $(du -k "$work/initrd.gz" | cut -f1) KiB, ready after $(elapsed) s"

# --- boot
log=$work/console.log
t_boot=$(date +%s.%N)
timeout "$TIMEOUT" qemu-system-x86_64 -accel tcg -m 512 -smp 1 -nographic -no-reboot \
	-kernel "$vmlinuz" -initrd "$work/initrd.gz" \
	-append "console=ttyS0 quiet loglevel=3 panic=-1" >"$log" 2>&1 </dev/null
qrc=$?
boot_s=$(awk -v a="$t_boot" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
res=$work/results.txt
tr -d '\r' <"$log" | sed -n 's/.*\(TERNTEST .*\)/\1/p' >"$res"
if ! grep -q "^TERNTEST begin" "$res"; then
	echo "check-usb-kernel: QEMU did not get to the test (exit $qrc); its output:"
	tail -n 20 "$log" | sed 's/^/    /'
	if [ $qrc -eq 124 ]; then
		echo "check-usb-kernel: FAILED: the guest did not start within $TIMEOUT s"
		exit 1
	fi
	# The firmware ran (SeaBIOS): QEMU works and the kernel or the initramfs failed.
	if grep -qa "SeaBIOS\|Booting from ROM" "$log"; then
		echo "check-usb-kernel: FAILED: QEMU started but the guest never reached the test"
		echo "0 passed, 1 failed"
		exit 1
	fi
	skip "QEMU cannot run here (see above)"
fi

sed -n 's/^TERNTEST log //p' "$res"
pass=$(grep -c '^TERNTEST ok ' "$res")
fail=$(grep -c '^TERNTEST fail ' "$res")
grep -E '^TERNTEST (ok|fail) ' "$res" | sed -e 's/^TERNTEST ok /ok   /' -e 's/^TERNTEST fail /FAIL /'
if ! grep -q '^TERNTEST end' "$res"; then
	fail=$((fail + 1))
	echo "FAIL the guest did not finish (QEMU exit $qrc; timeout $TIMEOUT s); console: $log"
fi
echo "check-usb-kernel: QEMU ran $boot_s s (TCG), whole run $(elapsed) s"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
