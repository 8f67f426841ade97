/* tern usb list|status|reboot: tern devices on USB, through the transfer engine in usb.c. */
#include "db.h"
#include "host.h"
#include "host_util.h"
#include "release_file.h"
#include "usb.h"

#include "tern/tern_err.h"
#include "tern/tern_msg.h"

#include <errno.h>
#include <libusb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_FOUND	64
#define USB_WAIT_BACK_S 60 /* default --wait: a board's reboot into its trial */
#define STR_(x)		#x
#define STR(x)		STR_(x)
#define UDEV_HINT                                                                                  \
	"install the udev rule: sudo cp scripts/udev/70-tern.rules /etc/udev/rules.d/ && sudo "    \
	"udevadm control --reload && sudo udevadm trigger, then plug the device in again"

/* The options every `tern usb` command takes. */
struct usb_opts {
	const char *serial;
	const char *vid, *pid;
	bool json;
	bool no_wait;
	bool no_reboot;
	bool wait_confirm;
	bool revert;
	unsigned wait_s;
	const char *release; /* flash: the release file */
};

/* What `tern usb CMD --help` says: the usage line's tail, what it does, its own options. */
struct usb_help {
	const char *cmd;
	const char *args; /* after the command name */
	const char *what;
	const char *opts; /* its own options, before the common ones */
};

static const struct usb_help usb_helps[] = {
    {"list", "[--vid HEX] [--pid HEX] [--json]",
     "  every tern device on USB: port, serial, board, version, slot, state\n",
     "  --json          machine-readable output (one object per device)\n"},
    {"status", "[--serial S] [--vid HEX] [--pid HEX] [--json]",
     "  one device's state: what it runs, in which slot, and an update in progress\n",
     "  --json          machine-readable output\n"},
    {"flash",
     "RELEASE.tern [--serial S] [--vid HEX] [--pid HEX] [--revert] [--no-reboot]\n"
     "                      [--wait-confirm] [--wait SECONDS]",
     "  sends the release to the device, which verifies and installs it in its inactive\n"
     "  slot; then activates it, reboots the device into a trial and reports whether it\n"
     "  confirmed or rolled back. Interrupted (unplugged, Ctrl-C), the same command\n"
     "  resumes where it stopped\n",
     "  --revert        go back to RELEASE although it is older than what the device\n"
     "                  confirmed (it must still be signed by a key the device trusts and\n"
     "                  not below its security floor); from its inactive slot when it is\n"
     "                  still there, without sending it again\n"
     "  --no-reboot     stage and activate only: the trial starts at the next boot\n"
     "  --wait-confirm  after the reboot, wait until the trial is confirmed or rolled back\n"
     "  --wait S        how long to wait for the device after its reboot (default " STR(
	 USB_WAIT_BACK_S) " s)\n"},
    {"reboot", "[--serial S] [--vid HEX] [--pid HEX] [--no-wait] [--wait SECONDS]",
     "  reboots the device and waits until it is back on the bus (found again by serial)\n",
     "  --no-wait       do not wait for the device to come back\n"
     "  --wait S        how long to wait for it (default " STR(USB_WAIT_BACK_S) " s)\n"},
    {"confirm", "[--serial S] [--vid HEX] [--pid HEX]",
     "  confirms the release the device runs on trial, so it stays on it\n", ""},
};

static const char serial_help[] =
    "  --serial S      the device with this USB serial number (see 'tern usb list')\n";

static void print_help(const char *cmd)
{
	for (size_t i = 0; i < sizeof(usb_helps) / sizeof(usb_helps[0]); i++) {
		const struct usb_help *h = &usb_helps[i];
		if (strcmp(h->cmd, cmd))
			continue;
		printf("usage: tern usb %s %s\n%s%s", h->cmd, h->args, h->what, h->opts);
		if (strcmp(cmd, "list"))
			fputs(serial_help, stdout);
		printf("  --vid, --pid    USB ids of tern devices (default %04x:%04x, or "
		       "TERN_USB_VID and\n"
		       "                  TERN_USB_PID)\n",
		       USB_DEFAULT_VID, USB_DEFAULT_PID);
	}
}

/* Parses the options; returns -1 to go on, else the exit status (help or usage). */
static int parse_opts(const char *cmd, int argc, char **argv, struct usb_opts *o)
{
	char what[32];
	snprintf(what, sizeof(what), "usb %s", cmd);
	memset(o, 0, sizeof(*o));
	o->wait_s = USB_WAIT_BACK_S;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			print_help(cmd);
			return 0;
		} else if (!strcmp(a, "--json") &&
			   (!strcmp(cmd, "list") || !strcmp(cmd, "status"))) {
			o->json = true;
		} else if (!strcmp(a, "--no-wait") && !strcmp(cmd, "reboot")) {
			o->no_wait = true;
		} else if (!strcmp(a, "--no-reboot") && !strcmp(cmd, "flash")) {
			o->no_reboot = true;
		} else if (!strcmp(a, "--revert") && !strcmp(cmd, "flash")) {
			o->revert = true;
		} else if (!strcmp(a, "--wait-confirm") && !strcmp(cmd, "flash")) {
			o->wait_confirm = true;
		} else if (a[0] != '-' && !strcmp(cmd, "flash") && !o->release) {
			o->release = a;
		} else if (!strcmp(a, "--serial") && v && strcmp(cmd, "list")) {
			o->serial = v;
			i++;
		} else if (!strcmp(a, "--vid") && v) {
			o->vid = v;
			i++;
		} else if (!strcmp(a, "--pid") && v) {
			o->pid = v;
			i++;
		} else if (!strcmp(a, "--wait") && v &&
			   (!strcmp(cmd, "reboot") || !strcmp(cmd, "flash"))) {
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

/* The identity a device reports: its id (null when not provisioned) and provisioning
 * generation. */
static void json_identity(FILE *out, const struct tern_msg_info *info)
{
	if (info->device_id[0])
		json_kv(out, "device_id", info->device_id, true);
	else
		fputs("\"device_id\": null, ", out);
	fprintf(out, "\"provision_generation\": %llu, ", (unsigned long long)info->provision_gen);
}

/* ---- tern usb list */

/* Why a listed device could not be asked, for people. */
static const char *row_problem(int rc)
{
	return rc == TERN_E_BUSY	? "busy: another program has it open"
	       : rc == TERN_E_NO_ACCESS ? "no access for this user; see the udev rule"
					: tern_strerror(rc);
}

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
				json_kv(stdout, "error", tern_errname(r->rc), true);
				json_kv(stdout, "message", row_problem(r->rc), false);
			} else {
				json_kv(stdout, "board", r->info.board, true);
				json_identity(stdout, &r->info);
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
				       r->f->serial[0] ? r->f->serial : "?", row_problem(r->rc));
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
		printf("\"bus\": %u, \"address\": %u, ", f.bus, f.address);
		json_kv(stdout, "serial", info.serial, true);
		json_kv(stdout, "board", info.board, true);
		json_identity(stdout, &info);
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
		if (st.target[0] && st.total)
			printf(" (%s, %llu of %llu chunks)", st.target, (unsigned long long)st.done,
			       (unsigned long long)st.total);
		else if (st.target[0])
			printf(" (%s)", st.target);
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

/* Milliseconds left of @wait_s seconds counted from @t0 (0 when they are over). */
static uint64_t ms_left(const struct timespec *t0, unsigned wait_s)
{
	double left = (double)wait_s - elapsed_s(t0);
	return left > 0 ? (uint64_t)(left * 1000.0) : 0;
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
	struct libusb_context *ctx_back;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	struct usb_match again = m;
	again.serial = f.serial;
	rc = usb_wait_back(&again, f.bus, f.address, (uint64_t)o.wait_s * 1000u, &ctx_back, &back);
	if (rc == TERN_E_TIMEOUT) {
		fprintf(stderr,
			"tern usb reboot: device %s did not come back within %u s; check its "
			"console, then 'tern usb list'\n",
			f.serial, o.wait_s);
		status = 1;
		goto out_free;
	}
	if (rc) {
		status = host_fail("usb reboot", rc);
		goto out_free;
	}
	double secs = elapsed_s(&t0);
	rc = usb_link_open(&l, ctx_back, &back);
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
	libusb_exit(ctx_back);
out_free:
	usb_found_free(&f, 1);
out_exit:
	libusb_exit(ctx);
	return status;
}

/* ---- tern usb flash */

#define FLASH_PIECE (16u * 1024u) /* payload bytes per DATA frame */
#define PIECE_RING  (2 * USB_WINDOW)

struct flash_ctx;

/* One DATA request in flight: how many payload bytes it carries. */
struct piece {
	struct flash_ctx *fc;
	size_t len;
};

struct flash_ctx {
	uint64_t total; /* payload bytes to send in this run */
	uint64_t sent;
	uint64_t acked;
	int rc;		 /* first refusal or failure */
	uint32_t status; /* its wire status, when the device refused */
	struct piece ring[PIECE_RING];
	size_t n_sent;
	bool tty;
	struct timespec t0;
	double last_print;
	const char *serial;
};

/* Set by SIGINT/SIGTERM while a release's bytes are sent: stop sending, say how to go on. */
static volatile sig_atomic_t flash_interrupted;

static void on_flash_signal(int sig)
{
	(void)sig;
	flash_interrupted = 1;
}

/* While the bytes go out, Ctrl-C stops at a frame boundary (once; a second one kills). */
static void flash_signals(bool catch)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = catch ? on_flash_signal : SIG_DFL;
	if (catch)
		sa.sa_flags = (int)SA_RESETHAND;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

static void on_data_reply(void *ud, int rc, const struct tern_frame *f)
{
	struct piece *p = ud;
	struct flash_ctx *fc = p->fc;
	if (!rc && f->type == TERN_MSG_ERROR) {
		struct tern_msg_error e;
		rc = tern_msg_error_decode(f->body, f->body_len, &e);
		if (!rc) {
			fc->status = e.status;
			rc = tern_frame_status_to_err(e.status);
		}
	} else if (!rc && f->type != TERN_MSG_ACK) {
		rc = TERN_E_MALFORMED;
	}
	if (rc) {
		if (!fc->rc)
			fc->rc = rc;
		return;
	}
	fc->acked += p->len;
}

static void progress(struct flash_ctx *fc, bool last)
{
	double t = elapsed_s(&fc->t0);
	if (!fc->tty || (!last && t - fc->last_print < 0.1))
		return;
	fc->last_print = t;
	char a[32], b[32];
	double rate = t > 0 ? (double)fc->acked / t : 0;
	double left = rate > 0 ? (double)(fc->total - fc->acked) / rate : 0;
	fprintf(stderr, "\r%s: %s of %s (%3.0f%%), %.1f MiB/s, %d:%02d left   ", fc->serial,
		host_human_size(fc->acked, a, sizeof(a)), host_human_size(fc->total, b, sizeof(b)),
		fc->total ? 100.0 * (double)fc->acked / (double)fc->total : 100.0,
		rate / (1024.0 * 1024.0), (int)left / 60, (int)left % 60);
	if (last)
		fputc('\n', stderr);
}

/* Sends bytes [@off, @end) of one component's index or payload, read from the file. */
static int send_part(struct usb_link *l, struct flash_ctx *fc, int fd, uint32_t comp, uint32_t kind,
		     uint64_t file_off, uint64_t off, uint64_t end, size_t piece)
{
	static uint8_t buf[TERN_FRAME_DATA_MAX];
	static uint8_t body[TERN_FRAME_BODY_MAX];
	while (off < end && !fc->rc) {
		if (flash_interrupted)
			return TERN_E_CANCELED;
		size_t n = end - off < piece ? (size_t)(end - off) : piece;
		int rc = tern_pread_full(fd, buf, n, file_off + off);
		if (rc)
			return rc;
		struct tern_msg_data d = {comp, kind, off, buf, n};
		size_t blen = tern_msg_data_encode(&d, body, sizeof(body));
		if (!blen)
			return TERN_E_INVAL;
		struct piece *p = &fc->ring[fc->n_sent++ % PIECE_RING];
		p->fc = fc;
		p->len = n;
		rc = usb_link_send(l, TERN_MSG_DATA, body, blen, on_data_reply, p);
		if (rc)
			return rc;
		fc->sent += n;
		off += n;
		progress(fc, false);
	}
	return fc->rc;
}

/* Where component @c starts to be sent given the device's resume point @next: offsets
 * into its index (@idx_from; its length when the index is whole) and its payload. */
static void resume_point(const struct tern_msg_ack *next, size_t c, const struct comp_layout *cl,
			 uint64_t *idx_from, uint64_t *pay_from)
{
	*idx_from = 0;
	*pay_from = 0;
	if (c == next->comp && next->kind == TERN_DATA_INDEX)
		*idx_from = next->offset;
	if (c == next->comp && next->kind == TERN_DATA_PAYLOAD) {
		*idx_from = cl->index_len;
		*pay_from = next->offset;
	}
}

/* Payload bytes from the device's resume point @next to the end of the release. */
static uint64_t bytes_from(const struct release_file *rf, const struct tern_msg_ack *next)
{
	uint64_t total = 0;
	for (size_t c = next->comp; c < rf->head.manifest.n_components; c++) {
		const struct comp_layout *cl = &rf->layout[c];
		uint64_t idx_from, pay_from;
		resume_point(next, c, cl, &idx_from, &pay_from);
		total += (cl->index_len - (idx_from < cl->index_len ? idx_from : cl->index_len)) +
			 (cl->bytes_len - (pay_from < cl->bytes_len ? pay_from : cl->bytes_len));
	}
	return total;
}

/* Empty-bodied request (DONE, ACTIVATE, REBOOT, CONFIRM) answered by ACK. */
static int simple_call(struct usb_link *l, uint8_t type, uint32_t *status)
{
	uint8_t body[4], reply[64];
	size_t blen = tern_msg_empty_encode(body, sizeof(body));
	return usb_link_call(l, type, body, blen, TERN_MSG_ACK, reply, sizeof(reply), NULL, status);
}

static int get_state(struct usb_link *l, struct tern_msg_state *st)
{
	uint8_t body[4], reply[512];
	size_t rlen = 0;
	size_t blen = tern_msg_empty_encode(body, sizeof(body));
	int rc = usb_link_call(l, TERN_MSG_STATE, body, blen, TERN_MSG_STATE, reply, sizeof(reply),
			       &rlen, NULL);
	return rc ? rc : tern_msg_state_decode(reply, rlen, st);
}

static void boards_list(const struct tern_manifest *m, char *out, size_t size)
{
	size_t k = 0;
	out[0] = '\0';
	for (size_t i = 0; i < m->n_boards && k < size; i++) {
		int w = snprintf(out + k, size - k, "%s%s", i ? ", " : "", m->boards[i]);
		if (w < 0)
			break;
		k += (size_t)w;
	}
}

/* The device's state, through a link opened for the question. */
static int read_state(struct libusb_context *ctx, const struct usb_found *f,
		      struct tern_msg_state *st)
{
	struct usb_link l;
	int rc = usb_link_open(&l, ctx, f);
	if (!rc) {
		rc = get_state(&l, st);
		usb_link_close(&l);
	}
	return rc;
}

/*
 * After the reboot: finds the device again by serial (hotplug events or not) and reports
 * how its trial ended. With --wait-confirm it asks again while the trial runs; a device
 * that leaves the bus again meanwhile (a trial that reboots) is waited for again, all
 * within --wait. Returns the exit status.
 */
static int flash_outcome(const struct usb_match *m, const struct usb_found *f,
			 const struct usb_opts *o, const char *version)
{
	struct tern_msg_state st;
	struct timespec t0;
	struct usb_match again = *m;
	char port[sizeof(f->port)] = "";
	uint8_t bus = f->bus, addr = f->address;
	int rc, read_rc = 0;
	again.serial = f->serial;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		struct libusb_context *ctx;
		struct usb_found back;
		rc = usb_wait_back(&again, bus, addr, ms_left(&t0, o->wait_s), &ctx, &back);
		if (rc)
			break;
		bus = back.bus;
		addr = back.address;
		memcpy(port, back.port, sizeof(port));
		for (;;) {
			read_rc = read_state(ctx, &back, &st);
			if (read_rc || !o->wait_confirm || st.state != TERN_DS_TRIAL ||
			    ms_left(&t0, o->wait_s) == 0)
				break;
			struct timespec nap = {0, 200 * 1000 * 1000};
			nanosleep(&nap, NULL);
		}
		usb_found_free(&back, 1);
		libusb_exit(ctx);
		if (read_rc != TERN_E_USB && read_rc != TERN_E_TIMEOUT)
			break;
		/* Gone again before it answered: wait for it once more. */
	}
	if (rc == TERN_E_TIMEOUT && !port[0]) {
		fprintf(stderr,
			"tern usb flash: device %s did not come back within %u s after its "
			"reboot; check its console, then 'tern usb status --serial %s'\n",
			f->serial, o->wait_s, f->serial);
		return 1;
	}
	if (rc && !port[0])
		return host_fail("usb flash", rc);
	if (rc == TERN_E_TIMEOUT && read_rc == TERN_E_USB) {
		fprintf(
		    stderr,
		    "tern usb flash: device %s came back at USB port %s, left the bus again and "
		    "did not come back within %u s; check its console\n",
		    f->serial, port, o->wait_s);
		return 1;
	}
	if (!rc || rc == TERN_E_TIMEOUT)
		rc = read_rc;
	if (rc) {
		fprintf(stderr,
			"tern usb flash: %s came back at USB port %s but does not answer: %s\n",
			f->serial, port[0] ? port : "?", tern_strerror(rc));
		return 1;
	}
	int status = 1;
	if (st.state == TERN_DS_CONFIRMED && !strcmp(st.version, version)) {
		printf("%s runs %s in slot %s: confirmed\n", f->serial, st.version,
		       slot_name(st.slot));
		status = 0;
	} else if (st.state == TERN_DS_TRIAL) {
		printf(
		    "%s runs %s in slot %s on trial (not confirmed yet; see 'tern usb status')\n",
		    f->serial, st.version, slot_name(st.slot));
		status = 0;
	} else if (st.state == TERN_DS_ROLLED_BACK) {
		fprintf(stderr, "tern usb flash: %s rolled back to %s in slot %s: %s\n", f->serial,
			st.version, slot_name(st.slot),
			tern_strerror(tern_frame_status_to_err(st.last_status)));
	} else {
		fprintf(stderr, "tern usb flash: %s runs %s in slot %s, state %s; expected %s\n",
			f->serial, st.version, slot_name(st.slot), tern_frame_state_name(st.state),
			version);
	}
	return status;
}

/*
 * Sends the release's bytes from where the device wants them (@next, the OFFER's ACK),
 * then DONE, and prints a summary. Returns 0, or the exit status after one line on stderr
 * (130 when interrupted by SIGINT or SIGTERM).
 */
static int send_release(struct usb_link *l, const struct release_file *rf,
			const struct tern_msg_info *info, const struct tern_msg_ack *next,
			const char *serial)
{
	uint32_t wstatus = TERN_ST_OK;
	int rc = 0;
	struct flash_ctx fc;
	memset(&fc, 0, sizeof(fc));
	fc.tty = isatty(STDERR_FILENO);
	fc.serial = serial;
	clock_gettime(CLOCK_MONOTONIC, &fc.t0);
	uint64_t all = 0;
	for (size_t c = 0; c < rf->head.manifest.n_components; c++)
		all += rf->layout[c].index_len + rf->layout[c].bytes_len;
	if (next->has_next) {
		fc.total = bytes_from(rf, next);
		char a[32];
		if (fc.total < all)
			printf("%s: resuming: %s of the release are on the device already\n",
			       serial, host_human_size(all - fc.total, a, sizeof(a)));
		size_t piece = info->max_data < FLASH_PIECE ? info->max_data : FLASH_PIECE;
		for (size_t c = next->comp; c < rf->head.manifest.n_components && !rc; c++) {
			const struct comp_layout *cl = &rf->layout[c];
			uint64_t idx_from, pay_from;
			resume_point(next, c, cl, &idx_from, &pay_from);
			rc = send_part(l, &fc, rf->fd, (uint32_t)c, TERN_DATA_INDEX, cl->index_off,
				       idx_from, cl->index_len, piece);
			if (!rc)
				rc = send_part(l, &fc, rf->fd, (uint32_t)c, TERN_DATA_PAYLOAD,
					       cl->bytes_off, pay_from, cl->bytes_len, piece);
		}
		/* Interrupted too: what is in flight is answered, so the count below is true. */
		if (!rc || rc == TERN_E_CANCELED) {
			int drc = usb_link_drain(l);
			rc = rc ? rc : drc ? drc : fc.rc;
		}
		progress(&fc, true);
	}
	if (!rc && flash_interrupted)
		rc = TERN_E_CANCELED; /* before a byte, or after the last: DONE not sent */
	if (rc == TERN_E_CANCELED && flash_interrupted) {
		char a[32], b[32];
		fprintf(stderr,
			"tern usb flash: interrupted after %s of %s were on %s; run the same "
			"command again: it resumes where it stopped\n",
			host_human_size(fc.acked, a, sizeof(a)),
			host_human_size(fc.total, b, sizeof(b)), serial);
		return 130;
	}
	if (!rc)
		rc = simple_call(l, TERN_MSG_DONE, &wstatus);
	if (rc == TERN_E_USB || rc == TERN_E_TIMEOUT) {
		char a[32], b[32];
		fprintf(stderr,
			"tern usb flash: %s was unplugged or stopped answering after %s of "
			"%s; plug it back in and run the same command again: it resumes "
			"where it stopped\n",
			serial, host_human_size(fc.acked, a, sizeof(a)),
			host_human_size(fc.total, b, sizeof(b)));
		return 1;
	}
	if (rc) {
		fprintf(stderr, "tern usb flash: %s refused the release's bytes: %s\n", serial,
			tern_strerror(rc));
		return 1;
	}
	double secs = elapsed_s(&fc.t0);
	if (fc.total) {
		char a[32];
		printf("%s: sent %s in %.2f s (%.1f MiB/s); %.4f bytes on the wire per payload "
		       "byte\n",
		       serial, host_human_size(fc.total, a, sizeof(a)), secs,
		       secs > 0 ? (double)fc.total / secs / (1024.0 * 1024.0) : 0.0,
		       (double)l->bytes_out / (double)fc.total);
	}
	return 0;
}

/* Why a device refused an offer as busy, and what to do, in one line. */
static void busy_reason(const char *serial, const char *version, const char *file,
			const struct tern_msg_state *st)
{
	fprintf(stderr, "tern usb flash: %s refused %s %s: another update is in progress: ", serial,
		version, file);
	switch (st->state) {
	case TERN_DS_DOWNLOADING:
		/* Over the air (a Linux board serves MQTT too), or a flash interrupted. */
		fprintf(
		    stderr,
		    "it is installing %s (%llu of %llu chunks so far); let it finish, or finish "
		    "it with 'tern usb flash' and that release (it resumes), then flash this "
		    "one\n",
		    st->target, (unsigned long long)st->done, (unsigned long long)st->total);
		break;
	case TERN_DS_STAGED:
		fprintf(
		    stderr,
		    "it has %s staged for its next boot; reboot it into that trial first ('tern "
		    "usb reboot --serial %s'), then flash again\n",
		    st->target[0] ? st->target : "a release", serial);
		break;
	case TERN_DS_TRIAL:
		fprintf(stderr,
			"it runs %s on trial; let its health check finish or confirm it ('tern usb "
			"confirm --serial %s'), then flash again\n",
			st->version, serial);
		break;
	case TERN_DS_VERIFYING:
		fprintf(stderr, "it is verifying %s; wait a moment and run the command again\n",
			st->target);
		break;
	default:
		fprintf(stderr, "it is %s; wait for it and run the command again\n",
			tern_frame_state_name(st->state));
	}
}

int cmd_usb_flash(int argc, char **argv)
{
	struct usb_opts o;
	struct usb_match m;
	struct libusb_context *ctx;
	struct usb_found f;
	struct usb_link l;
	struct tern_msg_info info;
	static struct release_file rf;
	static uint8_t body[TERN_FRAME_BODY_MAX];
	uint8_t reply[256];
	size_t rlen = 0;
	uint32_t wstatus = TERN_ST_OK;
	char what[96];
	int status = parse_opts("flash", argc, argv, &o);
	if (status >= 0)
		return status;
	if (!o.release)
		return host_usage("usb flash", "which release? tern usb flash RELEASE.tern");
	if (usb_match_init(&m, o.vid, o.pid, o.serial))
		return host_usage("usb flash", "--vid and --pid take hex USB ids such as 1209");
	/* The release is checked before any device is touched (the device verifies it). */
	int rc = release_file_open(&rf, o.release, NULL);
	if (!rc) {
		rc = release_file_layout(&rf);
		if (rc)
			release_file_close(&rf);
	}
	if (rc) {
		snprintf(what, sizeof(what), "usb flash: %s", o.release);
		return host_fail(what, rc);
	}
	const struct tern_manifest *man = &rf.head.manifest;
	if (usb_start("usb flash", &ctx)) {
		release_file_close(&rf);
		return 1;
	}
	status = select_device("usb flash", ctx, &m, &f);
	if (status)
		goto out_exit;
	status = open_link("usb flash", &l, ctx, &f);
	if (status)
		goto out_free;
	status = 1;
	snprintf(what, sizeof(what), "usb flash: %s", f.serial);
	rc = usb_link_hello(&l, &info);
	if (rc) {
		host_fail(what, rc);
		goto out_close;
	}
	if (!tern_manifest_has_board(man, info.board)) {
		char boards[160];
		boards_list(man, boards, sizeof(boards));
		fprintf(stderr,
			"tern usb flash: %s is for board %s, but %s is a '%s' board; "
			"nothing was sent\n",
			o.release, boards, f.serial, info.board);
		goto out_close;
	}
	/* From the OFFER on, Ctrl-C stops the transfer cleanly (the device resumes later). */
	flash_interrupted = 0;
	flash_signals(true);
	/* OFFER: the device verifies the signed manifest and says where to start. */
	struct tern_msg_ack next;
	size_t blen = tern_msg_offer_encode(rf.buf, rf.head.head_len, o.revert, body, sizeof(body));
	rc = blen ? usb_link_call(&l, TERN_MSG_OFFER, body, blen, TERN_MSG_ACK, reply,
				  sizeof(reply), &rlen, &wstatus)
		  : TERN_E_TOO_LARGE;
	if (!rc)
		rc = tern_msg_ack_decode(reply, rlen, &next);
	/* Busy: with this very release staged and activated (flash --no-reboot before) it
	 * only needs its reboot; anything else is said with what to do about it. */
	bool staged = false;
	if (rc == TERN_E_BUSY) {
		struct tern_msg_state st;
		if (get_state(&l, &st) == 0) {
			staged = st.state == TERN_DS_STAGED && !strcmp(st.target, man->version);
			if (!staged) {
				busy_reason(f.serial, man->version, o.release, &st);
				goto out_close;
			}
			rc = 0;
		}
	}
	if (rc) {
		fprintf(stderr, "tern usb flash: %s refused %s %s: %s%s\n", f.serial, man->version,
			o.release, tern_strerror(rc),
			rc == TERN_E_OLD_SEQUENCE && !o.revert
			    ? "; to go back to it, flash it with --revert"
			    : "");
		goto out_close;
	}
	if (!staged) {
		status = send_release(&l, &rf, &info, &next, f.serial);
		if (status)
			goto out_close;
		status = 1;
		rc = simple_call(&l, TERN_MSG_ACTIVATE, &wstatus);
		if (rc) {
			host_fail(what, rc);
			goto out_close;
		}
	}
	flash_signals(false); /* the rest is quick or a wait: Ctrl-C ends it */
	if (o.no_reboot) {
		printf("%s: %s staged and activated%s; it starts on trial at the next boot\n",
		       f.serial, man->version, staged ? " already" : "");
		status = 0;
		goto out_close;
	}
	rc = simple_call(&l, TERN_MSG_REBOOT, &wstatus);
	usb_link_close(&l);
	if (rc) {
		host_fail(what, rc);
		goto out_free;
	}
	printf("%s: %s staged%s; rebooting into its trial\n", f.serial, man->version,
	       staged ? " already" : "");
	fflush(stdout);
	status = flash_outcome(&m, &f, &o, man->version);
	goto out_free;
out_close:
	flash_signals(false);
	usb_link_close(&l);
out_free:
	usb_found_free(&f, 1);
out_exit:
	libusb_exit(ctx);
	release_file_close(&rf);
	return status;
}

/* ---- tern usb confirm */

int cmd_usb_confirm(int argc, char **argv)
{
	struct usb_opts o;
	struct usb_match m;
	struct libusb_context *ctx;
	struct usb_found f;
	struct usb_link l;
	struct tern_msg_state st;
	int status = parse_opts("confirm", argc, argv, &o);
	if (status >= 0)
		return status;
	if (usb_match_init(&m, o.vid, o.pid, o.serial))
		return host_usage("usb confirm", "--vid and --pid take hex USB ids such as 1209");
	if (usb_start("usb confirm", &ctx))
		return 1;
	status = select_device("usb confirm", ctx, &m, &f);
	if (status)
		goto out_exit;
	status = open_link("usb confirm", &l, ctx, &f);
	if (status)
		goto out_free;
	int rc = simple_call(&l, TERN_MSG_CONFIRM, NULL);
	if (!rc)
		rc = get_state(&l, &st);
	usb_link_close(&l);
	if (rc) {
		fprintf(stderr, "tern usb confirm: %s: %s%s\n", f.serial, tern_strerror(rc),
			rc == TERN_E_STATE ? " (only a release on trial can be confirmed)" : "");
		status = 1;
		goto out_free;
	}
	printf("%s runs %s in slot %s: %s\n", f.serial, st.version, slot_name(st.slot),
	       tern_frame_state_name(st.state));
	status = 0;
out_free:
	usb_found_free(&f, 1);
out_exit:
	libusb_exit(ctx);
	return status;
}

/* ---- tern usb provision */

static void provision_help(void)
{
	printf(
	    "usage: tern usb provision --id ID --keyring signing.pub [--keyring more.pub] "
	    "[--config device.conf]\n"
	    "                          [--key signing.key] [--serial S] [--vid HEX] [--pid HEX]\n"
	    "                          [--db FILE] [--generation N]\n"
	    "  gives a blank device its identity, the keys it trusts for releases and its "
	    "configuration\n"
	    "  --id ID        the device id ([A-Za-z0-9._-], up to 64 characters)\n"
	    "  --keyring F    a public key the device will trust (up to %d)\n"
	    "  --config F     configuration for the device (up to %d bytes)\n"
	    "  --key F        re-provision a device that is provisioned already: sign the "
	    "request\n"
	    "                 with a key it trusts now\n"
	    "  --db FILE      the host database that records the device for 'tern devices'\n"
	    "                 ($TERN_DB, default ./tern.db)\n"
	    "  --generation N the provisioning generation; default: one above the highest\n"
	    "                 the database gave this device's ids and the device's own. A "
	    "device\n"
	    "                 refuses a signed request that is not newer than the last it "
	    "took\n",
	    TERN_KEYRING_MAX, TERN_FRAME_CONFIG_MAX);
}

/*
 * Records a device just provisioned in the host's inventory @db (file @db_path): its row,
 * so `tern devices` lists it before it first connects, and the generation it took.
 * Returns the exit status: 0, or 1 with one line.
 */
static int record_provisioned(struct db *db, const char *db_path,
			      const struct tern_msg_provision *p, const struct usb_found *f,
			      const struct tern_msg_info *info)
{
	struct db_provisioned row = {p->device_id,
				     f->serial,
				     info->board,
				     info->version,
				     tern_frame_state_name(info->state),
				     info->slot,
				     p->generation,
				     info->device_id};
	int rc = db_begin(db);
	if (rc == 0 && (rc = db_record_provisioned(db, &row, (uint64_t)time(NULL))) == 0)
		rc = db_commit(db);
	if (rc)
		db_rollback(db);
	if (rc == 0) {
		printf("%s recorded in %s: 'tern devices' lists it\n", p->device_id, db_path);
		if (info->device_id[0] && strcmp(info->device_id, p->device_id))
			printf("%s (the device's previous id) removed from 'tern devices'; its "
			       "history stays, with a 'replaced' event\n",
			       info->device_id);
		return 0;
	}
	fprintf(stderr,
		"tern usb provision: %s is provisioned (generation %llu), but recording it in %s "
		"failed; once it can be written, run the same command again with --key and "
		"--generation %llu\n",
		f->serial, (unsigned long long)p->generation, db_path,
		(unsigned long long)p->generation + 1);
	return 1;
}

/*
 * The provisioning generation for this request: --generation, else one above the highest
 * the inventory @db gave the device's current id or the new one and the device's own.
 * Refuses (one line, 1) when the device has taken a generation the inventory never gave its
 * id: it was provisioned elsewhere, and numbers from here could collide with that. Returns
 * 0 with @gen set, or the exit status.
 */
static int provision_generation(struct db *db, const char *db_path, const struct usb_found *f,
				const struct tern_msg_info *info, const char *new_id,
				uint64_t forced, uint64_t *gen)
{
	uint64_t cur = 0, next = 0;
	bool cur_known = false, next_known = false;
	int rc = 0;
	if (info->device_id[0])
		rc = db_provision_gen_get(db, info->device_id, &cur, &cur_known);
	if (!rc)
		rc = db_provision_gen_get(db, new_id, &next, &next_known);
	if (rc) {
		fprintf(
		    stderr,
		    "tern usb provision: cannot read the inventory %s; nothing was sent to %s\n",
		    db_path, f->serial);
		return 1;
	}
	if (forced) {
		*gen = forced;
		return 0;
	}
	if (info->device_id[0] && info->provision_gen > cur) {
		fprintf(stderr,
			"tern usb provision: %s (%s) has taken provisioning generation %llu, but ",
			f->serial, info->device_id, (unsigned long long)info->provision_gen);
		if (cur_known)
			fprintf(stderr, "%s gave %s generation %llu at most", db_path,
				info->device_id, (unsigned long long)cur);
		else
			fprintf(stderr, "%s never provisioned %s", db_path, info->device_id);
		fprintf(stderr,
			": it was provisioned elsewhere; check which inventory is right, then give "
			"--generation N (above %llu) to go on; nothing was sent\n",
			(unsigned long long)info->provision_gen);
		return 1;
	}
	uint64_t top = cur > next ? cur : next;
	if (info->provision_gen > top)
		top = info->provision_gen;
	*gen = top + 1;
	return 0;
}

int cmd_usb_provision(int argc, char **argv)
{
	const char *id = NULL, *config_path = NULL, *key_path = NULL, *serial = NULL;
	const char *vid = NULL, *pid = NULL, *db_path = getenv("TERN_DB");
	unsigned long long generation = 0; /* 0: from the inventory and the device */
	static struct tern_keyring kr;
	static uint8_t body[TERN_FRAME_BODY_MAX], cose[TERN_FRAME_BODY_MAX];
	static uint8_t req[TERN_FRAME_BODY_MAX];
	struct tern_msg_provision p;
	struct tern_signer sg;
	bool have_signer = false;
	uint8_t *config = NULL;
	size_t config_len = 0;
	int rc, status = 1;
	memset(&kr, 0, sizeof(kr));
	memset(&p, 0, sizeof(p));
	for (int i = 1; i < argc; i += 2) { /* every option takes a value */
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			provision_help();
			return 0;
		}
		if (!v)
			return host_usage("usb provision", "unknown or incomplete option");
		if (!strcmp(a, "--id"))
			id = v;
		else if (!strcmp(a, "--keyring")) {
			rc = host_keyring_add_file(&kr, v);
			if (rc) {
				char what[64];
				snprintf(what, sizeof(what), "usb provision: %s", v);
				return host_fail(what, rc);
			}
		} else if (!strcmp(a, "--config"))
			config_path = v;
		else if (!strcmp(a, "--key"))
			key_path = v;
		else if (!strcmp(a, "--serial"))
			serial = v;
		else if (!strcmp(a, "--vid"))
			vid = v;
		else if (!strcmp(a, "--pid"))
			pid = v;
		else if (!strcmp(a, "--db"))
			db_path = v;
		else if (!strcmp(a, "--generation")) {
			char *end;
			errno = 0;
			generation = strtoull(v, &end, 10);
			if (errno || end == v || *end || v[0] == '-' || generation == 0)
				return host_usage("usb provision",
						  "--generation takes a number from 1");
		} else
			return host_usage("usb provision", "unknown or incomplete option");
	}
	if (!id || !kr.n_keys)
		return host_usage("usb provision", "--id and at least one --keyring are needed");
	if (strlen(id) >= sizeof(p.device_id))
		return host_usage("usb provision", "--id is at most 64 characters");
	memcpy(p.device_id, id, strlen(id) + 1);
	for (size_t i = 0; i < kr.n_keys; i++)
		p.keys[i] = kr.keys[i].point;
	p.n_keys = kr.n_keys;
	size_t blen = tern_msg_provision_encode(&p, body, sizeof(body));
	if (!blen)
		return host_usage("usb provision", "--id takes letters, digits, '.', '_' and '-'");
	if (config_path) {
		rc = host_read_file(config_path, TERN_FRAME_CONFIG_MAX, &config, &config_len);
		if (rc) {
			char what[96];
			snprintf(what, sizeof(what), "usb provision: %s", config_path);
			return host_fail(what, rc);
		}
		p.config = config;
		p.config_len = config_len;
		blen = tern_msg_provision_encode(&p, body, sizeof(body));
	}
	if (key_path) {
		rc = host_load_signer(key_path, &sg);
		if (rc) {
			char what[96];
			snprintf(what, sizeof(what), "usb provision: %s", key_path);
			status = host_fail(what, rc);
			goto out_config;
		}
		have_signer = true;
	}
	struct usb_match m;
	struct libusb_context *ctx;
	struct usb_found f;
	struct usb_link l;
	struct tern_msg_info info;
	struct db *db = NULL;
	if (usb_match_init(&m, vid, pid, serial)) {
		status =
		    host_usage("usb provision", "--vid and --pid take hex USB ids such as 1209");
		goto out_signer;
	}
	if (usb_start("usb provision", &ctx))
		goto out_signer;
	status = select_device("usb provision", ctx, &m, &f);
	if (status)
		goto out_exit;
	status = open_link("usb provision", &l, ctx, &f);
	if (status)
		goto out_free;
	status = 1;
	rc = usb_link_hello(&l, &info);
	if (rc) {
		fprintf(stderr, "tern usb provision: %s: %s\n", f.serial, tern_strerror(rc));
		goto out_close;
	}
	if (info.device_id[0] && !have_signer) {
		fprintf(stderr,
			"tern usb provision: %s is provisioned already (as %s); to change "
			"it, sign the request with --key and a key the device trusts\n",
			f.serial, info.device_id);
		goto out_close;
	}
	/* The inventory is the authority for the provisioning generation: opened before the
	 * request is sent, so a device is never provisioned with a number it cannot record. */
	const char *db_file = db_path && *db_path ? db_path : "tern.db";
	if (db_open(&db, db_file)) {
		fprintf(stderr,
			"tern usb provision: the inventory %s cannot be used; nothing was sent to "
			"%s\n",
			db_file, f.serial);
		goto out_close;
	}
	/* Higher than any the device or its ids took, so this request (once signed) cannot
	 * be replayed on it later. */
	if (provision_generation(db, db_file, &f, &info, p.device_id, (uint64_t)generation,
				 &p.generation))
		goto out_close;
	blen = tern_msg_provision_encode(&p, body, sizeof(body));
	if (!blen) {
		host_fail("usb provision", TERN_E_BUF_SMALL);
		goto out_close;
	}
	const uint8_t *send = body;
	size_t send_len = blen;
	if (have_signer) {
		uint8_t aad[sizeof(TERN_PROVISION_AAD) + TERN_FRAME_SERIAL_MAX];
		size_t alen = tern_provision_aad(f.serial, aad, sizeof(aad));
		size_t clen =
		    alen ? tern_cose_sign1_sign(&sg, body, blen, aad, alen, cose, sizeof(cose)) : 0;
		send_len =
		    clen ? tern_msg_provision_encode_signed(cose, clen, req, sizeof(req)) : 0;
		send = req;
		if (!send_len) {
			host_fail("usb provision", TERN_E_CRYPTO);
			goto out_close;
		}
	}
	uint8_t reply[64];
	rc = usb_link_call(&l, TERN_MSG_PROVISION, send, send_len, TERN_MSG_ACK, reply,
			   sizeof(reply), NULL, NULL);
	if (rc == TERN_E_OLD_GENERATION)
		fprintf(stderr,
			"tern usb provision: %s refused a request of generation %llu: it has taken "
			"generation %llu already (a replayed request?)\n",
			f.serial, (unsigned long long)p.generation,
			(unsigned long long)info.provision_gen);
	else if (rc == TERN_E_EXISTS)
		fprintf(stderr,
			"tern usb provision: %s is provisioned already; to change it, sign "
			"the request with --key and a key the device trusts\n",
			f.serial);
	else if (rc)
		fprintf(stderr, "tern usb provision: %s refused: %s\n", f.serial,
			tern_strerror(rc));
	else {
		printf("%s provisioned as %s (generation %llu): %zu trusted key(s)%s\n", f.serial,
		       p.device_id, (unsigned long long)p.generation, p.n_keys,
		       p.config ? ", configuration written" : "");
		status = record_provisioned(db, db_file, &p, &f, &info);
	}
out_close:
	db_close(db);
	usb_link_close(&l);
out_free:
	usb_found_free(&f, 1);
out_exit:
	libusb_exit(ctx);
out_signer:
	if (have_signer)
		tern_signer_free(&sg);
out_config:
	free(config);
	return status;
}
