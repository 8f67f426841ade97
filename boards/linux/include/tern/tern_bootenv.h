/*
 * Bootloader environments as their owners write them: the U-Boot environment (the
 * format of U-Boot and libubootenv's fw_printenv/fw_setenv) and GRUB's 1024-byte
 * environment block (grub-editenv). Both are lists of NAME=value variables; a store
 * keeps every variable it read, so ternd only ever changes the ones it owns.
 *
 * U-Boot: each copy is CRC32 (little-endian, over the data area) [+ one flag byte when
 * there are two copies] + "NAME=value\0...NAME=value\0\0" padded with zeros to the copy's
 * size. With two copies the valid one with the newer flag (incremented modulo 256 at
 * each store) wins, and a store writes the other copy, so a torn store leaves the
 * previous environment valid. Where the copies live comes from an fw_env.config file.
 *
 * GRUB: "# GRUB Environment Block\n", then "NAME=value\n" lines, padded with '#' to 1024
 * bytes. A store writes a new file and renames it over the old one.
 */
#ifndef TERN_BOOTENV_H
#define TERN_BOOTENV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Variables in read order: "NAME=value\0" entries back to back in a heap buffer. */
struct tern_envvars {
	char *buf;
	size_t len;
	size_t cap;
};

/* Frees what @v holds and leaves it empty (reusable). */
void tern_envvars_free(struct tern_envvars *v);

/* Returns the value of @name (borrowed from @v, valid until it changes), or NULL. */
const char *tern_envvars_get(const struct tern_envvars *v, const char *name);

/* Sets @name to @value (appended when new), or deletes it when @value is NULL.
 * Returns 0, TERN_E_INVAL for a name with '=' or an empty one, or TERN_E_NOMEM. */
int tern_envvars_set(struct tern_envvars *v, const char *name, const char *value);

/* Where a U-Boot environment lives: one or two copies (PATH OFFSET SIZE). */
struct tern_uboot_loc {
	unsigned n_copies;
	char path[2][4096];
	uint64_t off[2];
	uint64_t size[2];
};

/*
 * Parses an fw_env.config file: per line "PATH OFFSET SIZE [SECTOR [COUNT]]" (numbers
 * decimal or 0x hex; '#' starts a comment). Relative paths are taken from the config
 * file's folder. On a bad file returns TERN_E_MALFORMED and writes "FILE:LINE: reason"
 * into @err (@err_size bytes).
 */
int tern_uboot_loc_parse(struct tern_uboot_loc *loc, const char *config_path, char *err,
			 size_t err_size);

/* The same from an open file @f (named @config_path in errors; not closed). */
int tern_uboot_loc_read(struct tern_uboot_loc *loc, const char *config_path, FILE *f, char *err,
			size_t err_size);

/* Parses a copy's data area (@len bytes after CRC and flag) into @v (emptied first).
 * TERN_E_MALFORMED when a variable runs past the end. No CRC check: see load. */
int tern_uboot_env_parse(const void *data_area, size_t len, struct tern_envvars *v);

/*
 * Reads the current environment into @v (emptied first). Returns 0, TERN_E_NO_BOOTCTL
 * when no copy has a good CRC, TERN_E_MALFORMED for a copy too small or with a
 * variable that runs past its end, or TERN_E_IO / TERN_E_NOT_FOUND.
 */
int tern_uboot_env_load(const struct tern_uboot_loc *loc, struct tern_envvars *v);

/*
 * Writes @v as the new environment: into the copy that is not current (flag + 1) when
 * there are two, in place when there is one; then fdatasync. Returns 0, TERN_E_TOO_LARGE
 * when the variables do not fit, or TERN_E_IO.
 */
int tern_uboot_env_store(const struct tern_uboot_loc *loc, const struct tern_envvars *v);

#define TERN_GRUBENV_SIZE 1024u

/* Parses a GRUB environment block of exactly TERN_GRUBENV_SIZE bytes into @v (emptied
 * first). TERN_E_MALFORMED for a wrong header, a line without '=', a NUL byte, or a
 * variable that runs past the block. */
int tern_grubenv_parse(const void *block, size_t len, struct tern_envvars *v);

/* Reads a GRUB environment block file into @v (as tern_grubenv_parse). */
int tern_grubenv_load(const char *path, struct tern_envvars *v);

/* Writes @v as a block into @block (TERN_GRUBENV_SIZE bytes), keeping the comment lines
 * after the header of @old (a block, or NULL). TERN_E_TOO_LARGE when it does not fit. */
int tern_grubenv_format(const struct tern_envvars *v, const void *old, void *block);

/* Writes @v as a GRUB environment block (new file, fsync, rename, fsync of the folder).
 * TERN_E_TOO_LARGE when the variables do not fit in 1024 bytes. */
int tern_grubenv_store(const char *path, const struct tern_envvars *v);

#endif
