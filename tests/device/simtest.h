/* Test fixture: a memory-backed sim device with a factory image and a signing key. */
#ifndef TERN_TEST_SIMTEST_H
#define TERN_TEST_SIMTEST_H

#include "relbuild.h"

#include "tern/tern_sim.h"
#include "tern/tern_sign.h"

#include <stddef.h>
#include <stdint.h>

struct simtest {
	struct tern_sim_geometry geo;
	uint8_t *mem;
	uint64_t mem_len;
	struct tern_sim_device *dev;
	struct tern_signer signer;
	struct tern_keyring kr;
	uint32_t chunk_size;
};

/* A device with slots of @slot_size bytes and @sector-byte sectors, provisioned with a
 * healthy image "1.0.0" of @img_size bytes, booted. Returns 0 or an error. */
int simtest_setup(struct simtest *t, uint64_t slot_size, uint32_t sector, uint64_t img_size);
void simtest_teardown(struct simtest *t);

/* Reopens the device over the same flash (a new agent, as after a power cycle). */
void simtest_reinit(struct simtest *t);

/* A release of one sim firmware image (and a config blob when @cfg is not NULL), signed
 * with @sg (the fixture's key when NULL). Caller frees the result. */
uint8_t *simtest_release(struct simtest *t, const struct tern_signer *sg, const char *version,
			 uint64_t seq, uint32_t sc, enum tern_sim_health health, uint64_t img_size,
			 const uint8_t *cfg, size_t cfg_len, size_t *len, size_t *head_len);

/* The same with a manifest for @board and @trial_attempts (0: default). */
uint8_t *simtest_release_ex(struct simtest *t, const struct tern_signer *sg, const char *board,
			    const char *version, uint64_t seq, uint32_t sc,
			    enum tern_sim_health health, uint64_t img_size, const uint8_t *cfg,
			    size_t cfg_len, uint32_t trial_attempts, size_t *len, size_t *head_len);

#endif
