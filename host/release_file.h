/* Reading and writing release files on the host: the head, the layout, the chunks. */
#ifndef TERN_HOST_RELEASE_FILE_H
#define TERN_HOST_RELEASE_FILE_H

#include "tern/tern_release.h"

#include <stdint.h>

/* Where one component's index and bytes sit in a release file. */
struct comp_layout {
	uint64_t index_off;
	uint64_t index_len;
	uint64_t bytes_off;
	uint64_t bytes_len;
};

/* An open release file and its head. The head borrows from @buf. */
struct release_file {
	int fd;
	uint64_t file_size;
	uint8_t buf[TERN_SIGNED_MANIFEST_MAX];
	struct tern_release_head head;
	struct comp_layout layout[TERN_MAX_COMPONENTS];
};

/*
 * Opens @path and reads its head; verifies the signature against @kr unless @kr is NULL.
 * On success the caller closes rf->fd with release_file_close(). Errors as
 * tern_release_open(), plus TERN_E_NOT_FOUND and TERN_E_IO.
 */
int release_file_open(struct release_file *rf, const char *path, const struct tern_keyring *kr);

/*
 * Reads the byte-string heads after the manifest and fills rf->layout; checks that the
 * file ends exactly after the last component. Returns 0, TERN_E_TRUNCATED,
 * TERN_E_MALFORMED or TERN_E_TRAILING.
 */
int release_file_layout(struct release_file *rf);

/*
 * Checks component @i: its index against the manifest's digest, then every chunk
 * against the index, on all cores. On TERN_E_DIGEST sets @bad_chunk (UINT64_MAX when
 * the index itself is wrong).
 */
int release_file_check_component(struct release_file *rf, size_t i, uint64_t *bad_chunk);

void release_file_close(struct release_file *rf);

#endif
