/* tern: the operator's host tool. Dispatches "tern GROUP COMMAND ..." through a table. */
#include "host.h"

#include "tern/tern_err.h"
#include "tern/tern_version.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

struct command {
	const char *group;
	const char *name; /* NULL: a command of one word */
	int (*run)(int argc, char **argv);
	const char *summary;
};

static const struct command commands[] = {
    {"key", "generate", cmd_key_generate, "make a signing key pair"},
    {"release", "create", cmd_release_create, "make a signed release"},
    {"release", "inspect", cmd_release_inspect, "show what a release holds"},
    {"release", "verify", cmd_release_verify, "check a release's signature and every byte"},
    {"publish", NULL, cmd_publish, "put a release into the MQTT broker (retained, resumable)"},
    {"deploy", NULL, cmd_deploy, "tell devices what to run (signed desired state)"},
    {"devices", NULL, cmd_devices, "the inventory: what each device runs and reports"},
    {"watch", NULL, cmd_watch, "record device states and events as they come"},
    {"rollout", "create", cmd_rollout_create, "plan a staged rollout: waves, bake, gates"},
    {"rollout", "run", cmd_rollout_run, "drive a rollout (safe to stop and run again)"},
    {"rollout", "status", cmd_rollout_status, "where rollouts stand, wave by wave"},
    {"rollout", "pause", cmd_rollout_pause, "stop deploying new waves"},
    {"rollout", "resume", cmd_rollout_resume, "continue a paused rollout"},
    {"rollout", "approve", cmd_rollout_approve, "start the next wave (--approve-each-wave)"},
    {"rollout", "pace", cmd_rollout_pace, "how fast a rollout sends its commands (--rate)"},
    {"rollout", "abort", cmd_rollout_abort, "stop for good; --revert sends devices back"},
    {"report", NULL, cmd_report, "the deployment record of a rollout (md or html)"},
    {"usb", "list", cmd_usb_list, "every tern device on USB: port, serial, board, version, state"},
    {"usb", "status", cmd_usb_status, "one USB device's state (--serial S)"},
    {"usb", "flash", cmd_usb_flash, "install a release on a USB device, trial-boot it, report"},
    {"usb", "confirm", cmd_usb_confirm, "confirm the release a USB device runs on trial"},
    {"usb", "provision", cmd_usb_provision, "give a blank USB device its id, keys, config"},
    {"usb", "reboot", cmd_usb_reboot, "reboot a USB device and wait until it is back"},
};

int host_fail(const char *what, int rc)
{
	if (what)
		fprintf(stderr, "tern: %s: %s\n", what, tern_strerror(rc));
	else
		fprintf(stderr, "tern: %s\n", tern_strerror(rc));
	return 1;
}

int host_usage(const char *cmd, const char *msg)
{
	fprintf(stderr, "tern %s: %s (see 'tern %s --help')\n", cmd, msg ? msg : "bad arguments",
		cmd);
	return 2;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: tern COMMAND [ARGS]   (tern COMMAND --help for details)\n\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  tern %-8s %-9s %s\n", commands[i].group,
			commands[i].name ? commands[i].name : "", commands[i].summary);
}

/* The commands of one group (`tern usb --help`). */
static void group_usage(FILE *f, const char *group)
{
	fprintf(f, "usage: tern %s COMMAND [ARGS]   (tern %s COMMAND --help for details)\n\n",
		group, group);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(commands[i].group, group))
			fprintf(f, "  tern %s %-9s %s\n", group, commands[i].name,
				commands[i].summary);
}

int main(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
	    !strcmp(argv[1], "help")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("tern %s\n", TERN_VERSION);
		return 0;
	}
	bool group_known = false;
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(argv[1], commands[i].group))
			continue;
		group_known = true;
		/* A command without a sub-command takes its arguments right after its name. */
		if (!commands[i].name)
			return commands[i].run(argc - 1, argv + 1);
		if (argc >= 3 && !strcmp(argv[2], commands[i].name))
			return commands[i].run(argc - 2, argv + 2);
	}
	if (group_known && argc >= 3 && (!strcmp(argv[2], "--help") || !strcmp(argv[2], "-h"))) {
		group_usage(stdout, argv[1]);
		return 0;
	}
	if (group_known) {
		fprintf(stderr, "tern %s: unknown or missing command; one of:", argv[1]);
		const char *sep = " ";
		for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
			if (strcmp(argv[1], commands[i].group))
				continue;
			fprintf(stderr, "%s%s", sep, commands[i].name);
			sep = ", ";
		}
		fprintf(stderr, " (see 'tern %s --help')\n", argv[1]);
	} else
		fprintf(stderr, "tern: unknown command '%s' (see 'tern --help')\n", argv[1]);
	return 2;
}
