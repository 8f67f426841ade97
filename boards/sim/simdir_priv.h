/*
 * A sim device kept in a folder (private to boards/sim: ternd's `sim` commands and
 * `ternd fleet`). Small helpers for the folder's key=value files live here too.
 */
#ifndef TERN_SIMDIR_PRIV_H
#define TERN_SIMDIR_PRIV_H

#include "tern/tern_sim.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SIMDEV_MAX_BOOTS 16 /* boots before a boot loop counts as "no image" */

/* A sim device opened from its folder. */
struct simdev {
	char dir[2048];
	bool powered; /* false after a simulated power cut, until the next reboot */
	struct tern_sim_geometry geo;
	struct tern_sim_device dev;
};

/* What `ternd sim init` makes. */
struct simdev_params {
	const char *dir;
	const char *const *keys; /* public key files (PEM) for the keyring */
	int n_keys;
	const char *board;
	uint64_t slot_size;
	uint64_t image_size; /* factory image, <= slot_size */
	const char *version; /* factory image version */
};

/* Parses "123", "64K", "8M", "1G" (binary units). */
bool parse_size(const char *s, uint64_t *out);
bool parse_u64(const char *s, uint64_t *out);
/* @dir/@name into @out; TERN_E_TOO_LARGE when it does not fit. */
int path_join(char *out, size_t size, const char *dir, const char *name);
/* Reads a whole small file into @buf (NUL-terminated). TERN_E_NOT_FOUND, _IO, _TOO_LARGE. */
int read_small(const char *path, char *buf, size_t size, size_t *len);
/* Replaces @path with @text (through a temporary file and rename). */
int write_small(const char *path, const char *text);

/*
 * Creates a device in @p->dir (made if missing): keyring, geometry, an erased flash with
 * a healthy factory image in slot A, booted once. TERN_E_EXISTS when a device is
 * already there. @log (may be NULL) gets the boot lines.
 */
int simdev_create(const struct simdev_params *p, tern_sim_log_fn log, void *log_arg);
/* Opens DIR: config, keyring, flash. The agent is attached by the caller. */
int simdev_open(struct simdev *s, const char *dir);
/* Attaches the agent to what runs now (the "running" file). Sets s->powered. */
int simdev_attach(struct simdev *s);
/* Writes the "running" file: the slots booted, the boot count, powered or not. */
int save_running(const struct simdev *s);
/* Closes the flash (the caller frees @s). */
void simdev_close(struct simdev *s);

#endif
