/*
 * Bootloader backends: BOOT_ORDER / BOOT_A_LEFT / BOOT_B_LEFT in the U-Boot environment
 * or the GRUB environment block (RAUC's convention), or a user's script that answers
 * get-primary, set-primary SLOT, get-state SLOT, set-state SLOT good|bad.
 */
#include "tern/tern_linux.h"

#include "tern/tern_err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char slot_letter[2] = {'A', 'B'};
static const char *const left_name[2] = {"BOOT_A_LEFT", "BOOT_B_LEFT"};

int tern_bootloader_open(struct tern_bootloader_ctx *bl, const struct tern_linux_config *cfg,
			 char *err, size_t err_size)
{
	memset(bl, 0, sizeof(*bl));
	bl->cfg = cfg;
	if (cfg->bootloader == TERN_BOOT_UBOOT)
		return tern_uboot_loc_parse(&bl->uboot, cfg->fw_env_config, err, err_size);
	return 0;
}

void tern_bootloader_close(struct tern_bootloader_ctx *bl)
{
	tern_envvars_free(&bl->vars);
}

/* "A B" -> 0; "B" -> 1; anything else NONE. */
static uint8_t parse_primary(const char *order)
{
	if (!order)
		return TERN_SLOT_NONE;
	while (*order == ' ')
		order++;
	if ((order[0] == 'A' || order[0] == 'B') && (order[1] == ' ' || order[1] == '\0'))
		return (uint8_t)(order[0] - 'A');
	return TERN_SLOT_NONE;
}

static unsigned parse_left(const char *s)
{
	if (!s)
		return 0;
	char *end;
	unsigned long v = strtoul(s, &end, 10);
	if (end == s || *end || s[0] == '-')
		return 0;
	return v > 255 ? 255 : (unsigned)v;
}

static int env_load(struct tern_bootloader_ctx *bl)
{
	int rc = bl->cfg->bootloader == TERN_BOOT_UBOOT
		     ? tern_uboot_env_load(&bl->uboot, &bl->vars)
		     : tern_grubenv_load(bl->cfg->grubenv, &bl->vars);
	return rc == TERN_E_NO_BOOTCTL || rc == TERN_E_MALFORMED || rc == TERN_E_NOT_FOUND ||
		       rc == TERN_E_TRUNCATED
		   ? TERN_E_BOOTENV
		   : rc;
}

/* Runs "SCRIPT ARGS" and returns its first output word in @out. */
static int script_call(struct tern_bootloader_ctx *bl, const char *args, char *out, size_t out_size)
{
	char cmd[TERN_LINUX_CMD_MAX + 64];
	int n = snprintf(cmd, sizeof(cmd), "%s %s", bl->cfg->script, args);
	if (n < 0 || (size_t)n >= sizeof(cmd))
		return TERN_E_TOO_LARGE;
	struct tern_health_result r;
	int rc = tern_linux_run_command(cmd, bl->cfg->dir, 30, &r);
	if (rc)
		return rc;
	if (!r.passed)
		return TERN_E_BOOTENV;
	if (out) {
		const char *p = r.output;
		while (*p == ' ' || *p == '\n' || *p == '\t')
			p++;
		size_t k = 0;
		while (p[k] && p[k] != ' ' && p[k] != '\n' && p[k] != '\t' && k + 1 < out_size)
			k++;
		memcpy(out, p, k);
		out[k] = '\0';
	}
	return 0;
}

int tern_bootloader_read(struct tern_bootloader_ctx *bl, struct tern_bootvars *v)
{
	memset(v, 0, sizeof(*v));
	v->primary = TERN_SLOT_NONE;
	int rc;
	if (bl->cfg->bootloader == TERN_BOOT_SCRIPT) {
		char word[32], args[32];
		if ((rc = script_call(bl, "get-primary", word, sizeof(word))))
			return rc;
		v->primary = parse_primary(word);
		for (int s = 0; s < 2; s++) {
			snprintf(args, sizeof(args), "get-state %c", slot_letter[s]);
			if ((rc = script_call(bl, args, word, sizeof(word))))
				return rc;
			v->left[s] = !strcmp(word, "good") ? bl->cfg->attempts : 0;
		}
		return 0;
	}
	if ((rc = env_load(bl)))
		return rc;
	v->primary = parse_primary(tern_envvars_get(&bl->vars, "BOOT_ORDER"));
	for (int s = 0; s < 2; s++)
		v->left[s] = parse_left(tern_envvars_get(&bl->vars, left_name[s]));
	return 0;
}

/*
 * Script calls in an order that is safe to cut anywhere: slots turn bad first, then good,
 * then the primary changes. A new primary is thus good before it is first, and a slot
 * about to be written is bad before the other one is first.
 */
static int script_write(struct tern_bootloader_ctx *bl, const struct tern_bootvars *want,
			const struct tern_bootvars *cur)
{
	char args[48];
	int rc;
	for (int pass = 0; pass < 2; pass++) {
		bool good = pass == 1;
		for (int s = 0; s < 2; s++) {
			if ((want->left[s] > 0) != good)
				continue;
			/* Setting the primary good again is the script's "mark good". */
			if (good == (cur->left[s] > 0) && !(good && s == want->primary))
				continue;
			snprintf(args, sizeof(args), "set-state %c %s", slot_letter[s],
				 good ? "good" : "bad");
			if ((rc = script_call(bl, args, NULL, 0)))
				return rc;
		}
	}
	if (want->primary != cur->primary && want->primary <= 1) {
		snprintf(args, sizeof(args), "set-primary %c", slot_letter[want->primary]);
		if ((rc = script_call(bl, args, NULL, 0)))
			return rc;
	}
	return 0;
}

int tern_bootloader_write(struct tern_bootloader_ctx *bl, const struct tern_bootvars *want,
			  const struct tern_bootvars *cur)
{
	struct tern_bootvars now;
	int rc;
	if (!cur) {
		if ((rc = tern_bootloader_read(bl, &now)))
			return rc;
		cur = &now;
	}
	if (bl->cfg->bootloader == TERN_BOOT_SCRIPT)
		return script_write(bl, want, cur);
	if (want->primary == cur->primary && want->left[0] == cur->left[0] &&
	    want->left[1] == cur->left[1])
		return 0;
	if (cur != &now && (rc = env_load(bl)))
		return rc;
	char order[4] = {'A', ' ', 'B', '\0'}, num[8];
	if (want->primary == 1) {
		order[0] = 'B';
		order[2] = 'A';
	}
	if ((rc = tern_envvars_set(&bl->vars, "BOOT_ORDER", order)))
		return rc;
	for (int s = 0; s < 2; s++) {
		snprintf(num, sizeof(num), "%u", want->left[s]);
		if ((rc = tern_envvars_set(&bl->vars, left_name[s], num)))
			return rc;
	}
	return bl->cfg->bootloader == TERN_BOOT_UBOOT
		   ? tern_uboot_env_store(&bl->uboot, &bl->vars)
		   : tern_grubenv_store(bl->cfg->grubenv, &bl->vars);
}
