/*
 * ternd: the device agent. `ternd sim ...` runs a simulated device (boards/sim);
 * `ternd [--config FILE] COMMAND` runs on a Linux device (boards/linux, docs/linux.md).
 */
#include "tern/tern_linux.h"
#include "tern/tern_linux_usb.h"
#include "tern/tern_sim.h"

#include "tern/tern_err.h"
#include "tern/tern_version.h"

#include "linux_priv.h"
#include "mqtt_priv.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_CONFIG "/etc/tern/ternd.conf"

static const char usage_text[] =
    "usage:\n"
    "  ternd [--config FILE] check             check the configuration, slots and bootloader\n"
    "  ternd [--config FILE] run [--duration S]  after boot: trial, health check, confirm or "
    "roll back;\n"
    "                                          then serve MQTT ([mqtt] url) until SIGTERM,\n"
    "                                          or USB ([usb] enabled) until SIGTERM or a reboot\n"
    "  ternd [--config FILE] install RELEASE [--no-activate] [--revert]\n"
    "  ternd [--config FILE] activate          arm the staged release for the next boot\n"
    "  ternd [--config FILE] status [--json]\n"
    "  ternd [--config FILE] mark-good|mark-bad  end a trial with your own health logic\n"
    "  ternd sim ...                           a simulated device (ternd sim --help)\n"
    "  ternd fleet ...                         many sim devices over MQTT (ternd fleet --help)\n"
    "  ternd --version\n"
    "FILE defaults to " DEFAULT_CONFIG ".\n";

/* A usage error: one line, and where the whole usage is. */
static int usage(const char *why)
{
	fprintf(stderr, "ternd: %s (see 'ternd --help')\n", why);
	return 2;
}

static int fail(int rc, const char *what)
{
	fprintf(stderr, "ternd: %s: %s (%s)\n", what, tern_strerror(rc), tern_errname(rc));
	return 1;
}

/* Loads the config and opens the device; prints the one-line reason on failure. */
static struct tern_linux *device_open(const char *config, unsigned flags)
{
	char err[512];
	struct tern_linux_config *cfg = malloc(sizeof(*cfg));
	struct tern_linux *lx = malloc(sizeof(*lx));
	if (!cfg || !lx) {
		fprintf(stderr, "ternd: %s\n", tern_strerror(TERN_E_NOMEM));
		goto out_free;
	}
	if (tern_linux_config_load(cfg, config, err, sizeof(err))) {
		fprintf(stderr, "ternd: %s\n", err);
		goto out_free;
	}
	if (tern_linux_open(lx, cfg, flags, err, sizeof(err))) {
		fprintf(stderr, "ternd: %s\n", err);
		tern_linux_close(lx);
		goto out_free;
	}
	free(cfg);
	return lx;
out_free:
	free(cfg);
	free(lx);
	return NULL;
}

static void device_close(struct tern_linux *lx)
{
	tern_linux_close(lx);
	free(lx);
}

static char slot_letter(unsigned s)
{
	return s <= 1 ? (char)('A' + s) : '-';
}

/* What this boot is (a trial, a fallback the bootloader made...), decided at its first
 * command and kept for the others. */
static void print_note(const struct tern_linux *lx)
{
	if (lx->note.text[0])
		printf("ternd: %s\n", lx->note.text);
}

/* --- the health result kept for status and reports --- */

static int health_path(const struct tern_linux *lx, char *out, size_t size)
{
	int n = snprintf(out, size, "%s/health", lx->cfg.state_dir);
	return n < 0 || (size_t)n >= size ? TERN_E_TOO_LARGE : 0;
}

static int save_health(const struct tern_linux *lx, const struct tern_health_result *r,
		       uint64_t sequence)
{
	char path[TERN_LINUX_PATH_MAX + 16], text[1400];
	int rc = health_path(lx, path, sizeof(path));
	if (rc)
		return rc;
	int n = snprintf(text, sizeof(text),
			 "passed=%d\nexit_code=%d\ntimed_out=%d\nsequence=%llu\n--\n%s\n",
			 r->passed ? 1 : 0, r->exit_code, r->timed_out ? 1 : 0,
			 (unsigned long long)sequence, r->output);
	if (n < 0)
		return TERN_E_IO;
	if ((size_t)n >= sizeof(text))
		n = (int)sizeof(text) - 1;
	return tern_linux_replace_file(path, text, (size_t)n);
}

static bool load_health(const struct tern_linux *lx, struct tern_health_result *r)
{
	char path[TERN_LINUX_PATH_MAX + 16], text[1400];
	memset(r, 0, sizeof(*r));
	if (health_path(lx, path, sizeof(path)))
		return false;
	FILE *f = fopen(path, "r");
	if (!f)
		return false;
	size_t n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	const char *sep = strstr(text, "\n--\n");
	if (!sep)
		return false;
	r->passed = strstr(text, "passed=1\n") == text;
	const char *e = strstr(text, "exit_code=");
	r->exit_code = e ? (int)strtol(e + 10, NULL, 10) : -1;
	r->timed_out = strstr(text, "timed_out=1\n") != NULL;
	snprintf(r->output, sizeof(r->output), "%s", sep + 4);
	size_t len = strlen(r->output);
	while (len && r->output[len - 1] == '\n')
		r->output[--len] = '\0';
	return true;
}

/* --- status --- */

/* The keys of `ternd sim status --json`, then last_health and boot_note. */
static void print_status_json(const struct tern_linux *lx, const struct tern_status *st)
{
	/* "powered" is the sim's; a device that answers is powered. A factory image has no
	 * signed digest. */
	tern_sim_json_status(st, true, true);
	struct tern_health_result h;
	printf(", \"last_health\": ");
	if (load_health(lx, &h)) {
		printf("{\"passed\": %s, \"exit_code\": %d, \"timed_out\": %s, \"output\": ",
		       h.passed ? "true" : "false", h.exit_code, h.timed_out ? "true" : "false");
		tern_sim_json_str(h.output);
		printf("}");
	} else {
		printf("null");
	}
	printf("}\n");
}

static void print_status_text(const struct tern_linux *lx, const struct tern_status *st)
{
	printf("device:         %s (board %s)\n", lx->cfg.device_id[0] ? lx->cfg.device_id : "-",
	       lx->cfg.board_id);
	printf("state:          %s\n", tern_state_name(st->state));
	if (lx->note.text[0])
		printf("this boot:      %s%s\n", lx->note.text,
		       lx->boot.trial && !st->running_trial ? " (the trial is over)" : "");
	if (lx->note.reboot_needed)
		printf("reboot needed:  the running slot is not good; `ternd run` reboots\n");
	unsigned shown = 0x3u; /* firmware slots, and the config slots the board has */
	for (unsigned i = 2; i < TERN_N_SLOTS; i++)
		if (lx->cfg.slot[i][0])
			shown |= 1u << i;
	tern_sim_text_slots(st, shown);
	struct tern_bootvars v;
	if (tern_bootloader_read((struct tern_bootloader_ctx *)&lx->bl, &v) == 0)
		printf("bootloader:     boot %c first; attempts left A %u, B %u\n",
		       slot_letter(v.primary), v.left[0], v.left[1]);
	tern_sim_text_last_event(st);
	struct tern_health_result h;
	if (load_health(lx, &h))
		printf("last health:    %s (exit %d%s)%s%s\n", h.passed ? "passed" : "failed",
		       h.exit_code, h.timed_out ? ", timed out" : "", h.output[0] ? "\n" : "",
		       h.output);
}

/* --- commands --- */

struct opts {
	const char *config;
	int argc;
	char **argv;
};

static int cmd_check(struct opts *o)
{
	if (o->argc != 0)
		return usage("check takes no arguments");
	struct tern_linux *lx = device_open(o->config, 0);
	if (!lx)
		return 1;
	char err[TERN_LINUX_PATH_MAX + 256];
	if (tern_linux_config_check_files(&lx->cfg, err, sizeof(err))) {
		fprintf(stderr, "ternd: %s\n", err);
		device_close(lx);
		return 1;
	}
	print_note(lx);
	if (!lx->cfg.device_id[0])
		printf("ternd: not provisioned yet: no [device] id%s; `tern usb provision` gives "
		       "the device its id, keys and configuration\n",
		       lx->keyring.n_keys ? ""
					  : " and no key (every release is refused until then)");
	printf("ternd: %s is usable: board %s, running slot %c, bootloader %s\n", o->config,
	       lx->cfg.board_id, slot_letter(lx->boot.slot[TERN_PAIR_FW]),
	       lx->cfg.bootloader == TERN_BOOT_UBOOT  ? "uboot"
	       : lx->cfg.bootloader == TERN_BOOT_GRUB ? "grub"
						      : "script");
	device_close(lx);
	return 0;
}

static int reboot_now(const struct tern_linux_config *cfg, const char *why)
{
	printf("ternd: rebooting: %s\n", why);
	if (!cfg->reboot_cmd[0]) {
		printf(
		    "ternd: no reboot command configured ([system] reboot); reboot the device\n");
		return 0;
	}
	struct tern_health_result r;
	fflush(stdout);
	int rc = tern_linux_run_command(cfg->reboot_cmd, cfg->dir, 60, &r);
	if (rc || !r.passed) {
		fprintf(stderr, "ternd: the reboot command failed (exit %d): %s\n", r.exit_code,
			r.output);
		return 1;
	}
	return 0;
}

static volatile sig_atomic_t stop_requested;

static void on_stop(int sig)
{
	(void)sig;
	stop_requested = 1;
}

/* Closes the device (its lock and ep0, so the ternd the reboot command may start can
 * take them) and runs the reboot command. Closes @lx. */
static int close_and_reboot(struct tern_linux *lx, const char *why)
{
	struct tern_linux_config *cfg = malloc(sizeof(*cfg));
	if (!cfg) {
		device_close(lx);
		return fail(TERN_E_NOMEM, "reboot");
	}
	memcpy(cfg, &lx->cfg, sizeof(*cfg));
	device_close(lx);
	int ret = reboot_now(cfg, why);
	free(cfg);
	return ret;
}

/*
 * `run` with [usb] enabled and no [mqtt] url: serves the host over the FunctionFS mount until SIGTERM or
 * SIGINT, or until the host asks for a reboot; then closes the device (its lock and ep0,
 * so the next ternd can take them) and runs the reboot command. Closes @lx.
 */
static int serve_usb(struct tern_linux *lx)
{
	char err[512];
	enum tern_ffs_end end;
	struct sigaction sa;
	if (!lx->cfg.usb_functionfs[0]) {
		fprintf(stderr,
			"ternd: %s: [usb] enabled needs [usb] functionfs (the FunctionFS "
			"mount, e.g. /dev/ffs-tern)\n",
			lx->cfg.path);
		device_close(lx);
		return 1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop; /* no SA_RESTART: blocking reads return EINTR */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	int rc =
	    tern_ffs_serve(lx, lx->cfg.usb_functionfs, &stop_requested, &end, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "ternd: USB: %s\n", err);
		device_close(lx);
		return 1;
	}
	if (end != TERN_FFS_REBOOT) {
		printf("ternd: stopped\n");
		device_close(lx);
		return 0;
	}
	return close_and_reboot(lx, "the host asked for it over USB");
}

static int cmd_run(struct opts *o)
{
	unsigned duration = 0; /* seconds of serving MQTT, for tests (0: until SIGTERM) */
	char *end;
	if (o->argc == 2 && !strcmp(o->argv[0], "--duration") && o->argv[1][0] >= '0' &&
	    o->argv[1][0] <= '9') {
		unsigned long v = strtoul(o->argv[1], &end, 10);
		if (*end || v > 86400ul * 365)
			return usage("run --duration needs SECONDS");
		duration = (unsigned)v;
	} else if (o->argc != 0)
		return usage("run takes only --duration SECONDS");
	struct tern_linux *lx = device_open(o->config, 0);
	if (!lx)
		return 1;
	int ret = 0, rc;
	print_note(lx);
	if (lx->note.reboot_needed) {
		ret = reboot_now(&lx->cfg, "the running slot is not good");
		goto out;
	}
	if (lx->agent.state == TERN_ST_TRIAL) {
		const struct tern_bootctl *bc = &lx->agent.bc;
		uint64_t seq = bc->event_sequence;
		struct tern_health_result h;
		printf("ternd: trial of %s (slot %c): health check\n",
		       bc->slots[tern_slot_area(TERN_PAIR_FW, lx->boot.slot[TERN_PAIR_FW])].version,
		       slot_letter(lx->boot.slot[TERN_PAIR_FW]));
		fflush(stdout);
		if (lx->cfg.health_cmd[0]) {
			if ((rc = tern_linux_run_command(lx->cfg.health_cmd, lx->cfg.dir,
							 lx->cfg.health_timeout, &h))) {
				memset(&h, 0, sizeof(h));
				h.exit_code = -1;
				snprintf(h.output, sizeof(h.output),
					 "cannot start the health command");
			}
		} else {
			memset(&h, 0, sizeof(h));
			h.passed = true;
			snprintf(h.output, sizeof(h.output),
				 "no health command: reaching ternd is "
				 "the check");
		}
		if (h.passed && lx->cfg.settle) {
			printf("ternd: health check passed; staying up %u s before confirming\n",
			       lx->cfg.settle);
			fflush(stdout);
			sleep(lx->cfg.settle);
		}
		if ((rc = save_health(lx, &h, seq)))
			fprintf(stderr, "ternd: cannot keep the health result: %s\n",
				tern_strerror(rc));
		if ((rc = tern_linux_end_trial(lx, h.passed))) {
			ret = fail(rc, "ending the trial");
			goto out;
		}
		if (h.passed) {
			printf("ternd: health check passed; confirmed\n");
		} else {
			printf("ternd: health check failed (%s%d); rolled back\n",
			       h.timed_out ? "timed out, exit " : "exit ", h.exit_code);
			if (h.output[0])
				printf("%s\n", h.output);
			ret = reboot_now(&lx->cfg, "leaving the failed trial");
			goto out;
		}
	}
	if (lx->cfg.mqtt_url[0] && !lx->cfg.device_id[0] && lx->cfg.usb_enabled) {
		printf("ternd: not provisioned (no [device] id): serving USB only; MQTT starts "
		       "with the next start after `tern usb provision`\n");
		ret = serve_usb(lx);
		lx = NULL; /* closed by serve_usb */
	} else if (lx->cfg.mqtt_url[0]) {
		const char *reboot_why = NULL;
		fflush(stdout);
		if (tern_linux_serve(lx, duration, lx->cfg.usb_enabled, &reboot_why)) {
			ret = 1; /* its line is printed */
		} else if (reboot_why) {
			ret = close_and_reboot(lx, reboot_why);
			lx = NULL;
		}
	} else if (lx->cfg.usb_enabled) {
		ret = serve_usb(lx);
		lx = NULL; /* closed by serve_usb */
	}
out:
	if (lx)
		device_close(lx);
	return ret;
}

static int cmd_install(struct opts *o)
{
	bool activate = true, revert = false;
	const char *rel = NULL;
	for (int i = 0; i < o->argc; i++) {
		if (!strcmp(o->argv[i], "--no-activate"))
			activate = false;
		else if (!strcmp(o->argv[i], "--revert"))
			revert = true;
		else if (!rel && o->argv[i][0] != '-')
			rel = o->argv[i];
		else
			return usage("install: unknown argument");
	}
	if (!rel)
		return usage("install needs RELEASE");
	if (access(rel, R_OK) != 0)
		return fail(TERN_E_NOT_FOUND, rel);
	struct tern_linux *lx = device_open(o->config, 0);
	if (!lx)
		return 1;
	if (lx->note.new_boot)
		print_note(lx);
	struct tern_status st, before;
	tern_agent_status(&lx->agent, &before);
	int rc = tern_linux_install_file(lx, rel, revert);
	if (rc == 0 && activate && !lx->agent.bc.trial_pending)
		rc = tern_agent_activate(&lx->agent);
	if (rc == 0 || lx->agent.state == TERN_ST_FAILED) {
		int src = tern_linux_sync_bootloader(lx);
		if (rc == 0)
			rc = src;
	}
	if (rc) {
		fprintf(stderr, "ternd: refused %s: %s (%s)\n", rel, tern_strerror(rc),
			tern_errname(rc));
		device_close(lx);
		return 1;
	}
	tern_agent_status(&lx->agent, &st);
	for (unsigned i = 0; i < TERN_N_SLOTS; i++) {
		if (st.slots[i].state != TERN_SLOT_STAGED)
			continue;
		printf("staged %s (sequence %llu) in %s slot %c%s%s\n", st.slots[i].version,
		       (unsigned long long)st.slots[i].sequence, i < 2 ? "firmware" : "config",
		       'A' + (int)(i & 1u), tern_sim_kept(&before.slots[i], &st.slots[i]),
		       st.trial_pending ? "; activated: the next reboot runs it on trial" : "");
	}
	device_close(lx);
	return 0;
}

static int cmd_activate(struct opts *o)
{
	if (o->argc != 0)
		return usage("activate takes no arguments");
	struct tern_linux *lx = device_open(o->config, 0);
	if (!lx)
		return 1;
	if (lx->note.new_boot)
		print_note(lx);
	int rc = tern_agent_activate(&lx->agent);
	if (rc == 0)
		rc = tern_linux_sync_bootloader(lx);
	if (rc == 0)
		printf("activated: the next reboot runs the staged release on trial\n");
	device_close(lx);
	return rc ? fail(rc, "activate") : 0;
}

static int cmd_status(struct opts *o)
{
	bool json = false;
	for (int i = 0; i < o->argc; i++) {
		if (!strcmp(o->argv[i], "--json"))
			json = true;
		else
			return usage("status: unknown argument");
	}
	struct tern_linux *lx = device_open(o->config, TERN_LINUX_READ_ONLY);
	if (!lx)
		return 1;
	struct tern_status st;
	tern_agent_status(&lx->agent, &st);
	if (json)
		print_status_json(lx, &st);
	else
		print_status_text(lx, &st);
	device_close(lx);
	return 0;
}

static int cmd_mark(struct opts *o, bool good)
{
	if (o->argc != 0)
		return usage("mark-good and mark-bad take no arguments");
	struct tern_linux *lx = device_open(o->config, 0);
	if (!lx)
		return 1;
	if (lx->note.new_boot)
		print_note(lx);
	int rc = 0;
	if (lx->agent.state == TERN_ST_TRIAL) {
		rc = tern_linux_end_trial(lx, good);
		if (rc == 0)
			printf(good ? "ternd: trial confirmed\n"
				    : "ternd: trial marked bad; reboot to go back to slot %c\n",
			       slot_letter(lx->agent.bc.active[TERN_PAIR_FW]));
	} else if (good) {
		rc = tern_linux_sync_bootloader(lx);
		if (rc == 0)
			printf("ternd: no trial running; slot %c stays good\n",
			       slot_letter(lx->boot.slot[TERN_PAIR_FW]));
	} else {
		rc = TERN_E_STATE;
	}
	device_close(lx);
	return rc ? fail(rc, good ? "mark-good" : "mark-bad (only a trial can be marked bad)") : 0;
}

static int cmd_mark_good(struct opts *o)
{
	return cmd_mark(o, true);
}

static int cmd_mark_bad(struct opts *o)
{
	return cmd_mark(o, false);
}

struct command {
	const char *name;
	int (*run)(struct opts *o);
};

static const struct command commands[] = {
    {"activate", cmd_activate}, {"check", cmd_check},	{"run", cmd_run},
    {"install", cmd_install},	{"status", cmd_status}, {"mark-good", cmd_mark_good},
    {"mark-bad", cmd_mark_bad},
};

int main(int argc, char **argv)
{
	if (argc >= 2 && (!strcmp(argv[1], "sim") || !strcmp(argv[1], "fleet")))
		return tern_sim_main(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	struct opts o = {DEFAULT_CONFIG, 0, NULL};
	int i = 1;
	if (i < argc && (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))) {
		fputs(usage_text, stdout);
		return 0;
	}
	if (i < argc && !strcmp(argv[i], "--version")) {
		printf("ternd %s\n", TERN_VERSION);
		return 0;
	}
	if (i + 1 < argc && !strcmp(argv[i], "--config")) {
		o.config = argv[i + 1];
		i += 2;
	}
	if (i >= argc) { /* nothing asked: the whole usage */
		fputs(usage_text, stderr);
		return 2;
	}
	o.argc = argc - i - 1;
	o.argv = argv + i + 1;
	for (int k = 0; k < o.argc; k++)
		if (!strcmp(o.argv[k], "--help") || !strcmp(o.argv[k], "-h")) {
			/* "ternd install --help": the usage, as asked. */
			fputs(usage_text, stdout);
			return 0;
		}
	for (size_t k = 0; k < sizeof(commands) / sizeof(commands[0]); k++)
		if (!strcmp(argv[i], commands[k].name))
			return commands[k].run(&o);
	return usage("unknown command");
}
