/*
 * Chunk hashing spread over every core: the host's half of the chunk index (DESIGN.md
 * "The release"). Memory stays bounded whatever the component size: each worker holds
 * one batch of about 1 MiB.
 */
#ifndef TERN_HOST_CHUNKS_H
#define TERN_HOST_CHUNKS_H

#include <stdint.h>

enum chunks_mode {
	CHUNKS_CREATE, /* read src, hash, copy bytes to dst, write digests to the index */
	CHUNKS_VERIFY, /* read src, hash, compare with the digests in the index */
};

/* One component's chunks. File descriptors stay owned by the caller. */
struct chunks_job {
	int src_fd; /* the component's bytes are at src_off */
	uint64_t src_off;
	uint64_t size; /* component size in bytes */
	uint32_t chunk_size;
	int dst_fd; /* CHUNKS_CREATE: bytes are copied to dst_off */
	uint64_t dst_off;
	int idx_fd; /* the chunk index (n * 32 bytes) at idx_off */
	uint64_t idx_off;
	uint64_t bad_chunk; /* out: on TERN_E_DIGEST, the first chunk found bad */
};

/*
 * Runs @job on @n_threads threads (0: one per online CPU, or $TERN_THREADS). Returns
 * 0, TERN_E_DIGEST (verify: a chunk does not match; see bad_chunk), TERN_E_TRUNCATED,
 * TERN_E_IO or TERN_E_NOMEM.
 */
int chunks_run(struct chunks_job *job, enum chunks_mode mode, unsigned n_threads);

/* The thread count chunks_run() uses for @n_threads == 0. */
unsigned chunks_default_threads(void);

#endif
