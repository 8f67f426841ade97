#!/usr/bin/env bash
# `make install DESTDIR=... PREFIX=...` puts the expected files in place, and the
# systemd unit names the installed ternd. Prints "N passed, N failed".
source "$(cd "$(dirname "$0")" && pwd)/../lib/suite.sh"
set -u
BUILD=${BUILD:-build}
work=$(mktemp -d /tmp/tern-install.XXXXXX)
trap 'rm -rf "$work"' EXIT

if make --no-print-directory -s install BUILD="$BUILD" PREFIX=/usr DESTDIR="$work/root" >"$work/log" 2>&1; then
	ok "make install PREFIX=/usr DESTDIR=..."
else
	bad "make install" "$(tail -5 "$work/log")"
fi
r=$work/root
for f in usr/bin/tern usr/bin/ternd usr/libexec/tern/usb-gadget-setup; do
	if [ -x "$r/$f" ]; then ok "$f installed, executable"; else bad "$f installed"; fi
done
if [ -f "$r/usr/lib/udev/rules.d/70-tern.rules" ] && grep -q 1209 "$r/usr/lib/udev/rules.d/70-tern.rules"; then
	ok "udev rule for tern USB devices installed"
else
	bad "udev rule for tern USB devices installed"
fi
u=$r/usr/lib/systemd/system/ternd.service
if [ -f "$u" ] && grep -q '^ExecStart=/usr/bin/ternd --config ${TERND_CONFIG} run$' "$u" &&
	grep -q '^ExecStartPre=/usr/bin/ternd --config ${TERND_CONFIG} check$' "$u" &&
	grep -q '^Restart=on-failure$' "$u" && ! grep -q '@' "$u"; then
	ok "systemd unit installed with the installed ternd"
else
	bad "systemd unit" "$(cat "$u" 2>&1)"
fi
if "$r/usr/libexec/tern/usb-gadget-setup" --help | grep -q "usb-gadget-setup create"; then
	ok "installed usb-gadget-setup runs (--help)"
else
	bad "installed usb-gadget-setup runs"
fi
if grep -q '^#ExecStartPre=/usr/libexec/tern/usb-gadget-setup create --config ${TERND_CONFIG}$' "$u" &&
	grep -q '^#ExecStartPost=/usr/libexec/tern/usb-gadget-setup bind --wait [0-9]*$' "$u" &&
	grep -q '^#ExecStopPost=/usr/libexec/tern/usb-gadget-setup remove --config ${TERND_CONFIG}$' "$u"; then
	ok "the unit names the installed usb-gadget-setup (for [usb])"
else
	bad "the unit names usb-gadget-setup" "$(grep gadget "$u")"
fi
# A second PREFIX moves both.
if make --no-print-directory -s install BUILD="$BUILD" PREFIX=/opt/tern DESTDIR="$work/root2" >"$work/log2" 2>&1 &&
	[ -x "$work/root2/opt/tern/libexec/tern/usb-gadget-setup" ] &&
	grep -q '^#ExecStartPre=/opt/tern/libexec/tern/usb-gadget-setup create' \
		"$work/root2/opt/tern/lib/systemd/system/ternd.service"; then
	ok "PREFIX=/opt/tern: usb-gadget-setup and the unit follow it"
else
	bad "PREFIX=/opt/tern" "$(tail -5 "$work/log2")"
fi
# systemd's own check of the unit, with ExecStart pointing at the built ternd.
if command -v systemd-analyze >/dev/null 2>&1; then
	sed -e "s|@BINDIR@|$(cd "$BUILD" && pwd)|g" -e 's|@DOCDIR@|/usr/share/doc/tern|g' \
		boards/linux/ternd.service >"$work/ternd.service"
	if out=$(systemd-analyze verify "$work/ternd.service" 2>&1); then
		ok "systemd-analyze verify"
	else
		bad "systemd-analyze verify" "$out"
	fi
	# The same with the [usb] lines in use, the script where make install puts it.
	sed -e "s|@BINDIR@|$(cd "$BUILD" && pwd)|g" -e 's|@DOCDIR@|/usr/share/doc/tern|g' \
		-e "s|@LIBEXECDIR@|$r/usr/libexec/tern|g" -e 's/^#\(Exec[A-Za-z]*=\)/\1/' \
		boards/linux/ternd.service >"$work/ternd.service"
	if ! grep -q '^ExecStartPost=.*usb-gadget-setup bind' "$work/ternd.service"; then
		bad "systemd-analyze verify with the [usb] lines" "they were not uncommented"
	elif out=$(systemd-analyze verify "$work/ternd.service" 2>&1); then
		ok "systemd-analyze verify with the [usb] lines"
	else
		bad "systemd-analyze verify with the [usb] lines" "$out"
	fi
fi
for f in linux.md porting.md device.md FORMAT.md README.md; do
	if [ -f "$r/usr/share/doc/tern/$f" ]; then ok "doc $f installed"; else bad "doc $f installed"; fi
done
for f in files-uboot/ternd.conf files-uboot/setup files-grub/ternd.conf files-grub/boot; do
	if [ -f "$r/usr/share/doc/tern/examples/$f" ]; then ok "example $f installed"; else bad "example $f installed"; fi
done
if "$r/usr/bin/ternd" --help | grep -q "ternd \[--config FILE\] run"; then ok "installed ternd runs"; else bad "installed ternd runs"; fi
n=$(cd "$r" && find . -type f | wc -l)
echo "($n files installed)"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
