/* tern usb list|status|reboot: tern devices on USB, through the transfer engine in usb.c. */
#include "host.h"
#include "host_util.h"
#include "usb.h"

#include "tern/tern_err.h"

#include <libusb.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define MAX_FOUND 64
#define UDEV_HINT                                                                                  \
	"install the udev rule: sudo cp scripts/udev/70-tern.rules /etc/udev/rules.d/ && sudo "    \
	"udevadm control --reload && sudo udevadm trigger, then plug the device in again"

/* The options every `tern usb` command takes. */
struct usb_opts {
	const char *serial;
	const char *vid, *pid;
	bool json;
	bool no_wait;
	unsigned wait_s;
};

static void print_help(const char *cmd)
{
	printf("usage: tern usb %s [--serial S] [--vid HEX] [--pid HEX]%s\n", cmd,
	       !strcmp(cmd, "reboot") ? " [--no-wait] [--wait SECONDS]" : " [--json]");
	printf("  --serial S   the device with this USB serial number (see 'tern usb list')\n"
	       "  --vid, --pid USB ids of tern devices (default %04x:%04x, or TERN_USB_VID and "
	       "TERN_USB_PID)\n",
	       USB_DEFAULT_VID, USB_DEFAULT_PID);
	if (!strcmp(cmd, "reboot"))
		printf("  --no-wait    do not wait for the device to come back\n"
		       "  --wait S     how long to wait for it (default 20 s)\n");
	else
		printf("  --json       machine-readable output\n");
}

/* Parses the options; returns -1 to go on, else the exit status (help or usage). */
static int parse_opts(const char *cmd, int argc, char **argv, struct usb_opts *o)
{
	char what[32];
	snprintf(what, sizeof(what), "usb %s", cmd);
	memset(o, 0, sizeof(*o));
	o->wait_s = 20;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			print_help(cmd);
			return 0;
		} else if (!strcmp(a, "--json") && strcmp(cmd, "reboot")) {
			o->json = true;
		} else if (!strcmp(a, "--no-wait") && !strcmp(cmd, "reboot")) {
			o->no_wait = true;
		} else if (!strcmp(a, "--serial") && v && strcmp(cmd, "list")) {
			o->serial = v;
			i++;
		} else if (!strcmp(a, "--vid") && v) {
			o->vid = v;
			i++;
		} else if (!strcmp(a, "--pid") && v) {
			o->pid = v;
			i++;
		} else if (!strcmp(a, "--wait") && v && !strcmp(cmd, "reboot")) {
			uint64_t s;
			if (host_parse_u64(v, 3600, &s))
				return host_usage(what, "--wait takes seconds");
			o->wait_s = (unsigned)s;
			i++;
		} else {
			char msg[96];
			snprintf(msg, sizeof(msg), "unknown or incomplete option '%s'", a);
			return host_usage(what, msg);
		}
	}
	return -1;
}

static int usb_start(const char *what, struct libusb_context **ctx)
{
	int rc = libusb_init(ctx);
	if (rc) {
		fprintf(stderr, "tern %s: cannot use USB: %s\n", what, libusb_strerror(rc));
		return 1;
	}
	return 0;
}

static void list_serials(const struct usb_found *f, size_t n, char *out, size_t size)
{
	size_t k = 0;
	out[0] = '\0';
	for (size_t i = 0; i < n && k < size; i++) {
		int w = snprintf(out + k, size - k, "%s%s", i ? ", " : "",
				 f[i].open_rc ? f[i].port : f[i].serial);
		if (w < 0)
			break;
		k += (size_t)w;
	}
}

/*
 * Finds the one device a command acts on: --serial, or the only one connected. Prints a
 * one-line error a technician can act on and returns non-zero when there is not exactly
 * one usable device. On success the caller frees @f with usb_found_free().
 */
static int select_device(const char *what, struct libusb_context *ctx, const struct usb_match *m,
			 struct usb_found *f)
{
	static struct usb_found all[MAX_FOUND];
	size_t n = 0, n_all = 0;
	char names[256];
	struct usb_match any = *m;
	any.serial = NULL;
	int rc = usb_scan(ctx, &any, all, MAX_FOUND, &n_all);
	if (rc)
		return host_fail(what, rc);
	if (n_all == 0) {
		fprintf(stderr,
			"tern %s: no tern device found (USB %04x:%04x); check the cable, "
			"the port and that the board is powered\n",
			what, m->vid, m->pid);
		return 1;
	}
	const struct usb_found *pick = NULL;
	for (size_t i = 0; i < n_all; i++) {
		if (m->serial && (all[i].open_rc || strcmp(all[i].serial, m->serial)))
			continue;
		n++;
		pick = &all[i];
	}
	list_serials(all, n_all, names, sizeof(names));
	if (n == 0) {
		bool blocked = false;
		for (size_t i = 0; i < n_all; i++)
			blocked = blocked || all[i].open_rc == TERN_E_NO_ACCESS;
		if (blocked)
			fprintf(stderr,
				"tern %s: no device with serial %s among those this user may "
				"open (%s); %s\n",
				what, m->serial, names, UDEV_HINT);
		else
			fprintf(stderr, "tern %s: no tern device with serial %s (connected: %s)\n",
				what, m->serial, names);
		usb_found_free(all, n_all);
		return 1;
	}
	if (n > 1) {
		fprintf(stderr,
			"tern %s: several tern devices are connected (%s); choose one with "
			"--serial\n",
			what, names);
		usb_found_free(all, n_all);
		return 1;
	}
	if (pick->open_rc == TERN_E_NO_ACCESS) {
		fprintf(stderr,
			"tern %s: the device at USB port %s is connected but this user may "
			"not open it; %s\n",
			what, pick->port, UDEV_HINT);
		usb_found_free(all, n_all);
		return 1;
	}
	if (pick->open_rc) {
		fprintf(stderr, "tern %s: the device at USB port %s: %s\n", what, pick->port,
			tern_strerror(pick->open_rc));
		usb_found_free(all, n_all);
		return 1;
	}
	*f = *pick;
	f->dev = libusb_ref_device(pick->dev);
	usb_found_free(all, n_all);
	return 0;
}

/* Opens the link and reports a busy or vanished device in words. */
static int open_link(const char *what, struct usb_link *l, struct libusb_context *ctx,
		     const struct usb_found *f)
{
	int rc = usb_link_open(l, ctx, f);
	if (rc == TERN_E_BUSY) {
		fprintf(stderr,
			"tern %s: device %s is busy: another program (another tern?) has "
			"it open; close it and retry\n",
			what, f->serial);
		return 1;
	}
	if (rc == TERN_E_NO_ACCESS) {
		fprintf(stderr, "tern %s: device %s: this user may not open it; %s\n", what,
			f->serial, UDEV_HINT);
		return 1;
	}
	if (rc) {
		fprintf(stderr, "tern %s: device %s: %s\n", what, f->serial, tern_strerror(rc));
		return 1;
	}
	return 0;
}

static const char *slot_name(uint32_t slot)
{
	return slot == 0 ? "A" : slot == 1 ? "B" : "?";
}

static void json_kv(FILE *out, const char *k, const char *v, bool comma)
{
	fprintf(out, "\"%s\": ", k);
	host_json_str(out, v, strlen(v));
	if (comma)
		fputs(", ", out);
}

/* ---- tern usb list */

struct list_row {
	const struct usb_found *f;
	int rc;
	struct tern_msg_info info;
};

int cmd_usb_list(int argc, char **argv)
{
	struct usb_opts o;
	struct usb_match m;
	struct libusb_context *ctx;
	static struct usb_found found[MAX_FOUND];
	static struct list_row rows[MAX_FOUND];
	size_t n = 0;
	int status = parse_opts("list", argc, argv, &o);
	if (status >= 0)
		return status;
	if (usb_match_init(&m, o.vid, o.pid, NULL))
		return host_usage("usb list", "--vid and --pid take hex USB ids such as 1209");
	if (usb_start("usb list", &ctx))
		return 1;
	int rc = usb_scan(ctx, &m, found, MAX_FOUND, &n);
	if (rc) {
		status = host_fail("usb list", rc);
		goto out_exit;
	}
	if (n == 0) {
		if (o.json)
			printf("[]\n");
		fprintf(stderr,
			"tern usb list: no tern device found (USB %04x:%04x); check the "
			"cable, the port and that the board is powered\n",
			m.vid, m.pid);
		status = 1;
		goto out_exit;
	}
	size_t n_blocked = 0;
	for (size_t i = 0; i < n; i++) {
		struct usb_link l;
		rows[i].f = &found[i];
		rows[i].rc = found[i].open_rc;
		if (!rows[i].rc) {
			rows[i].rc = usb_link_open(&l, ctx, &found[i]);
			if (!rows[i].rc) {
				rows[i].rc = usb_link_hello(&l, &rows[i].info);
				usb_link_close(&l);
			}
		}
		n_blocked += rows[i].rc == TERN_E_NO_ACCESS;
	}
	if (o.json) {
		printf("[");
		for (size_t i = 0; i < n; i++) {
			const struct list_row *r = &rows[i];
			printf("%s\n  {", i ? "," : "");
			json_kv(stdout, "port", r->f->port, true);
			printf("\"bus\": %u, \"address\": %u, ", r->f->bus, r->f->address);
			json_kv(stdout, "serial", r->f->serial, true);
			if (r->rc) {
				json_kv(stdout, "error", tern_errname(r->rc), false);
			} else {
				json_kv(stdout, "board", r->info.board, true);
				json_kv(stdout, "device_id", r->info.device_id, true);
				json_kv(stdout, "version", r->info.version, true);
				printf("\"sequence\": %llu, ",
				       (unsigned long long)r->info.sequence);
				json_kv(stdout, "slot", slot_name(r->info.slot), true);
				json_kv(stdout, "state", tern_frame_state_name(r->info.state),
					false);
			}
			printf("}");
		}
		printf("\n]\n");
	} else {
		printf("%-10s %-16s %-10s %-12s %-4s %s\n", "PORT", "SERIAL", "BOARD", "VERSION",
		       "SLOT", "STATE");
		for (size_t i = 0; i < n; i++) {
			const struct list_row *r = &rows[i];
			if (r->rc)
				printf("%-10s %-16s (%s)\n", r->f->port,
				       r->f->serial[0] ? r->f->serial : "?",
				       r->rc == TERN_E_BUSY ? "busy: another program has it open"
				       : r->rc == TERN_E_NO_ACCESS ? "no access for this user"
								   : tern_strerror(r->rc));
			else
				printf("%-10s %-16s %-10s %-12s %-4s %s\n", r->f->port,
				       r->f->serial, r->info.board, r->info.version,
				       slot_name(r->info.slot),
				       tern_frame_state_name(r->info.state));
		}
	}
	if (n_blocked) {
		fprintf(stderr, "tern usb list: %zu device(s) cannot be opened by this user; %s\n",
			n_blocked, UDEV_HINT);
		status = 1;
	} else {
		status = 0;
	}
	usb_found_free(found, n);
out_exit:
	libusb_exit(ctx);
	return status;
}

/* ---- tern usb status */

int cmd_usb_status(int argc, char **argv)
{
	struct usb_opts o;
	struct usb_match m;
	struct libusb_context *ctx;
	struct usb_found f;
	struct usb_link l;
	struct tern_msg_info info;
	struct tern_msg_state st;
	uint8_t body[8], reply[512];
	size_t rlen = 0;
	int status = parse_opts("status", argc, argv, &o);
	if (status >= 0)
		return status;
	if (usb_match_init(&m, o.vid, o.pid, o.serial))
		return host_usage("usb status", "--vid and --pid take hex USB ids such as 1209");
	if (usb_start("usb status", &ctx))
		return 1;
	status = select_device("usb status", ctx, &m, &f);
	if (status)
		goto out_exit;
	status = open_link("usb status", &l, ctx, &f);
	if (status)
		goto out_free;
	int rc = usb_link_hello(&l, &info);
	if (!rc) {
		size_t blen = tern_msg_empty_encode(body, sizeof(body));
		rc = usb_link_call(&l, TERN_MSG_STATE, body, blen, TERN_MSG_STATE, reply,
				   sizeof(reply), &rlen, NULL);
	}
	if (!rc)
		rc = tern_msg_state_decode(reply, rlen, &st);
	usb_link_close(&l);
	if (rc) {
		char what[64];
		snprintf(what, sizeof(what), "usb status: device %s", f.serial);
		status = host_fail(what, rc);
		goto out_free;
	}
	if (o.json) {
		printf("{");
		json_kv(stdout, "port", f.port, true);
		json_kv(stdout, "serial", info.serial, true);
		json_kv(stdout, "board", info.board, true);
		json_kv(stdout, "device_id", info.device_id, true);
		json_kv(stdout, "version", st.version, true);
		printf("\"sequence\": %llu, ", (unsigned long long)info.sequence);
		json_kv(stdout, "slot", slot_name(st.slot), true);
		json_kv(stdout, "state", tern_frame_state_name(st.state), true);
		json_kv(stdout, "target", st.target, true);
		printf("\"done\": %llu, \"total\": %llu, ", (unsigned long long)st.done,
		       (unsigned long long)st.total);
		json_kv(stdout, "last_status", tern_frame_status_name(st.last_status), false);
		printf("}\n");
	} else {
		printf("device:  %s at USB port %s%s%s\n", info.serial, f.port,
		       info.device_id[0] ? ", id " : "", info.device_id);
		printf("board:   %s\n", info.board);
		printf("running: %s (sequence %llu) in slot %s\n", st.version,
		       (unsigned long long)info.sequence, slot_name(st.slot));
		printf("state:   %s", tern_frame_state_name(st.state));
		if (st.target[0])
			printf(" (%s, %llu of %llu)", st.target, (unsigned long long)st.done,
			       (unsigned long long)st.total);
		if (st.last_status)
			printf(", last error: %s", tern_frame_status_name(st.last_status));
		printf("\n");
	}
	status = 0;
out_free:
	usb_found_free(&f, 1);
out_exit:
	libusb_exit(ctx);
	return status;
}

/* ---- tern usb reboot */

static double elapsed_s(const struct timespec *t0)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

/*
 * Waits for the device with @serial to come back after a reboot: it must be seen gone, or
 * seen again at another address. Sets @f. Returns 0 or TERN_E_TIMEOUT.
 */
static int wait_back(struct libusb_context *ctx, const struct usb_match *m, uint8_t old_addr,
		     unsigned wait_s, struct usb_found *f)
{
	struct timespec t0;
	bool seen_gone = false;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (elapsed_s(&t0) < (double)wait_s) {
		size_t n = 0;
		struct usb_found got[4];
		if (usb_scan(ctx, m, got, 4, &n) == 0) {
			if (n == 0)
				seen_gone = true;
			for (size_t i = 0; i < n; i++) {
				if (seen_gone || got[i].address != old_addr) {
					*f = got[i];
					f->dev = libusb_ref_device(got[i].dev);
					usb_found_free(got, n);
					return 0;
				}
			}
			usb_found_free(got, n);
		}
		struct timespec nap = {0, 50 * 1000 * 1000};
		nanosleep(&nap, NULL);
	}
	return TERN_E_TIMEOUT;
}

int cmd_usb_reboot(int argc, char **argv)
{
	struct usb_opts o;
	struct usb_match m;
	struct libusb_context *ctx;
	struct usb_found f, back;
	struct usb_link l;
	struct tern_msg_info info;
	uint8_t body[8], reply[64];
	int status = parse_opts("reboot", argc, argv, &o);
	if (status >= 0)
		return status;
	if (usb_match_init(&m, o.vid, o.pid, o.serial))
		return host_usage("usb reboot", "--vid and --pid take hex USB ids such as 1209");
	if (usb_start("usb reboot", &ctx))
		return 1;
	status = select_device("usb reboot", ctx, &m, &f);
	if (status)
		goto out_exit;
	status = open_link("usb reboot", &l, ctx, &f);
	if (status)
		goto out_free;
	size_t blen = tern_msg_empty_encode(body, sizeof(body));
	int rc = usb_link_call(&l, TERN_MSG_REBOOT, body, blen, TERN_MSG_ACK, reply, sizeof(reply),
			       NULL, NULL);
	usb_link_close(&l);
	if (rc) {
		status = host_fail("usb reboot", rc);
		goto out_free;
	}
	if (o.no_wait) {
		printf("%s is rebooting\n", f.serial);
		status = 0;
		goto out_free;
	}
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	struct usb_match again = m;
	again.serial = f.serial;
	rc = wait_back(ctx, &again, f.address, o.wait_s, &back);
	if (rc) {
		fprintf(stderr,
			"tern usb reboot: %s did not come back within %u s; check the "
			"board, then 'tern usb list'\n",
			f.serial, o.wait_s);
		status = 1;
		goto out_free;
	}
	double secs = elapsed_s(&t0);
	rc = usb_link_open(&l, ctx, &back);
	if (!rc) {
		rc = usb_link_hello(&l, &info);
		usb_link_close(&l);
	}
	if (rc) {
		fprintf(stderr,
			"tern usb reboot: %s came back at USB port %s but does not answer: "
			"%s\n",
			f.serial, back.port, tern_strerror(rc));
		status = 1;
	} else {
		printf("%s is back after %.1f s at USB port %s (address %u): %s in slot %s, %s\n",
		       info.serial, secs, back.port, back.address, info.version,
		       slot_name(info.slot), tern_frame_state_name(info.state));
		status = 0;
	}
	usb_found_free(&back, 1);
out_free:
	usb_found_free(&f, 1);
out_exit:
	libusb_exit(ctx);
	return status;
}
