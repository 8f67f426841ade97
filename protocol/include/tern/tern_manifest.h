/*
 * The release manifest: a CBOR map with small integer keys (docs/FORMAT.md), and the
 * chunk index that binds each component's bytes to it.
 *
 * Decoding never allocates and reads only the caller's buffer. Every field is bounded;
 * unknown keys are skipped; keys listed as critical (key 0) must be known.
 */
#ifndef TERN_MANIFEST_H
#define TERN_MANIFEST_H

#include "tern/tern_sha256.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TERN_FORMAT_VERSION 1
#define TERN_MAX_COMPONENTS 4
#define TERN_MAX_BOARDS	    4
#define TERN_NAME_MAX	    32	 /* component name, slot group, board id (bytes) */
#define TERN_VERSION_MAX    32	 /* human version string (bytes) */
#define TERN_RELEASE_ID_MAX 64	 /* release id (bytes) */
#define TERN_NOTES_MAX	    4096 /* release notes (bytes) */
#define TERN_MANIFEST_MAX   8192 /* encoded manifest (bytes) */
#define TERN_CHUNK_MIN	    1024u
#define TERN_CHUNK_MAX	    (1024u * 1024u)
#define TERN_CHUNK_DEFAULT  (16u * 1024u)
#define TERN_COMPONENT_MAX  ((uint64_t)1 << 40) /* 1 TiB */

/* Largest signed manifest (COSE_Sign1 around a TERN_MANIFEST_MAX payload). */
#define TERN_SIGNED_MANIFEST_MAX (TERN_MANIFEST_MAX + 128)

/* Manifest map keys. */
enum tern_manifest_key {
	TERN_MK_CRITICAL = 0,
	TERN_MK_FORMAT = 1,
	TERN_MK_RELEASE_ID = 2,
	TERN_MK_VERSION = 3,
	TERN_MK_SEQUENCE = 4,
	TERN_MK_SECURITY_COUNTER = 5,
	TERN_MK_BOARDS = 6,
	TERN_MK_CHUNK_SIZE = 7,
	TERN_MK_COMPONENTS = 8,
	TERN_MK_NOTES = 9,
	TERN_MK_CREATED = 10,
	TERN_MK_EARLY_LIFE = 11,
	TERN_MK__COUNT
};

/* Component map keys. */
enum tern_component_key {
	TERN_CK_NAME = 1,
	TERN_CK_KIND = 2,
	TERN_CK_SLOT_GROUP = 3,
	TERN_CK_SIZE = 4,
	TERN_CK_INDEX_DIGEST = 5,
};

/* Early-life policy map keys. */
enum tern_early_life_key {
	TERN_EK_TRIAL_ATTEMPTS = 1,
	TERN_EK_HEALTH_TIMEOUT = 2,
	TERN_EK_SETTLE = 3,
};

enum tern_component_kind {
	TERN_KIND_FIRMWARE = 0,
	TERN_KIND_CONFIG = 1,
};

struct tern_component {
	char name[TERN_NAME_MAX + 1];
	enum tern_component_kind kind;
	char slot_group[TERN_NAME_MAX + 1];
	uint64_t size;
	uint8_t index_digest[TERN_SHA256_LEN]; /* SHA-256 of the chunk index */
};

struct tern_early_life {
	uint32_t trial_attempts;   /* trial boots before falling back */
	uint32_t health_timeout_s; /* health check must pass within this */
	uint32_t settle_s;	   /* and the device must stay up this long */
};

#define TERN_EARLY_LIFE_DEFAULT                                                                    \
	{                                                                                          \
		3, 60, 10                                                                          \
	}

struct tern_manifest {
	uint32_t format_version;
	char release_id[TERN_RELEASE_ID_MAX + 1];
	char version[TERN_VERSION_MAX + 1];
	uint64_t sequence;
	uint32_t security_counter;
	char boards[TERN_MAX_BOARDS][TERN_NAME_MAX + 1];
	size_t n_boards;
	uint32_t chunk_size;
	struct tern_component components[TERN_MAX_COMPONENTS];
	size_t n_components;
	/* Release notes, UTF-8, not NUL-terminated. After decoding, borrowed from the
	 * decoded buffer; for encoding, owned by the caller. NULL when absent. */
	const char *notes;
	size_t notes_len;
	uint64_t created; /* seconds since 1970 UTC */
	struct tern_early_life early_life;
};

/*
 * Checks every bound and rule of a manifest: names and ids in [A-Za-z0-9._-], version
 * and notes well-formed UTF-8 (as CBOR text must be) without NUL bytes, at least
 * one board and one component, unique component names, chunk size a power of two in
 * [TERN_CHUNK_MIN, TERN_CHUNK_MAX], sizes in (0, TERN_COMPONENT_MAX]. Returns 0,
 * TERN_E_MALFORMED or TERN_E_TOO_LARGE.
 */
int tern_manifest_check(const struct tern_manifest *m);

/* Encodes @m into @buf (canonical: keys in ascending order, shortest heads). Returns
 * bytes written, or 0 when @m fails tern_manifest_check() or @size is too small. */
size_t tern_manifest_encode(const struct tern_manifest *m, uint8_t *buf, size_t size);

/*
 * Decodes and checks a manifest from exactly @len bytes at @buf. @m->notes borrows from
 * @buf. Returns 0, TERN_E_NOT_CBOR, TERN_E_TRUNCATED, TERN_E_MALFORMED (wrong types,
 * missing or duplicate keys, trailing bytes), TERN_E_TOO_LARGE, TERN_E_FORMAT_VERSION,
 * TERN_E_CRITICAL.
 */
int tern_manifest_decode(struct tern_manifest *m, const uint8_t *buf, size_t len);

/* True when @board is among the manifest's compatible boards. */
bool tern_manifest_has_board(const struct tern_manifest *m, const char *board);

/* Number of chunks of a component of @size bytes at @chunk_size (the last may be short). */
uint64_t tern_chunk_count(uint64_t size, uint32_t chunk_size);

/* Length of chunk @i of a component (chunk_size, or less for the last one). */
uint32_t tern_chunk_len(uint64_t size, uint32_t chunk_size, uint64_t i);

/* Size in bytes of a component's chunk index; UINT64_MAX when that does not fit in 64
 * bits (only for chunk sizes far below TERN_CHUNK_MIN). */
uint64_t tern_index_size(uint64_t size, uint32_t chunk_size);

#endif
