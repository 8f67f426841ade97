/*
 * ternd: the device agent. `ternd sim ...` runs a simulated device kept in a folder:
 *   DEVDIR/device.conf   board id and flash geometry
 *   DEVDIR/keyring-N.pub trusted public keys (PEM)
 *   DEVDIR/flash.img     the whole flash (slots, boot control, install journal)
 *   DEVDIR/running       what the bootloader started last (the device's RAM)
 */
#include "fleet_priv.h"
#include "simdir_priv.h"
#include "tern/tern_sim.h"

#include "tern/tern_err.h"
#include "tern/tern_release.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_BOOTS     SIMDEV_MAX_BOOTS
#define INSTALL_PIECE (256 * 1024) /* release bytes fed to the agent at a time */

static const char usage_text[] =
    "usage:\n"
    "  ternd sim init DEVDIR --keyring signing.pub [--board sim] [--slot-size 8M]\n"
    "                 [--version 1.0.0] [--image-size 64K]\n"
    "  ternd sim install DEVDIR RELEASE.tern [--no-activate] [--revert]\n"
    "                 [--power-cut-at N [--torn]]\n"
    "  ternd sim activate DEVDIR\n"
    "  ternd sim cancel DEVDIR        (abandon an interrupted install)\n"
    "  ternd sim reboot DEVDIR [--power-cut-at N [--torn]]\n"
    "  ternd sim status DEVDIR [--json]\n"
    "  ternd sim mkimage --health ok|fail|crash [--size 1M] [--version V] --out FILE\n"
    "  ternd fleet --devices N --dir DIR --broker URL [--keyring signing.pub] ...\n"
    "                 (many sim devices over MQTT in one process; ternd fleet --help)\n";

static int fail(int rc, const char *what)
{
	if (what)
		fprintf(stderr, "ternd: %s: %s (%s)\n", what, tern_strerror(rc), tern_errname(rc));
	else
		fprintf(stderr, "ternd: %s (%s)\n", tern_strerror(rc), tern_errname(rc));
	return 1;
}

/* A usage error: one line, and where the whole usage is. */
static int usage(const char *why)
{
	fprintf(stderr, "ternd: %s (see 'ternd sim --help')\n", why);
	return 2;
}

/* Attaches and refuses to go on when the device is off after a power cut. */
static int simdev_attach_on(struct simdev *s)
{
	int rc = simdev_attach(s);
	if (rc == 0 && !s->powered) {
		fprintf(
		    stderr,
		    "ternd: %s: the device is off since a power cut; run 'ternd sim reboot %s'\n",
		    s->dir, s->dir);
		return TERN_E_STATE;
	}
	return rc;
}

/* Parses "--power-cut-at N" and "--torn" (tests and demos); false on a bad value. */
static bool parse_cut(int argc, char **argv, int *i, uint64_t *cut_at, bool *torn)
{
	if (!strcmp(argv[*i], "--torn")) {
		*torn = true;
		return true;
	}
	if (!strcmp(argv[*i], "--power-cut-at") && *i + 1 < argc)
		return parse_u64(argv[++*i], cut_at) && *cut_at > 0;
	return false;
}

/* After a simulated power cut: the device is off until the next reboot. */
static int report_cut(struct simdev *s, uint64_t cut_at, const char *during)
{
	save_running(s);
	fprintf(stderr,
		"ternd: power cut at flash operation %llu during %s; run 'ternd sim reboot %s'\n",
		(unsigned long long)cut_at, during, s->dir);
	return 3;
}

static void print_line(void *arg, const char *line)
{
	(void)arg;
	printf("%s\n", line);
}

/* --- mkimage --- */

static int cmd_mkimage(int argc, char **argv)
{
	const char *out = NULL, *version = "1.0.0", *health_s = NULL;
	uint64_t size = 1024 * 1024;
	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--health") && i + 1 < argc)
			health_s = argv[++i];
		else if (!strcmp(argv[i], "--size") && i + 1 < argc) {
			if (!parse_size(argv[++i], &size))
				return usage("--size wants a size such as 1M or 65536");
		} else if (!strcmp(argv[i], "--version") && i + 1 < argc)
			version = argv[++i];
		else if (!strcmp(argv[i], "--out") && i + 1 < argc)
			out = argv[++i];
		else
			return usage("mkimage: unknown argument");
	}
	if (!out || !health_s)
		return usage("mkimage needs --health and --out");
	enum tern_sim_health h;
	if (!strcmp(health_s, "ok"))
		h = TERN_SIM_HEALTHY;
	else if (!strcmp(health_s, "fail"))
		h = TERN_SIM_UNHEALTHY;
	else if (!strcmp(health_s, "crash"))
		h = TERN_SIM_CRASH;
	else
		return usage("--health is ok, fail or crash");
	if (size < TERN_SIM_IMAGE_HDR_LEN || size > (1ull << 32))
		return usage("--size must be between 64 bytes and 4G");
	if (strlen(version) == 0 || strlen(version) > TERN_VERSION_MAX)
		return usage("--version must be 1 to 32 characters");
	uint8_t *img = malloc(size);
	if (!img)
		return fail(TERN_E_NOMEM, NULL);
	int rc = tern_sim_image_make(img, size, h, version);
	FILE *f = rc ? NULL : fopen(out, "wb");
	if (!rc && !f)
		rc = TERN_E_IO;
	if (f) {
		bool ok = fwrite(img, 1, size, f) == size;
		if (fclose(f) != 0 || !ok)
			rc = TERN_E_IO;
	}
	free(img);
	if (rc)
		return fail(rc, out);
	printf("wrote %s: sim image %s, %llu bytes, health %s\n", out, version,
	       (unsigned long long)size, health_s);
	return 0;
}

static int cmd_init(int argc, char **argv)
{
	if (argc < 1 || argv[0][0] == '-')
		return usage("init needs DEVDIR");
	const char *keys[TERN_KEYRING_MAX];
	struct simdev_params p = {
	    .dir = argv[0],
	    .keys = keys,
	    .board = TERN_SIM_BOARD_ID,
	    .version = "1.0.0",
	    .slot_size = 8ull * 1024 * 1024,
	    .image_size = 64 * 1024,
	};
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--keyring") && i + 1 < argc) {
			if (p.n_keys == TERN_KEYRING_MAX)
				return usage("too many --keyring");
			keys[p.n_keys++] = argv[++i];
		} else if (!strcmp(argv[i], "--board") && i + 1 < argc)
			p.board = argv[++i];
		else if (!strcmp(argv[i], "--version") && i + 1 < argc)
			p.version = argv[++i];
		else if (!strcmp(argv[i], "--slot-size") && i + 1 < argc) {
			if (!parse_size(argv[++i], &p.slot_size) || p.slot_size < 8192 ||
			    p.slot_size > (1ull << 34))
				return usage("--slot-size wants a size such as 8M");
		} else if (!strcmp(argv[i], "--image-size") && i + 1 < argc) {
			if (!parse_size(argv[++i], &p.image_size))
				return usage("--image-size wants a size such as 64K");
		} else
			return usage("init: unknown argument");
	}
	if (p.n_keys == 0)
		return usage("init needs --keyring signing.pub");
	if (strlen(p.board) == 0 || strlen(p.board) > TERN_NAME_MAX)
		return usage("--board must be 1 to 32 characters");
	if (strlen(p.version) == 0 || strlen(p.version) > TERN_VERSION_MAX)
		return usage("--version must be 1 to 32 characters");
	if (p.image_size > p.slot_size)
		p.image_size = p.slot_size;
	if (p.image_size < TERN_SIM_IMAGE_HDR_LEN)
		return usage("--image-size is too small");
	int rc = simdev_create(&p, print_line, NULL);
	if (rc == TERN_E_EXISTS) {
		fprintf(stderr, "ternd: %s: a device is already there; remove the folder first\n",
			p.dir);
		return 1;
	}
	if (rc)
		return fail(rc, p.dir);
	printf("initialized %s: board %s, slots of %llu bytes, slot A runs %s\n", p.dir, p.board,
	       (unsigned long long)(p.slot_size + 4095) / 4096 * 4096, p.version);
	return 0;
}

/* --- install, activate, reboot --- */

/* Opens a release file for reading; TERN_E_TRUNCATED when it is empty. */
static int open_release(const char *path, int *fd_out)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return errno == ENOENT ? TERN_E_NOT_FOUND : TERN_E_IO;
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return TERN_E_IO;
	}
	if (st.st_size == 0) {
		close(fd);
		return TERN_E_TRUNCATED;
	}
	*fd_out = fd;
	return 0;
}

static int cmd_install(int argc, char **argv)
{
	if (argc < 2)
		return usage("install needs DEVDIR and RELEASE");
	bool activate = true, torn = false, revert = false;
	uint64_t cut_at = 0;
	for (int i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--no-activate"))
			activate = false;
		else if (!strcmp(argv[i], "--revert"))
			revert = true;
		else if (!parse_cut(argc, argv, &i, &cut_at, &torn))
			return usage("install: unknown argument");
	}
	struct simdev *s = calloc(1, sizeof(*s));
	if (!s)
		return fail(TERN_E_NOMEM, NULL);
	int fd = -1;
	int rc = simdev_open(s, argv[0]);
	if (rc) {
		free(s);
		return rc == TERN_E_NOT_FOUND ? 1 : fail(rc, argv[0]);
	}
	int exit_code = 1;
	if ((rc = simdev_attach_on(s))) {
		if (rc != TERN_E_STATE)
			fail(rc, argv[0]);
		goto out;
	}
	if ((rc = open_release(argv[1], &fd))) {
		fail(rc, argv[1]);
		goto out;
	}
	struct tern_status st, before;
	tern_agent_status(&s->dev.agent, &st);
	before = st;
	if (st.state == TERN_ST_DOWNLOADING)
		printf("an install of %s was interrupted: %llu of %llu chunks verified\n",
		       st.job_version, (unsigned long long)st.n_verified,
		       (unsigned long long)st.n_chunks);
	if (cut_at)
		tern_sim_power_cut_at(&s->dev.flash, cut_at, torn);
	rc = tern_sim_install_fd(&s->dev, fd, INSTALL_PIECE, revert);
	if (rc == 0 && activate)
		rc = tern_agent_activate(&s->dev.agent);
	if (s->dev.flash.powered_off) {
		exit_code = report_cut(s, cut_at, "install");
		goto out;
	}
	int sync_rc = tern_sim_flash_sync(&s->dev.flash);
	if (rc == 0)
		rc = sync_rc;
	if (rc) {
		fprintf(stderr, "ternd: refused %s: %s (%s)\n", argv[1], tern_strerror(rc),
			tern_errname(rc));
		goto out;
	}
	tern_agent_status(&s->dev.agent, &st);
	for (unsigned i = 0; i < TERN_N_SLOTS; i++) {
		if (st.slots[i].state != TERN_SLOT_STAGED)
			continue;
		printf("staged %s (sequence %llu) in %s slot %c%s%s\n", st.slots[i].version,
		       (unsigned long long)st.slots[i].sequence, i < 2 ? "firmware" : "config",
		       'A' + (int)(i & 1u), tern_sim_kept(&before.slots[i], &st.slots[i]),
		       st.trial_pending ? "; activated: the next reboot runs it on trial" : "");
	}
	exit_code = 0;
out:
	if (fd >= 0)
		close(fd);
	simdev_close(s);
	free(s);
	return exit_code;
}

/* Runs @op on an attached, powered device: activate or cancel. */
static int simple_command(int argc, char **argv, const char *what, int (*op)(struct tern_agent *ag),
			  const char *done)
{
	if (argc != 1) {
		char msg[64];
		snprintf(msg, sizeof(msg), "%s needs DEVDIR", what);
		return usage(msg);
	}
	struct simdev *s = calloc(1, sizeof(*s));
	if (!s)
		return fail(TERN_E_NOMEM, NULL);
	int rc = simdev_open(s, argv[0]);
	if (rc) {
		free(s);
		return rc == TERN_E_NOT_FOUND ? 1 : fail(rc, argv[0]);
	}
	int exit_code = 1;
	if ((rc = simdev_attach_on(s))) {
		if (rc != TERN_E_STATE)
			fail(rc, argv[0]);
	} else if ((rc = op(&s->dev.agent)) || (rc = tern_sim_flash_sync(&s->dev.flash))) {
		fail(rc, what);
	} else {
		printf("%s\n", done);
		exit_code = 0;
	}
	simdev_close(s);
	free(s);
	return exit_code;
}

static int activate_op(struct tern_agent *ag)
{
	return tern_agent_activate(ag);
}

static int cancel_op(struct tern_agent *ag)
{
	return tern_agent_cancel(ag, TERN_E_CANCELED);
}

static int cmd_activate(int argc, char **argv)
{
	return simple_command(argc, argv, "activate", activate_op,
			      "activated: the next reboot runs the staged release on trial");
}

static int cmd_cancel(int argc, char **argv)
{
	return simple_command(argc, argv, "cancel", cancel_op,
			      "canceled the interrupted install; the inactive slot is empty");
}

static int cmd_reboot(int argc, char **argv)
{
	bool torn = false;
	uint64_t cut_at = 0;
	if (argc < 1)
		return usage("reboot needs DEVDIR");
	for (int i = 1; i < argc; i++)
		if (!parse_cut(argc, argv, &i, &cut_at, &torn))
			return usage("reboot: unknown argument");
	struct simdev *s = calloc(1, sizeof(*s));
	if (!s)
		return fail(TERN_E_NOMEM, NULL);
	int rc = simdev_open(s, argv[0]);
	if (rc) {
		free(s);
		return rc == TERN_E_NOT_FOUND ? 1 : fail(rc, argv[0]);
	}
	/* The boot count lives in the running file. */
	if (simdev_attach(s) != 0)
		s->dev.n_boots = 0;
	s->dev.log = print_line;
	if (cut_at)
		tern_sim_power_cut_at(&s->dev.flash, cut_at, torn);
	int exit_code = 1;
	rc = tern_sim_boot(&s->dev, MAX_BOOTS);
	if (s->dev.flash.powered_off) {
		exit_code = report_cut(s, cut_at, "boot");
		goto out;
	}
	if (rc) {
		save_running(s); /* nothing runs: the device stays off */
		fail(rc, argv[0]);
		goto out;
	}
	if ((rc = save_running(s)) || (rc = tern_sim_flash_sync(&s->dev.flash))) {
		fail(rc, argv[0]);
		goto out;
	}
	struct tern_status st;
	tern_agent_status(&s->dev.agent, &st);
	const struct tern_slot_meta *m =
	    &st.slots[tern_slot_area(TERN_PAIR_FW, st.running[TERN_PAIR_FW])];
	printf("running slot %c, version %s; state %s%s%s\n", 'A' + st.running[TERN_PAIR_FW],
	       m->version, tern_state_name(st.state), st.reason ? ": " : "",
	       st.reason ? tern_strerror(st.reason) : "");
	exit_code = 0;
out:
	simdev_close(s);
	free(s);
	return exit_code;
}

/* --- status --- */

static void print_status_json(const struct tern_status *st, bool powered)
{
	tern_sim_json_status(st, powered, false);
	printf("}\n");
}

static void print_status_text(const struct tern_status *st, bool powered)
{
	printf("state:          %s%s\n", tern_state_name(st->state),
	       powered ? "" : " (device off since a power cut: reboot it)");
	tern_sim_text_slots(st, 0xFu);
	tern_sim_text_last_event(st);
}

static int cmd_status(int argc, char **argv)
{
	if (argc < 1 || argc > 2 || (argc == 2 && strcmp(argv[1], "--json")))
		return usage("status needs DEVDIR [--json]");
	struct simdev *s = calloc(1, sizeof(*s));
	if (!s)
		return fail(TERN_E_NOMEM, NULL);
	int rc = simdev_open(s, argv[0]);
	if (rc) {
		free(s);
		return rc == TERN_E_NOT_FOUND ? 1 : fail(rc, argv[0]);
	}
	if ((rc = simdev_attach(s)) == 0) {
		struct tern_status st;
		tern_agent_status(&s->dev.agent, &st);
		if (argc == 2)
			print_status_json(&st, s->powered);
		else
			print_status_text(&st, s->powered);
	}
	simdev_close(s);
	free(s);
	return rc ? fail(rc, argv[0]) : 0;
}

struct command {
	const char *name;
	int (*run)(int argc, char **argv);
};

static const struct command sim_commands[] = {
    {"init", cmd_init},	    {"install", cmd_install}, {"activate", cmd_activate},
    {"reboot", cmd_reboot}, {"status", cmd_status},   {"mkimage", cmd_mkimage},
    {"cancel", cmd_cancel},
};

int tern_sim_main(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "fleet"))
		return fleet_main(argc - 2, argv + 2);
	/* "ternd sim --help", "ternd sim install --help": the usage, as asked. */
	bool help = argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "help"));
	for (int k = 2; k < argc; k++)
		help = help || !strcmp(argv[k], "--help") || !strcmp(argv[k], "-h");
	if (help) {
		fputs(usage_text, stdout);
		return 0;
	}
	if (argc < 3 || strcmp(argv[1], "sim"))
		return usage("unknown command");
	for (size_t i = 0; i < sizeof(sim_commands) / sizeof(sim_commands[0]); i++)
		if (!strcmp(argv[2], sim_commands[i].name))
			return sim_commands[i].run(argc - 3, argv + 3);
	return usage("unknown sim command");
}
