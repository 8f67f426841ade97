/*
 * Whole reads and writes at an offset on a POSIX file descriptor, for the host tool and
 * the Linux board (never the device core, which has no POSIX). The caller owns @fd and
 * the buffer; nothing is kept.
 */
#ifndef TERN_FDIO_H
#define TERN_FDIO_H

#include <stddef.h>
#include <stdint.h>

/* Reads exactly @len bytes at @off (retrying short reads and EINTR). Returns 0,
 * TERN_E_TRUNCATED when the file ends first, or TERN_E_IO (errno set). */
int tern_pread_full(int fd, void *buf, size_t len, uint64_t off);

/* Writes exactly @len bytes at @off (retrying short writes and EINTR). Returns 0 or
 * TERN_E_IO (errno set). */
int tern_pwrite_full(int fd, const void *buf, size_t len, uint64_t off);

#endif
