/* Test helper: builds signed releases in memory with libternproto (no host CLI needed). */
#ifndef TERN_TEST_RELBUILD_H
#define TERN_TEST_RELBUILD_H

#include "tern/tern_manifest.h"
#include "tern/tern_sign.h"

#include <stddef.h>
#include <stdint.h>

struct relbuild_comp {
	const char *name;
	enum tern_component_kind kind;
	const uint8_t *data;
	size_t len;
};

struct relbuild {
	const char *version;
	uint64_t sequence;
	uint32_t security_counter;
	const char *board;
	uint32_t chunk_size;	 /* 0: TERN_CHUNK_DEFAULT */
	uint32_t trial_attempts; /* 0: the default policy */
	struct relbuild_comp comp[TERN_MAX_COMPONENTS];
	size_t n_comp;
};

/* Upper bound of the release's size in bytes. */
size_t relbuild_size(const struct relbuild *rb);

/*
 * Writes the release (COSE_Sign1 of the manifest, then per component bstr(index) and
 * bstr(bytes)) into @out. Returns bytes written, or 0 on failure. Sets @head_len (may be
 * NULL) to the length of the signed manifest.
 */
size_t relbuild_make(const struct tern_signer *sg, const struct relbuild *rb, uint8_t *out,
		     size_t size, size_t *head_len);

#endif
