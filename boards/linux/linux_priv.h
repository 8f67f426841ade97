/* File helpers shared by the Linux board's modules. */
#ifndef TERN_LINUX_PRIV_H
#define TERN_LINUX_PRIV_H

#include <stddef.h>
#include <stdint.h>

/* Reads exactly @len bytes at @off. TERN_E_TRUNCATED at end of file, TERN_E_IO. */
int tern_linux_pread_all(int fd, void *buf, size_t len, uint64_t off);

/* Writes exactly @len bytes at @off. TERN_E_IO on failure. */
int tern_linux_pwrite_all(int fd, const void *buf, size_t len, uint64_t off);

/* @name taken from the folder of @base_file unless absolute. TERN_E_TOO_LARGE. */
int tern_linux_path_resolve(char *out, size_t size, const char *base_file, const char *name);

/* Replaces @path with @len bytes atomically: temporary file, fsync, rename, fsync of
 * the folder. */
int tern_linux_replace_file(const char *path, const void *data, size_t len);

#endif
