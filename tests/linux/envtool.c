/*
 * ternd-envtool: tern's U-Boot and GRUB environment code driven from the shell, so the
 * tests can cross-check it with fw_printenv/fw_setenv and grub-editenv.
 *   ternd-envtool uboot FW_ENV_CONFIG list | get NAME | set NAME [VALUE] | bump NAME N
 *   ternd-envtool grub GRUBENV list | get NAME | set NAME [VALUE] | bump NAME N
 * "set NAME" without VALUE deletes NAME; "bump NAME N" stores N times (NAME=1..N).
 */
#include "tern/tern_bootenv.h"

#include "tern/tern_err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct env {
	bool uboot;
	const char *path;
	struct tern_uboot_loc loc;
};

static int load(struct env *e, struct tern_envvars *v)
{
	return e->uboot ? tern_uboot_env_load(&e->loc, v) : tern_grubenv_load(e->path, v);
}

static int store(struct env *e, const struct tern_envvars *v)
{
	return e->uboot ? tern_uboot_env_store(&e->loc, v) : tern_grubenv_store(e->path, v);
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: ternd-envtool uboot|grub FILE list|get|set|bump ...\n");
		return 2;
	}
	struct env e = {!strcmp(argv[1], "uboot"), argv[2], {0}};
	struct tern_envvars v = {0};
	char err[512];
	int rc = 0;
	if (e.uboot && (rc = tern_uboot_loc_parse(&e.loc, e.path, err, sizeof(err)))) {
		fprintf(stderr, "envtool: %s\n", err);
		return 1;
	}
	const char *cmd = argv[3];
	if (!strcmp(cmd, "list") && argc == 4) {
		if ((rc = load(&e, &v)) == 0)
			for (size_t pos = 0; pos < v.len; pos += strlen(v.buf + pos) + 1)
				printf("%s\n", v.buf + pos);
	} else if (!strcmp(cmd, "get") && argc == 5) {
		if ((rc = load(&e, &v)) == 0) {
			const char *val = tern_envvars_get(&v, argv[4]);
			if (!val)
				rc = TERN_E_NOT_FOUND;
			else
				printf("%s\n", val);
		}
	} else if (!strcmp(cmd, "set") && (argc == 5 || argc == 6)) {
		rc = load(&e, &v);
		if (rc == TERN_E_NO_BOOTCTL || rc == TERN_E_NOT_FOUND)
			rc = 0; /* a fresh environment */
		if (rc == 0 &&
		    (rc = tern_envvars_set(&v, argv[4], argc == 6 ? argv[5] : NULL)) == 0)
			rc = store(&e, &v);
	} else if (!strcmp(cmd, "bump") && argc == 6) {
		long n = strtol(argv[5], NULL, 10);
		char num[32];
		for (long i = 1; i <= n && rc == 0; i++) {
			snprintf(num, sizeof(num), "%ld", i);
			if ((rc = load(&e, &v)) == 0 &&
			    (rc = tern_envvars_set(&v, argv[4], num)) == 0)
				rc = store(&e, &v);
		}
	} else {
		fprintf(stderr, "envtool: bad command\n");
		return 2;
	}
	tern_envvars_free(&v);
	if (rc) {
		fprintf(stderr, "envtool: %s: %s (%s)\n", cmd, tern_strerror(rc), tern_errname(rc));
		return 1;
	}
	return 0;
}
