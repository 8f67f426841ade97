/* Small helpers shared by the host commands: files, sizes, hex, JSON. */
#ifndef TERN_HOST_UTIL_H
#define TERN_HOST_UTIL_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

/*
 * Reads a whole small file (at most @max bytes) into a new heap buffer, NUL-terminated
 * for convenience. On success the caller owns *@out and frees it. Returns 0,
 * TERN_E_NOT_FOUND, TERN_E_IO, TERN_E_TOO_LARGE or TERN_E_NOMEM.
 */
int host_read_file(const char *path, size_t max, uint8_t **out, size_t *len);

/*
 * Writes @len bytes to a new file @path with @mode, refusing to replace an existing
 * file (TERN_E_EXISTS). The file is written under a temporary name, synced and renamed,
 * so a crash leaves either no file or the whole file.
 */
int host_write_new_file(const char *path, const void *data, size_t len, mode_t mode);

/* Whole reads and writes at an offset: tern_pread_full/tern_pwrite_full (posix/). */
#include "tern/tern_fdio.h"

/*
 * Parses a size such as "4096", "16K", "16KiB", "1M" (binary multiples). Returns 0 or
 * TERN_E_USAGE.
 */
int host_parse_size(const char *s, uint64_t *out);

/* The number of the SIGINT or SIGTERM that arrived since host_catch_stop_signals(), else 0. */
extern volatile sig_atomic_t host_stop_signal;

/*
 * From now on SIGINT and SIGTERM set host_stop_signal instead of ending the process, so
 * a long-running command stops at its next check and says how far it got. Without
 * SA_RESTART: a sleep or poll in progress returns early.
 */
void host_catch_stop_signals(void);

/* Parses a decimal unsigned integer that fits @max. Returns 0 or TERN_E_USAGE. */
int host_parse_u64(const char *s, uint64_t max, uint64_t *out);

/* Writes 2*@n lowercase hex digits and a NUL to @out (size >= 2*n+1). */
void host_hex(const uint8_t *d, size_t n, char *out);

/* Formats a byte count for people ("256.0 MiB"). Returns @out. */
const char *host_human_size(uint64_t n, char *out, size_t size);

/* Writes @s as a JSON string literal (quoted, escaped) to @f; @len bytes. */
void host_json_str(FILE *f, const char *s, size_t len);

#endif
