/*
 * libFuzzer target for what the Linux board reads from outside: the U-Boot
 * environment's data area, GRUB's environment block, the config file and the
 * fw_env.config file. The first byte picks the reader (mod 4), the rest is its input.
 * Properties besides the sanitizers: a parsed environment written back (U-Boot data
 * area, GRUB block) parses to the same variables.
 */
#include "tern/tern_bootenv.h"
#include "tern/tern_err.h"
#include "tern/tern_linux.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_uboot(const uint8_t *in, size_t len)
{
	struct tern_envvars v = {0}, again = {0};
	if (tern_uboot_env_parse(in, len, &v) == 0) {
		/* The data area as U-Boot stores it: the entries, then an empty one. */
		char *area = calloc(1, v.len + 1);
		if (area) {
			if (v.len)
				memcpy(area, v.buf, v.len);
			if (tern_uboot_env_parse(area, v.len + 1, &again) != 0 ||
			    again.len != v.len || (v.len && memcmp(again.buf, v.buf, v.len)))
				abort();
			free(area);
		}
	}
	tern_envvars_free(&v);
	tern_envvars_free(&again);
}

static void check_grub(const uint8_t *in, size_t len)
{
	static const char header[] = "# GRUB Environment Block\n";
	char blk[TERN_GRUBENV_SIZE], out[TERN_GRUBENV_SIZE];
	/* The header first (most inputs would stop there), the input, '#' padding. */
	size_t h = sizeof(header) - 1, n = len < sizeof(blk) - h ? len : sizeof(blk) - h;
	memcpy(blk, header, h);
	memcpy(blk + h, in, n);
	memset(blk + h + n, '#', sizeof(blk) - h - n);
	struct tern_envvars v = {0}, again = {0};
	if (tern_grubenv_parse(blk, sizeof(blk), &v) == 0 &&
	    tern_grubenv_format(&v, blk, out) == 0) {
		if (tern_grubenv_parse(out, sizeof(out), &again) != 0 || again.len != v.len ||
		    (v.len && memcmp(again.buf, v.buf, v.len)))
			abort();
	}
	tern_envvars_free(&v);
	tern_envvars_free(&again);
}

static void check_text(const uint8_t *in, size_t len, bool config)
{
	char err[512];
	FILE *f = fmemopen((void *)(uintptr_t)in, len, "r");
	if (!f)
		return;
	if (config) {
		struct tern_linux_config *c = malloc(sizeof(*c));
		if (c && tern_linux_config_read(c, "/etc/tern/ternd.conf", f, err, sizeof(err)) &&
		    strncmp(err, "/etc/tern/ternd.conf:", 21))
			abort(); /* every refusal names the file and line */
		free(c);
	} else {
		struct tern_uboot_loc loc;
		if (tern_uboot_loc_read(&loc, "/etc/fw_env.config", f, err, sizeof(err)) == 0 &&
		    (loc.n_copies < 1 || loc.n_copies > 2))
			abort();
	}
	fclose(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	switch (data[0] % 4) {
	case 0:
		check_uboot(data + 1, size - 1);
		break;
	case 1:
		check_grub(data + 1, size - 1);
		break;
	case 2:
		check_text(data + 1, size - 1, true);
		break;
	default:
		check_text(data + 1, size - 1, false);
		break;
	}
	return 0;
}
