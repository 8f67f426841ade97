/*
 * Staged rollouts: the controller and what the rollout commands and `tern report`
 * share. Model, write order and gates: docs/rollout.md.
 */
#ifndef TERN_HOST_ROLLOUT_H
#define TERN_HOST_ROLLOUT_H

#include "db.h"
#include "rollout_plan.h"

#include "tern/tern_manifest.h"

#include <stdbool.h>
#include <stdint.h>

/* A rollout as stored in the `rollouts` table. */
struct rollout {
	char name[ROLLOUT_NAME_MAX + 1];
	char release_id[TERN_RELEASE_ID_MAX + 1];
	char version[TERN_VERSION_MAX + 1];
	uint64_t sequence;
	char notes[TERN_NOTES_MAX + 1];
	char key_file[512];
	char targets[256];
	char waves_spec[256];
	uint64_t bake_s, device_timeout_s;
	uint32_t max_fail_ppm, min_success_ppm;
	bool approve_each;
	bool activate_together;
	uint32_t rate;	/* desired states a second within a wave; 0: all at once */
	char state[24]; /* created, running, waiting-approval, paused, done, aborted */
	char reason[256];
	int64_t current_wave, n_waves;
	int64_t revert; /* 0 none, 1 requested, 2 finished */
	double created_at, updated_at;
};

/* Loads rollout @name. TERN_E_NOT_FOUND (printed) when there is none. */
int rollout_load(struct db *db, const char *name, struct rollout *r);

/* Per-wave numbers as `rollout status` and `tern report` show them. */
struct rollout_wave_row {
	int64_t wave;
	char state[16];
	struct rollout_counts c;
	uint64_t withdrawn; /* commands the abort took back before devices started them */
	uint64_t queued;    /* members whose command waits for its turn (--rate) */
	double started_at, reported_at, bake_until, gated_at;
};

/*
 * Calls @fn for each wave of @name in order. Returns 0, TERN_E_DB, or @fn's non-zero
 * return.
 */
int rollout_waves(struct db *db, const char *name,
		  int (*fn)(void *ctx, const struct rollout_wave_row *w), void *ctx);

/* The person behind a command: @by, else $USER, else "unknown". */
const char *rollout_actor(const char *by);

#endif
