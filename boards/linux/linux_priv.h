/* File helpers shared by the Linux board's modules. */
#ifndef TERN_LINUX_PRIV_H
#define TERN_LINUX_PRIV_H

#include <stddef.h>
#include <stdint.h>

/* Whole reads and writes at an offset: tern_pread_full/tern_pwrite_full (posix/). */
#include "tern/tern_fdio.h"

/* @name taken from the folder of @base_file unless absolute. TERN_E_TOO_LARGE. */
int tern_linux_path_resolve(char *out, size_t size, const char *base_file, const char *name);

/* Replaces @path with @len bytes atomically: temporary file, fsync, rename, fsync of
 * the folder. */
int tern_linux_replace_file(const char *path, const void *data, size_t len);

#endif
