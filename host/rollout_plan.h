/*
 * The pure logic of a staged rollout (no database, no broker): durations, ratios, the
 * wave plan, the deterministic order of members, and the gate that decides whether a
 * wave promotes, waits, or pauses the rollout. Ratios are integers in parts per million
 * so that "5%" compares exactly. Unit-tested in tests/rollout/test_rollout_plan.c.
 */
#ifndef TERN_HOST_ROLLOUT_PLAN_H
#define TERN_HOST_ROLLOUT_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ROLLOUT_PPM	  1000000u /* 100% */
#define ROLLOUT_MAX_WAVES 32
#define ROLLOUT_MAX_SECS  (366u * 24u * 3600u) /* a duration is at most a year */
#define ROLLOUT_NAME_MAX  64

/*
 * Parses a duration: "0", "45" or "45s", "10m", "2h", "1d". Returns 0 with *@secs set, or
 * TERN_E_USAGE.
 */
int rollout_parse_duration(const char *s, uint64_t *secs);

/* Formats @secs for people ("0s", "45s", "10m", "2h30m"). Returns @out. */
const char *rollout_format_duration(uint64_t secs, char *out, size_t size);

/*
 * Parses a ratio "5%", "2.5%", "100%" (up to 4 decimals) into parts per million.
 * Returns 0 or TERN_E_USAGE (not a percentage, or above 100%).
 */
int rollout_parse_ratio(const char *s, uint32_t *ppm);

/* Formats @ppm as a percentage ("5%", "2.5%"). Returns @out. */
const char *rollout_format_ratio(uint32_t ppm, char *out, size_t size);

/* Formats a wave's pace for people ("340 desired states a second"). Returns @out. */
const char *rollout_format_rate(uint32_t rate, char *out, size_t size);

/* One entry of --waves: a count of devices, or a share of the target set (ppm). */
struct rollout_wave_spec {
	bool percent;
	uint64_t value; /* devices, or ppm when percent */
};

/*
 * Parses "1,10%,50%,100%": each entry is how many devices of the target set have been
 * deployed once that wave is done (cumulative), as a count or a percentage. Entries
 * must not decrease. Returns 0 with *@n set, or TERN_E_USAGE.
 */
int rollout_parse_waves(const char *s, struct rollout_wave_spec *w, size_t max, size_t *n);

/*
 * The size of each wave for a target set of @n_targets devices: a percentage is
 * rounded up (10% of 5 is 1, so no wave is empty by rounding), counts above the set are
 * cut to it, and waves that would add nobody are dropped. Writes at most @max sizes to
 * @sizes and sets *@n_out. Returns 0, or TERN_E_INVAL when no wave has a device.
 */
int rollout_wave_sizes(const struct rollout_wave_spec *w, size_t n, uint64_t n_targets,
		       uint64_t *sizes, size_t max, size_t *n_out);

/*
 * The member key of @device_id in rollout @name: SHA-256("tern-rollout\0" name "\0" id).
 * Devices are taken in the order of their keys, so the choice is deterministic and
 * stable across reruns, and different rollouts start with different canaries.
 */
void rollout_member_key(const char *name, const char *device_id, uint8_t key[32]);

/* Sorts @ids (n of them) in place by rollout_member_key(@name, id). 0 or TERN_E_NOMEM. */
int rollout_order(const char *name, const char **ids, size_t n);

/* What a wave's members have reported. */
struct rollout_counts {
	uint64_t size;
	uint64_t succeeded;
	uint64_t failed; /* failed, rolled back, refused, or timed out */
	uint64_t pending;
};

enum rollout_gate {
	ROLLOUT_GATE_WAIT,		/* members still pending, or the bake is not over */
	ROLLOUT_GATE_PASS,		/* promote */
	ROLLOUT_GATE_TOO_MANY_FAILED,	/* failures above the maximum: pause now */
	ROLLOUT_GATE_TOO_FEW_SUCCEEDED, /* after the bake, successes below the minimum */
};

/*
 * The gate of one wave. The failure ratio is checked at every step (failed / size above
 * @max_fail_ppm pauses at once, bake or not: an emergency stop); the success ratio
 * (@min_success_ppm, 0 for none) only once nobody is pending and @bake_over.
 */
enum rollout_gate rollout_gate(const struct rollout_counts *c, uint32_t max_fail_ppm,
			       uint32_t min_success_ppm, bool bake_over);

#endif
