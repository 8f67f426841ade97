/* The device agent's state machine on a memory-backed sim board. */
#include "simtest.h"

#include "tern/tern_agent.h"
#include "tern/tern_err.h"
#include "tern/tern_release.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SLOT   (64 * 1024)
#define SECTOR 4096
#define IMG    (20 * 1024 + 100) /* six chunks, the last one short */

static int setup(void **state)
{
	struct simtest *t = calloc(1, sizeof(*t));
	if (!t || simtest_setup(t, SLOT, SECTOR, 8 * 1024))
		return -1;
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct simtest *t = *state;
	simtest_teardown(t);
	free(t);
	return 0;
}

static struct tern_status status(struct simtest *t)
{
	struct tern_status st;
	tern_agent_status(&t->dev->agent, &st);
	return st;
}

/* Installs and activates a release, then boots; returns the install's result. */
static int install_boot(struct simtest *t, const char *ver, uint64_t seq, uint32_t sc,
			enum tern_sim_health h)
{
	size_t len;
	uint8_t *rel = simtest_release(t, NULL, ver, seq, sc, h, IMG, NULL, 0, &len, NULL);
	assert_non_null(rel);
	int rc = tern_sim_install_buffer(t->dev, rel, len, 1000, false);
	free(rel);
	if (rc)
		return rc;
	assert_int_equal(tern_agent_activate(&t->dev->agent), 0);
	assert_int_equal(tern_sim_boot(t->dev, 8), 0);
	return 0;
}

static void test_factory_state(void **state)
{
	struct simtest *t = *state;
	struct tern_status st = status(t);
	assert_int_equal(st.state, TERN_ST_IDLE);
	assert_int_equal(st.running[TERN_PAIR_FW], 0);
	assert_string_equal(st.slots[TERN_AREA_FW_A].version, "1.0.0");
	assert_int_equal(st.slots[TERN_AREA_FW_A].state, TERN_SLOT_GOOD);
	assert_int_equal(t->dev->flash.violations, 0);
}

static void test_good_release_confirmed(void **state)
{
	struct simtest *t = *state;
	size_t len;
	uint8_t *rel =
	    simtest_release(t, NULL, "1.1.0", 2, 3, TERN_SIM_HEALTHY, IMG, NULL, 0, &len, NULL);
	assert_int_equal(tern_sim_install_buffer(t->dev, rel, len, 777, false), 0);
	free(rel);
	struct tern_status st = status(t);
	assert_int_equal(st.state, TERN_ST_STAGED);
	assert_int_equal(st.slots[TERN_AREA_FW_B].state, TERN_SLOT_STAGED);
	assert_int_equal(st.security_floor, 0);
	assert_int_equal(tern_agent_activate(&t->dev->agent), 0);
	assert_int_equal(tern_sim_boot(t->dev, 8), 0);
	st = status(t);
	assert_int_equal(st.state, TERN_ST_CONFIRMED);
	assert_int_equal(st.running[TERN_PAIR_FW], 1);
	assert_int_equal(st.slots[TERN_AREA_FW_B].state, TERN_SLOT_GOOD);
	assert_int_equal(st.slots[TERN_AREA_FW_A].state, TERN_SLOT_GOOD);
	assert_int_equal(st.security_floor, 3);
	assert_int_equal(st.confirmed_sequence, 2);
	/* A normal reboot consumes nothing and runs the confirmed image. */
	assert_int_equal(tern_sim_boot(t->dev, 8), 0);
	st = status(t);
	assert_int_equal(st.running[TERN_PAIR_FW], 1);
	assert_int_equal(st.state, TERN_ST_CONFIRMED);
	assert_int_equal(t->dev->flash.violations, 0);
}

static void test_unhealthy_rolled_back(void **state)
{
	struct simtest *t = *state;
	assert_int_equal(install_boot(t, "1.1.0", 2, 1, TERN_SIM_UNHEALTHY), 0);
	struct tern_status st = status(t);
	assert_int_equal(st.state, TERN_ST_ROLLED_BACK);
	assert_int_equal(st.reason, TERN_E_HEALTH);
	assert_int_equal(st.running[TERN_PAIR_FW], 0);
	assert_int_equal(st.slots[TERN_AREA_FW_B].state, TERN_SLOT_BAD);
	assert_int_equal(st.security_floor, 0);
	assert_int_equal(t->dev->flash.violations, 0);
}

static void test_crash_rolled_back_after_attempts(void **state)
{
	struct simtest *t = *state;
	unsigned boots = t->dev->n_boots;
	assert_int_equal(install_boot(t, "1.1.0", 2, 1, TERN_SIM_CRASH), 0);
	struct tern_status st = status(t);
	assert_int_equal(st.state, TERN_ST_ROLLED_BACK);
	assert_int_equal(st.reason, TERN_E_TRIAL_BOOT);
	assert_int_equal(st.running[TERN_PAIR_FW], 0);
	assert_int_equal(st.slots[TERN_AREA_FW_B].state, TERN_SLOT_BAD);
	/* Three trial boots (the default policy), then the old image. */
	assert_int_equal(t->dev->n_boots - boots, 4);
}

/* Runs @rel's offer and checks it is refused with @want and flash is unchanged. */
static void expect_refusal(struct simtest *t, const uint8_t *rel, size_t len, int want)
{
	uint8_t *before = malloc(t->mem_len);
	assert_non_null(before);
	memcpy(before, t->mem, t->mem_len);
	uint64_t ops = t->dev->flash.n_ops;
	enum tern_state st = t->dev->agent.state;
	assert_int_equal(tern_sim_install_buffer(t->dev, rel, len, 0, false), want);
	assert_int_equal(t->dev->flash.n_ops, ops);
	assert_memory_equal(before, t->mem, t->mem_len);
	assert_int_equal(t->dev->agent.state, st);
	free(before);
}

static void test_refusals(void **state)
{
	struct simtest *t = *state;
	size_t len;
	uint8_t *rel;
	assert_int_equal(install_boot(t, "2.0.0", 10, 5, TERN_SIM_HEALTHY), 0);

	rel = simtest_release_ex(t, NULL, "other-board", "2.1.0", 11, 5, TERN_SIM_HEALTHY, IMG,
				 NULL, 0, 0, &len, NULL);
	expect_refusal(t, rel, len, TERN_E_WRONG_BOARD);
	free(rel);

	rel = simtest_release(t, NULL, "2.1.0", 11, 4, TERN_SIM_HEALTHY, IMG, NULL, 0, &len, NULL);
	expect_refusal(t, rel, len, TERN_E_BELOW_FLOOR);
	free(rel);

	rel = simtest_release(t, NULL, "2.0.0", 10, 5, TERN_SIM_HEALTHY, IMG, NULL, 0, &len, NULL);
	expect_refusal(t, rel, len, TERN_E_OLD_SEQUENCE); /* replay of the confirmed release */
	free(rel);

	rel = simtest_release(t, NULL, "1.9.0", 9, 5, TERN_SIM_HEALTHY, IMG, NULL, 0, &len, NULL);
	expect_refusal(t, rel, len, TERN_E_OLD_SEQUENCE); /* downgrade */
	free(rel);

	struct tern_signer other;
	assert_int_equal(tern_signer_generate(&other), 0);
	rel =
	    simtest_release(t, &other, "2.1.0", 11, 5, TERN_SIM_HEALTHY, IMG, NULL, 0, &len, NULL);
	expect_refusal(t, rel, len, TERN_E_UNKNOWN_KEY);
	free(rel);
	tern_signer_free(&other);

	size_t head;
	rel = simtest_release(t, NULL, "2.1.0", 11, 5, TERN_SIM_HEALTHY, IMG, NULL, 0, &len, &head);
	rel[head - 5] ^= 0x40; /* inside the signature */
	expect_refusal(t, rel, len, TERN_E_BAD_SIGNATURE);
	free(rel);

	rel = simtest_release(t, NULL, "2.1.0", 11, 5, TERN_SIM_HEALTHY, SLOT + 1, NULL, 0, &len,
			      NULL);
	expect_refusal(t, rel, len, TERN_E_SLOT_TOO_SMALL);
	free(rel);

	t->chunk_size = 1024; /* smaller than a 4 KiB sector */
	rel = simtest_release(t, NULL, "2.1.0", 11, 5, TERN_SIM_HEALTHY, IMG, NULL, 0, &len, NULL);
	expect_refusal(t, rel, len, TERN_E_GEOMETRY);
	free(rel);
	assert_int_equal(t->dev->flash.violations, 0);
}

static void test_busy_while_downloading(void **state)
{
	struct simtest *t = *state;
	size_t len, head, len2, head2;
	uint8_t *rel =
	    simtest_release(t, NULL, "1.1.0", 2, 0, TERN_SIM_HEALTHY, IMG, NULL, 0, &len, &head);
	uint8_t *rel2 =
	    simtest_release(t, NULL, "1.2.0", 3, 0, TERN_SIM_HEALTHY, IMG, NULL, 0, &len2, &head2);
	struct tern_agent *ag = &t->dev->agent;
	assert_int_equal(tern_agent_offer(ag, rel, head), 0);
	assert_int_equal(ag->state, TERN_ST_DOWNLOADING);
	assert_int_equal(tern_agent_offer(ag, rel2, head2), TERN_E_BUSY);
	assert_int_equal(tern_agent_offer(ag, rel, head), 0); /* same release: resume */
	assert_int_equal(tern_agent_finish(ag), TERN_E_TRUNCATED);
	assert_int_equal(tern_agent_cancel(ag, 0), 0);
	assert_int_equal(ag->state, TERN_ST_FAILED);
	assert_int_equal(tern_agent_offer(ag, rel2, head2), 0);
	free(rel);
	free(rel2);
}

/* Feeds the index of component 0 of @rel (single-component, starting at @head). */
static size_t feed_index(struct tern_agent *ag, const uint8_t *rel, size_t head, size_t ilen)
{
	size_t hl;
	assert_int_equal(tern_release_expect_bstr(rel + head, 16, ilen, &hl), 0);
	assert_int_equal(tern_agent_feed_index(ag, 0, 0, rel + head + hl, ilen), 0);
	size_t pos = head + hl + ilen;
	assert_int_equal(tern_release_expect_bstr(rel + pos, 16, IMG, &hl), 0);
	return pos + hl; /* payload start */
}

static void test_bad_chunk_refused_alone_and_resume(void **state)
{
	struct simtest *t = *state;
	size_t len, head;
	uint8_t *rel =
	    simtest_release(t, NULL, "1.1.0", 2, 0, TERN_SIM_HEALTHY, IMG, NULL, 0, &len, &head);
	struct tern_agent *ag = &t->dev->agent;
	uint32_t cs = t->chunk_size;
	size_t ilen = (size_t)tern_index_size(IMG, cs);
	assert_int_equal(tern_agent_offer(ag, rel, head), 0);
	/* Payload before its index is verified: not yet. */
	assert_int_equal(tern_agent_feed(ag, 0, 0, rel, 16), TERN_E_STATE);
	size_t p = feed_index(ag, rel, head, ilen);
	const uint8_t *pay = rel + p;
	/* Chunk 0 good, chunk 1 corrupted. */
	assert_int_equal(tern_agent_feed(ag, 0, 0, pay, cs), 0);
	uint8_t *bad = malloc(cs);
	memcpy(bad, pay + cs, cs);
	bad[100] ^= 1;
	assert_int_equal(tern_agent_feed(ag, 0, cs, bad, cs), TERN_E_DIGEST);
	free(bad);
	unsigned comp;
	bool is_index;
	uint64_t off;
	assert_int_equal(tern_agent_next_needed(ag, &comp, &is_index, &off), 0);
	assert_false(is_index);
	assert_int_equal(off, cs);
	/* Mid-chunk bytes that start nothing are refused. */
	assert_int_equal(tern_agent_feed(ag, 0, cs + 10, pay + cs + 10, 10), TERN_E_OFFSET);
	/* Chunk 1 again, then 2, then half of 3. */
	assert_int_equal(tern_agent_feed(ag, 0, cs, pay + cs, 2 * cs + cs / 2), 0);
	/* Power cycle: a new agent resumes from the markers. */
	simtest_reinit(t);
	ag = &t->dev->agent;
	assert_int_equal(ag->state, TERN_ST_DOWNLOADING);
	struct tern_status st = status(t);
	assert_int_equal(st.n_verified, 3);
	assert_int_equal(st.n_chunks, 6);
	assert_int_equal(tern_agent_next_needed(ag, &comp, &is_index, &off), 0);
	assert_int_equal(off, 3 * cs);
	assert_int_equal(tern_agent_offer(ag, rel, head), 0);
	/* Resending everything is fine: verified chunks are skipped. */
	assert_int_equal(tern_agent_feed(ag, 0, 0, pay, IMG), 0);
	assert_int_equal(tern_agent_finish(ag), 0);
	assert_int_equal(ag->state, TERN_ST_STAGED);
	assert_int_equal(t->dev->flash.violations, 0);
	free(rel);
}

/* Which chunks are verified, out of order and after a power cycle (from the markers). */
static void test_chunk_verified_sparse(void **state)
{
	struct simtest *t = *state;
	size_t len, head;
	uint8_t *rel =
	    simtest_release(t, NULL, "1.1.0", 2, 0, TERN_SIM_HEALTHY, IMG, NULL, 0, &len, &head);
	struct tern_agent *ag = &t->dev->agent;
	uint32_t cs = t->chunk_size;
	size_t ilen = (size_t)tern_index_size(IMG, cs);
	bool v = true;
	assert_int_equal(tern_agent_chunk_verified(ag, 0, 0, &v), TERN_E_STATE);
	assert_int_equal(tern_agent_offer(ag, rel, head), 0);
	const uint8_t *pay = rel + feed_index(ag, rel, head, ilen);
	/* Chunks 0, 2 and 4 (as a resumed subscription might deliver them). */
	for (unsigned k = 0; k < 6; k += 2)
		assert_int_equal(tern_agent_feed(ag, 0, (uint64_t)k * cs, pay + (size_t)k * cs, cs),
				 0);
	for (int pass = 0; pass < 2; pass++) {
		for (unsigned k = 0; k < 6; k++) {
			assert_int_equal(tern_agent_chunk_verified(ag, 0, k, &v), 0);
			assert_int_equal(v, k % 2 == 0);
		}
		assert_int_equal(tern_agent_chunk_verified(ag, 0, 6, &v), TERN_E_INVAL);
		assert_int_equal(tern_agent_chunk_verified(ag, 1, 0, &v), TERN_E_INVAL);
		simtest_reinit(t); /* power cycle: the second pass reads the journal */
		ag = &t->dev->agent;
		assert_int_equal(ag->state, TERN_ST_DOWNLOADING);
	}
	free(rel);
}

static void test_bad_index_refused(void **state)
{
	struct simtest *t = *state;
	size_t len, head;
	uint8_t *rel =
	    simtest_release(t, NULL, "1.1.0", 2, 0, TERN_SIM_HEALTHY, IMG, NULL, 0, &len, &head);
	struct tern_agent *ag = &t->dev->agent;
	size_t ilen = (size_t)tern_index_size(IMG, t->chunk_size), hl;
	assert_int_equal(tern_agent_offer(ag, rel, head), 0);
	assert_int_equal(tern_release_expect_bstr(rel + head, 16, ilen, &hl), 0);
	uint8_t *idx = malloc(ilen);
	memcpy(idx, rel + head + hl, ilen);
	idx[40] ^= 0x80;
	assert_int_equal(tern_agent_feed_index(ag, 0, 0, idx, ilen), TERN_E_DIGEST);
	assert_int_equal(tern_agent_feed_index(ag, 0, 0, rel + head + hl, ilen), 0);
	assert_true(ag->job.comp[0].index_done);
	free(idx);
	free(rel);
	assert_int_equal(t->dev->flash.violations, 0);
}

static void test_config_component(void **state)
{
	struct simtest *t = *state;
	uint8_t cfg[5000];
	for (size_t i = 0; i < sizeof(cfg); i++)
		cfg[i] = (uint8_t)(i * 7);
	size_t len;
	uint8_t *rel = simtest_release(t, NULL, "1.1.0", 2, 1, TERN_SIM_HEALTHY, IMG, cfg,
				       sizeof(cfg), &len, NULL);
	assert_int_equal(tern_sim_install_buffer(t->dev, rel, len, 4096, false), 0);
	free(rel);
	assert_int_equal(tern_agent_activate(&t->dev->agent), 0);
	assert_int_equal(tern_sim_boot(t->dev, 8), 0);
	struct tern_status st = status(t);
	assert_int_equal(st.state, TERN_ST_CONFIRMED);
	assert_int_equal(st.running[TERN_PAIR_CFG], 0);
	assert_int_equal(st.active[TERN_PAIR_CFG], 0);
	assert_int_equal(st.slots[TERN_AREA_CFG_A].state, TERN_SLOT_GOOD);
	assert_int_equal(st.slots[TERN_AREA_CFG_A].size, sizeof(cfg));
	/* A config-only release goes to the other config slot; the firmware stays. */
	cfg[0] ^= 1;
	struct relbuild rb = {
	    .version = "1.1.1",
	    .sequence = 3,
	    .security_counter = 1,
	    .board = "sim",
	    .chunk_size = t->chunk_size,
	    .comp = {{"config", TERN_KIND_CONFIG, cfg, sizeof(cfg)}},
	    .n_comp = 1,
	};
	size_t cap = relbuild_size(&rb);
	rel = malloc(cap);
	len = relbuild_make(&t->signer, &rb, rel, cap, NULL);
	assert_true(len > 0);
	assert_int_equal(tern_sim_install_buffer(t->dev, rel, len, 4096, false), 0);
	free(rel);
	st = status(t);
	assert_int_equal(st.slots[TERN_AREA_CFG_B].state, TERN_SLOT_STAGED);
	assert_int_equal(tern_agent_activate(&t->dev->agent), 0);
	assert_int_equal(tern_sim_boot(t->dev, 8), 0);
	st = status(t);
	assert_int_equal(st.state, TERN_ST_CONFIRMED);
	assert_int_equal(st.running[TERN_PAIR_CFG], 1);
	assert_int_equal(st.running[TERN_PAIR_FW], 1); /* firmware unchanged */
	assert_int_equal(t->dev->flash.violations, 0);
}

static void test_bootctl_torn_copy_falls_back(void **state)
{
	struct simtest *t = *state;
	struct tern_bootctl bc;
	uint8_t buf[TERN_BOOTCTL_REC_SIZE];
	assert_int_equal(tern_bootctl_load(&t->dev->board, &bc, buf), 0);
	uint32_t seq = bc.seq;
	bc.security_floor[TERN_PAIR_FW] = 42;
	assert_int_equal(tern_bootctl_store(&t->dev->board, &bc, buf), 0);
	assert_int_equal(bc.seq, seq + 1);
	/* Garble the newest copy: the older one (floor 0) must win. */
	uint64_t sector = t->geo.sector_size;
	struct tern_bootctl c0, c1;
	uint8_t *base = t->mem + t->dev->flash.area_off[TERN_AREA_BOOTCTL];
	bool v0 = tern_bootctl_decode(&c0, base), v1 = tern_bootctl_decode(&c1, base + sector);
	assert_true(v0 && v1);
	uint8_t *newest = c0.seq == seq + 1 ? base : base + sector;
	newest[20] ^= 0x01;
	assert_int_equal(tern_bootctl_load(&t->dev->board, &bc, buf), 0);
	assert_int_equal(bc.seq, seq);
	assert_int_equal(bc.security_floor[TERN_PAIR_FW], 0);
}

/* The running slot is never written or erased during an install, even a failed one. */
static void test_active_slot_never_written(void **state)
{
	struct simtest *t = *state;
	uint64_t a0 = t->dev->flash.n_area_ops[TERN_AREA_FW_A];
	size_t len;
	uint8_t *rel =
	    simtest_release(t, NULL, "1.1.0", 2, 0, TERN_SIM_HEALTHY, IMG, NULL, 0, &len, NULL);
	assert_int_equal(tern_sim_install_buffer(t->dev, rel, len, 333, false), 0);
	assert_true(t->dev->flash.n_area_ops[TERN_AREA_FW_B] > 0);
	assert_int_equal(t->dev->flash.n_area_ops[TERN_AREA_FW_A], a0);
	free(rel);
	/* Confirm B, then install again: now A is written and B never. */
	assert_int_equal(tern_agent_activate(&t->dev->agent), 0);
	assert_int_equal(tern_sim_boot(t->dev, 8), 0);
	uint64_t b0 = t->dev->flash.n_area_ops[TERN_AREA_FW_B];
	rel = simtest_release(t, NULL, "1.2.0", 3, 0, TERN_SIM_UNHEALTHY, IMG, NULL, 0, &len, NULL);
	assert_int_equal(tern_sim_install_buffer(t->dev, rel, len, 0, false), 0);
	free(rel);
	assert_int_equal(tern_agent_activate(&t->dev->agent), 0);
	assert_int_equal(tern_sim_boot(t->dev, 8), 0);
	assert_int_equal(t->dev->flash.n_area_ops[TERN_AREA_FW_B], b0);
	assert_int_equal(status(t).running[TERN_PAIR_FW], 1);
}

/* VERIFYING re-hashes the slot when asked to: flash that changed behind the agent's
 * back after its chunks were verified fails the install instead of staging it. */
static void test_verify_on_finish_catches_flash_damage(void **state)
{
	struct simtest *t = *state;
	size_t len, head;
	uint8_t *rel =
	    simtest_release(t, NULL, "1.1.0", 2, 0, TERN_SIM_HEALTHY, IMG, NULL, 0, &len, &head);
	struct tern_agent *ag = &t->dev->agent;
	ag->cfg.verify_on_finish = true;
	size_t ilen = (size_t)tern_index_size(IMG, t->chunk_size);
	assert_int_equal(tern_agent_offer(ag, rel, head), 0);
	size_t p = feed_index(ag, rel, head, ilen);
	assert_int_equal(tern_agent_feed(ag, 0, 0, rel + p, IMG), 0);
	t->mem[t->dev->flash.area_off[TERN_AREA_FW_B] + 5000] ^= 0x10; /* a bit flips */
	assert_int_equal(tern_agent_finish(ag), TERN_E_DIGEST);
	struct tern_status st = status(t);
	assert_int_equal(st.state, TERN_ST_FAILED);
	assert_int_equal(st.reason, TERN_E_DIGEST);
	assert_int_equal(st.slots[TERN_AREA_FW_B].state, TERN_SLOT_EMPTY);
	free(rel);
}

/* A trial slot damaged after staging: the bootloader refuses to boot it. */
static void test_bootloader_refuses_damaged_trial(void **state)
{
	struct simtest *t = *state;
	size_t len;
	uint8_t *rel =
	    simtest_release(t, NULL, "1.1.0", 2, 0, TERN_SIM_HEALTHY, IMG, NULL, 0, &len, NULL);
	assert_int_equal(tern_sim_install_buffer(t->dev, rel, len, 0, false), 0);
	free(rel);
	assert_int_equal(tern_agent_activate(&t->dev->agent), 0);
	t->mem[t->dev->flash.area_off[TERN_AREA_FW_B] + 100] ^= 0x01;
	assert_int_equal(tern_sim_boot(t->dev, 8), 0);
	struct tern_status st = status(t);
	assert_int_equal(st.state, TERN_ST_ROLLED_BACK);
	assert_int_equal(st.reason, TERN_E_DIGEST);
	assert_int_equal(st.running[TERN_PAIR_FW], 0);
	assert_int_equal(st.slots[TERN_AREA_FW_B].state, TERN_SLOT_BAD);
}

/* Firmware and config roll back together when the trial fails. */
static void test_config_rolls_back_with_firmware(void **state)
{
	struct simtest *t = *state;
	uint8_t cfg[3000];
	memset(cfg, 0x33, sizeof(cfg));
	size_t len;
	uint8_t *rel = simtest_release(t, NULL, "1.1.0", 2, 0, TERN_SIM_UNHEALTHY, IMG, cfg,
				       sizeof(cfg), &len, NULL);
	assert_int_equal(tern_sim_install_buffer(t->dev, rel, len, 0, false), 0);
	free(rel);
	assert_int_equal(tern_agent_activate(&t->dev->agent), 0);
	assert_int_equal(tern_sim_boot(t->dev, 8), 0);
	struct tern_status st = status(t);
	assert_int_equal(st.state, TERN_ST_ROLLED_BACK);
	assert_int_equal(st.running[TERN_PAIR_FW], 0);
	assert_int_equal(st.running[TERN_PAIR_CFG], TERN_SLOT_NONE); /* no config before */
	assert_int_equal(st.slots[TERN_AREA_CFG_A].state, TERN_SLOT_BAD);
	assert_int_equal(st.slots[TERN_AREA_FW_B].state, TERN_SLOT_BAD);
}

/* Operations out of their state are refused; an offer during a trial is busy. */
static void test_wrong_state(void **state)
{
	struct simtest *t = *state;
	struct tern_agent *ag = &t->dev->agent;
	assert_int_equal(tern_agent_finish(ag), TERN_E_STATE);
	assert_int_equal(tern_agent_activate(ag), TERN_E_STATE);
	assert_int_equal(tern_agent_health(ag, true), TERN_E_STATE);
	assert_int_equal(tern_agent_cancel(ag, 0), TERN_E_STATE);
	assert_int_equal(tern_agent_feed(ag, 0, 0, "x", 1), TERN_E_STATE);
	size_t len, head;
	uint8_t *rel =
	    simtest_release(t, NULL, "1.1.0", 2, 0, TERN_SIM_HEALTHY, IMG, NULL, 0, &len, &head);
	assert_int_equal(tern_sim_install_buffer(t->dev, rel, len, 0, false), 0);
	assert_int_equal(tern_agent_activate(ag), 0);
	assert_int_equal(tern_agent_offer(ag, rel, head), TERN_E_BUSY); /* trial armed */
	/* Boot into the trial without the health check, as a board would before it runs. */
	struct tern_boot_result res;
	assert_int_equal(
	    tern_boot_select(&t->dev->board, &res, t->dev->scratch, sizeof(t->dev->scratch)), 0);
	assert_true(res.trial);
	assert_int_equal(tern_sim_attach(t->dev, &res), 0);
	assert_int_equal(ag->state, TERN_ST_TRIAL);
	assert_int_equal(ag->bc.attempts_left, 2);
	assert_int_equal(tern_agent_offer(ag, rel, head), TERN_E_BUSY);
	assert_int_equal(tern_agent_health(ag, true), 0);
	assert_int_equal(ag->state, TERN_ST_CONFIRMED);
	free(rel);
}

/* Many devices in one process (the fleet simulator's case): no state is shared, so each
 * device's power cut and install stay its own. */
static void test_many_devices(void **state)
{
	struct simtest *t = *state;
	enum { N = 100 };
	struct tern_sim_device *devs = calloc(N, sizeof(*devs));
	uint8_t **mems = calloc(N, sizeof(*mems));
	assert_non_null(devs);
	assert_non_null(mems);
	size_t len;
	uint8_t *rel =
	    simtest_release(t, NULL, "1.1.0", 2, 1, TERN_SIM_HEALTHY, IMG, NULL, 0, &len, NULL);
	uint8_t img[4096];
	assert_int_equal(tern_sim_image_make(img, sizeof(img), TERN_SIM_HEALTHY, "1.0.0"), 0);
	for (int i = 0; i < N; i++) {
		struct tern_sim_flash f;
		mems[i] = malloc(t->mem_len);
		assert_non_null(mems[i]);
		assert_int_equal(tern_sim_flash_open_mem(&f, &t->geo, mems[i], true), 0);
		tern_sim_device_init(&devs[i], &f, &t->kr, TERN_SIM_BOARD_ID);
		assert_int_equal(tern_sim_provision(&devs[i], img, sizeof(img), "1.0.0", SECTOR),
				 0);
		assert_int_equal(tern_sim_boot(&devs[i], 8), 0);
	}
	/* Every third device loses power in the middle of its install. */
	for (int i = 0; i < N; i++)
		if (i % 3 == 0)
			tern_sim_power_cut_at(&devs[i].flash, 10, i % 2);
	for (int i = 0; i < N; i++) {
		int rc = tern_sim_install_buffer(&devs[i], rel, len, 1000, false);
		assert_int_equal(rc, i % 3 == 0 ? TERN_E_POWER_CUT : 0);
	}
	for (int i = 0; i < N; i++) {
		if (i % 3 == 0) {
			tern_sim_power_restore(&devs[i].flash);
			assert_int_equal(tern_sim_boot(&devs[i], 8), 0);
			assert_int_equal(devs[i].agent.state, TERN_ST_DOWNLOADING);
			assert_int_equal(tern_sim_install_buffer(&devs[i], rel, len, 1000, false),
					 0);
		}
		assert_int_equal(tern_agent_activate(&devs[i].agent), 0);
		assert_int_equal(tern_sim_boot(&devs[i], 8), 0);
		assert_int_equal(devs[i].agent.state, TERN_ST_CONFIRMED);
		assert_int_equal(devs[i].boot.slot[TERN_PAIR_FW], 1);
		assert_int_equal(devs[i].flash.violations, 0);
	}
	for (int i = 0; i < N; i++)
		free(mems[i]);
	free(mems);
	free(devs);
	free(rel);
}

/* Security floors per slot pair: a firmware-only release that raises the floor must not
 * strand the running config, nor a config-only release the running firmware. */
static void test_floor_per_pair(void **state)
{
	struct simtest *t = *state;
	uint8_t cfg[2000];
	memset(cfg, 0x44, sizeof(cfg));
	size_t len;
	uint8_t *rel = simtest_release(t, NULL, "1.1.0", 2, 1, TERN_SIM_HEALTHY, IMG, cfg,
				       sizeof(cfg), &len, NULL);
	assert_int_equal(tern_sim_install_buffer(t->dev, rel, len, 0, false), 0);
	free(rel);
	assert_int_equal(tern_agent_activate(&t->dev->agent), 0);
	assert_int_equal(tern_sim_boot(t->dev, 8), 0);
	assert_int_equal(t->dev->agent.state, TERN_ST_CONFIRMED);
	/* Firmware only, security counter 5. */
	rel = simtest_release(t, NULL, "1.2.0", 3, 5, TERN_SIM_HEALTHY, IMG, NULL, 0, &len, NULL);
	assert_int_equal(tern_sim_install_buffer(t->dev, rel, len, 0, false), 0);
	free(rel);
	assert_int_equal(tern_agent_activate(&t->dev->agent), 0);
	assert_int_equal(tern_sim_boot(t->dev, 8), 0);
	assert_int_equal(tern_sim_boot(t->dev, 8), 0); /* a normal boot after the confirm */
	struct tern_status st = status(t);
	assert_int_equal(st.state, TERN_ST_CONFIRMED);
	assert_int_equal(st.security_floor, 5);
	assert_int_equal(st.running[TERN_PAIR_CFG], 0); /* the config stays */
	/* Config only, security counter 9: the firmware (counter 5) still boots. */
	cfg[0] = 1;
	struct relbuild rb = {
	    .version = "1.2.1",
	    .sequence = 4,
	    .security_counter = 9,
	    .board = "sim",
	    .chunk_size = t->chunk_size,
	    .comp = {{"config", TERN_KIND_CONFIG, cfg, sizeof(cfg)}},
	    .n_comp = 1,
	};
	size_t cap = relbuild_size(&rb);
	rel = malloc(cap);
	len = relbuild_make(&t->signer, &rb, rel, cap, NULL);
	assert_int_equal(tern_sim_install_buffer(t->dev, rel, len, 0, false), 0);
	free(rel);
	assert_int_equal(tern_agent_activate(&t->dev->agent), 0);
	assert_int_equal(tern_sim_boot(t->dev, 8), 0);
	assert_int_equal(tern_sim_boot(t->dev, 8), 0);
	st = status(t);
	assert_int_equal(st.state, TERN_ST_CONFIRMED);
	assert_int_equal(st.running[TERN_PAIR_FW], 0);
	assert_int_equal(st.running[TERN_PAIR_CFG], 1);
	assert_int_equal(st.security_floor, 5);
	assert_int_equal(st.config_security_floor, 9);
	/* A firmware release below the firmware floor is refused; 5 is fine though below 9. */
	rel = simtest_release(t, NULL, "1.3.0", 5, 4, TERN_SIM_HEALTHY, IMG, NULL, 0, &len, NULL);
	assert_int_equal(tern_sim_install_buffer(t->dev, rel, len, 0, false), TERN_E_BELOW_FLOOR);
	free(rel);
	rel = simtest_release(t, NULL, "1.3.0", 5, 5, TERN_SIM_HEALTHY, IMG, NULL, 0, &len, NULL);
	assert_int_equal(tern_sim_install_buffer(t->dev, rel, len, 0, false), 0);
	free(rel);
}

/* A damaged active slot: the bootloader boots the other good slot, records it, and the
 * next update goes to the damaged slot, not the running one. */
static void test_damaged_active_slot(void **state)
{
	struct simtest *t = *state;
	assert_int_equal(install_boot(t, "1.1.0", 2, 0, TERN_SIM_HEALTHY), 0);
	assert_int_equal(status(t).running[TERN_PAIR_FW], 1);
	t->mem[t->dev->flash.area_off[TERN_AREA_FW_B] + 3000] ^= 0x04;
	assert_int_equal(tern_sim_boot(t->dev, 8), 0);
	struct tern_status st = status(t);
	assert_int_equal(st.running[TERN_PAIR_FW], 0);
	assert_int_equal(st.active[TERN_PAIR_FW], 0);
	assert_int_equal(st.slots[TERN_AREA_FW_B].state, TERN_SLOT_BAD);
	assert_int_equal(st.state, TERN_ST_ROLLED_BACK);
	assert_int_equal(st.reason, TERN_E_DIGEST);
	assert_int_equal(install_boot(t, "1.2.0", 3, 0, TERN_SIM_HEALTHY), 0);
	st = status(t);
	assert_int_equal(st.state, TERN_ST_CONFIRMED);
	assert_int_equal(st.running[TERN_PAIR_FW], 1);
	/* Both slots damaged: nothing may boot. */
	t->mem[t->dev->flash.area_off[TERN_AREA_FW_A] + 100] ^= 0x04;
	t->mem[t->dev->flash.area_off[TERN_AREA_FW_B] + 100] ^= 0x04;
	assert_int_equal(tern_sim_boot(t->dev, 8), TERN_E_NO_IMAGE);
}

/* The record round-trips, and any single flipped bit or garbage is rejected. */
static void test_bootctl_record_codec(void **state)
{
	(void)state;
	struct tern_bootctl bc, back;
	uint8_t rec[TERN_BOOTCTL_REC_SIZE];
	memset(&bc, 0, sizeof(bc));
	bc.seq = 77;
	bc.active[0] = 1;
	bc.active[1] = TERN_SLOT_NONE;
	bc.trial_slot[0] = 0;
	bc.trial_slot[1] = TERN_SLOT_NONE;
	bc.trial_pending = 1;
	bc.attempts_left = 2;
	bc.last_event = TERN_EV_ACTIVATED;
	bc.last_reason = TERN_E_HEALTH;
	bc.event_sequence = 1234567890123ull;
	bc.security_floor[0] = 7;
	bc.security_floor[1] = 9;
	bc.confirmed_sequence = 99;
	for (int i = 0; i < TERN_N_SLOTS; i++) {
		bc.slots[i].state = (uint8_t)(i + 1);
		bc.slots[i].sequence = (uint64_t)i << 40;
		bc.slots[i].size = 1000u + (unsigned)i;
		bc.slots[i].chunk_size = 4096;
		memset(bc.slots[i].index_digest, i, TERN_SHA256_LEN);
		snprintf(bc.slots[i].version, sizeof(bc.slots[i].version), "v%d", i);
	}
	tern_bootctl_encode(&bc, rec);
	assert_true(tern_bootctl_decode(&back, rec));
	assert_memory_equal(&bc, &back, sizeof(bc));
	for (size_t i = 0; i < sizeof(rec); i++) {
		for (int bit = 0; bit < 8; bit += 3) {
			rec[i] ^= (uint8_t)(1u << bit);
			assert_false(tern_bootctl_decode(&back, rec));
			rec[i] ^= (uint8_t)(1u << bit);
		}
	}
	uint32_t x = 12345;
	for (int n = 0; n < 2000; n++) {
		for (size_t i = 0; i < sizeof(rec); i++) {
			x = x * 1103515245u + 12345u;
			rec[i] = (uint8_t)(x >> 16);
		}
		assert_false(tern_bootctl_decode(&back, rec));
	}
	memset(rec, 0xff, sizeof(rec)); /* erased flash */
	assert_false(tern_bootctl_decode(&back, rec));
}

/* A release of a healthy IMG-byte image (caller frees). */
static uint8_t *rel_of(struct simtest *t, const char *ver, uint64_t seq, uint32_t sc, size_t *len,
		       size_t *head)
{
	uint8_t *rel =
	    simtest_release(t, NULL, ver, seq, sc, TERN_SIM_HEALTHY, IMG, NULL, 0, len, head);
	assert_non_null(rel);
	return rel;
}

/* Activates what is staged and boots; the trial must be confirmed on @ver in @slot. */
static void activate_confirm(struct simtest *t, const char *ver, unsigned slot)
{
	assert_int_equal(tern_agent_activate(&t->dev->agent), 0);
	assert_int_equal(tern_sim_boot(t->dev, 8), 0);
	struct tern_status st = status(t);
	assert_int_equal(st.state, TERN_ST_CONFIRMED);
	assert_int_equal(st.running[TERN_PAIR_FW], slot);
	assert_string_equal(st.slots[tern_slot_area(TERN_PAIR_FW, slot)].version, ver);
}

/* A refused revert offer writes nothing. */
static void expect_revert_refusal(struct simtest *t, const uint8_t *rel, size_t len, int want)
{
	uint8_t *before = malloc(t->mem_len);
	assert_non_null(before);
	memcpy(before, t->mem, t->mem_len);
	uint64_t ops = t->dev->flash.n_ops;
	enum tern_state st = t->dev->agent.state;
	assert_int_equal(tern_sim_install_buffer(t->dev, rel, len, 0, true), want);
	assert_int_equal(t->dev->flash.n_ops, ops);
	assert_memory_equal(before, t->mem, t->mem_len);
	assert_int_equal(t->dev->agent.state, st);
	free(before);
}

/*
 * Revert by the fast path: 1.1.0 (B) then 1.2.0 (A) confirmed; a revert to 1.1.0 finds
 * it whole in B and stages it with one record write (no slot written), the trial
 * confirms it, the confirmed sequence goes back to 2 and the floor stays. Installing
 * 1.2.0 again then finds it in A the same way.
 */
static void test_revert_fast_path(void **state)
{
	struct simtest *t = *state;
	size_t len1, len2;
	uint8_t *r1 = rel_of(t, "1.1.0", 2, 1, &len1, NULL);
	uint8_t *r2 = rel_of(t, "1.2.0", 3, 1, &len2, NULL);
	assert_int_equal(tern_sim_install_buffer(t->dev, r1, len1, 0, false), 0);
	activate_confirm(t, "1.1.0", 1);
	assert_int_equal(tern_sim_install_buffer(t->dev, r2, len2, 0, false), 0);
	activate_confirm(t, "1.2.0", 0);
	/* Without "revert" it is an old release. */
	expect_refusal(t, r1, len1, TERN_E_OLD_SEQUENCE);
	uint64_t ops = t->dev->flash.n_ops, slot_ops = t->dev->flash.n_area_ops[TERN_AREA_FW_B],
		 journal_ops = t->dev->flash.n_area_ops[TERN_AREA_JOURNAL];
	assert_int_equal(tern_sim_install_buffer(t->dev, r1, len1, 0, true), 0);
	assert_int_equal(t->dev->flash.n_ops - ops, 2); /* one record write: erase + write */
	assert_int_equal(t->dev->flash.n_area_ops[TERN_AREA_FW_B], slot_ops);
	assert_int_equal(t->dev->flash.n_area_ops[TERN_AREA_JOURNAL], journal_ops);
	struct tern_status st = status(t);
	assert_int_equal(st.state, TERN_ST_STAGED);
	assert_int_equal(st.slots[TERN_AREA_FW_B].state, TERN_SLOT_STAGED);
	assert_int_equal(st.slots[TERN_AREA_FW_A].state, TERN_SLOT_GOOD);
	assert_int_equal(st.last_event, TERN_EV_STAGED);
	assert_int_equal(st.event_sequence, 2);
	/* Offered again while staged: nothing changes. */
	ops = t->dev->flash.n_ops;
	assert_int_equal(tern_sim_install_buffer(t->dev, r1, len1, 0, true), 0);
	assert_int_equal(t->dev->flash.n_ops, ops);
	activate_confirm(t, "1.1.0", 1);
	st = status(t);
	assert_int_equal(st.confirmed_sequence, 2);
	assert_int_equal(st.security_floor, 1);
	assert_int_equal(st.slots[TERN_AREA_FW_A].state, TERN_SLOT_GOOD);
	/* A normal reboot stays on it. */
	assert_int_equal(tern_sim_boot(t->dev, 8), 0);
	assert_int_equal(status(t).running[TERN_PAIR_FW], 1);
	/* 1.2.0 is newer than the confirmed release again: a plain install, from slot A. */
	slot_ops = t->dev->flash.n_area_ops[TERN_AREA_FW_A];
	assert_int_equal(tern_sim_install_buffer(t->dev, r2, len2, 0, false), 0);
	assert_int_equal(t->dev->flash.n_area_ops[TERN_AREA_FW_A], slot_ops);
	activate_confirm(t, "1.2.0", 0);
	assert_int_equal(status(t).confirmed_sequence, 3);
	assert_int_equal(t->dev->flash.violations, 0);
	free(r1);
	free(r2);
}

/* A revert is checked like an install except for the sequence: below the floor, wrong
 * board, unknown key, bad signature are refused and write nothing. */
static void test_revert_refusals(void **state)
{
	struct simtest *t = *state;
	size_t len, head;
	uint8_t *rel = rel_of(t, "1.1.0", 2, 1, &len, NULL);
	assert_int_equal(tern_sim_install_buffer(t->dev, rel, len, 0, false), 0);
	free(rel);
	activate_confirm(t, "1.1.0", 1);
	uint8_t *r2 = rel_of(t, "1.2.0", 3, 3, &len, NULL);
	assert_int_equal(tern_sim_install_buffer(t->dev, r2, len, 0, false), 0);
	free(r2);
	activate_confirm(t, "1.2.0", 0);
	assert_int_equal(status(t).security_floor, 3);
	/* 1.1.0 (counter 1) is whole in slot B, but below the floor now. */
	rel = rel_of(t, "1.1.0", 2, 1, &len, NULL);
	expect_revert_refusal(t, rel, len, TERN_E_BELOW_FLOOR);
	free(rel);
	rel = simtest_release_ex(t, NULL, "other-board", "1.1.5", 2, 3, TERN_SIM_HEALTHY, IMG, NULL,
				 0, 0, &len, NULL);
	expect_revert_refusal(t, rel, len, TERN_E_WRONG_BOARD);
	free(rel);
	struct tern_signer other;
	assert_int_equal(tern_signer_generate(&other), 0);
	rel = simtest_release(t, &other, "1.1.5", 2, 3, TERN_SIM_HEALTHY, IMG, NULL, 0, &len, NULL);
	expect_revert_refusal(t, rel, len, TERN_E_UNKNOWN_KEY);
	free(rel);
	tern_signer_free(&other);
	rel = rel_of(t, "1.1.5", 2, 3, &len, &head);
	rel[head - 5] ^= 0x40;
	expect_revert_refusal(t, rel, len, TERN_E_BAD_SIGNATURE);
	free(rel);
	assert_int_equal(status(t).state, TERN_ST_CONFIRMED);
	assert_int_equal(t->dev->flash.violations, 0);
}

/*
 * Revert with a download: after 1.1.0, 1.2.0, 1.3.0 the slots hold 1.2.0 and 1.3.0, so
 * 1.1.0 streams into the inactive slot. A power cycle in the middle: the journal says it
 * is a revert, so the plain offer of the transport (or of `ternd sim install`) resumes it.
 */
static void test_revert_download_resumed(void **state)
{
	struct simtest *t = *state;
	size_t len, head;
	static const char *const vers[] = {"1.1.0", "1.2.0", "1.3.0"};
	for (unsigned i = 0; i < 3; i++) {
		uint8_t *r = rel_of(t, vers[i], 2 + i, 1, &len, NULL);
		assert_int_equal(tern_sim_install_buffer(t->dev, r, len, 0, false), 0);
		free(r);
		activate_confirm(t, vers[i], i % 2 ? 0 : 1);
	}
	uint8_t *rel = rel_of(t, "1.1.0", 2, 1, &len, &head);
	struct tern_agent *ag = &t->dev->agent;
	assert_int_equal(tern_agent_offer(ag, rel, head), TERN_E_OLD_SEQUENCE);
	assert_int_equal(tern_agent_offer_revert(ag, rel, head), 0);
	assert_int_equal(ag->state, TERN_ST_DOWNLOADING);
	assert_true(ag->job.revert);
	assert_int_equal(status(t).slots[TERN_AREA_FW_A].state, TERN_SLOT_INSTALLING);
	size_t ilen = (size_t)tern_index_size(IMG, t->chunk_size);
	size_t p = feed_index(ag, rel, head, ilen);
	assert_int_equal(tern_agent_feed(ag, 0, 0, rel + p, 2 * t->chunk_size), 0);
	simtest_reinit(t); /* power cycle */
	ag = &t->dev->agent;
	assert_int_equal(ag->state, TERN_ST_DOWNLOADING);
	assert_true(ag->job.revert);
	assert_int_equal(status(t).n_verified, 2);
	/* Another old release is still refused while it downloads. */
	size_t h0;
	uint8_t *r0 = rel_of(t, "1.0.5", 1, 1, &len, &h0);
	assert_int_equal(tern_agent_offer(ag, r0, h0), TERN_E_OLD_SEQUENCE);
	free(r0);
	assert_int_equal(tern_agent_offer(ag, rel, head), 0); /* resume */
	assert_int_equal(status(t).n_verified, 2);
	assert_int_equal(tern_agent_feed(ag, 0, 0, rel + p, IMG), 0);
	assert_int_equal(tern_agent_finish(ag), 0);
	activate_confirm(t, "1.1.0", 0);
	struct tern_status st = status(t);
	assert_int_equal(st.confirmed_sequence, 2);
	assert_int_equal(st.security_floor, 1);
	assert_int_equal(st.slots[TERN_AREA_FW_B].version[2], '3'); /* 1.3.0 stays, good */
	assert_int_equal(st.slots[TERN_AREA_FW_B].state, TERN_SLOT_GOOD);
	assert_int_equal(t->dev->flash.violations, 0);
	free(rel);
}

/* A "revert" to a release newer than the confirmed one is an install: the floor rises. */
static void test_revert_to_newer_is_install(void **state)
{
	struct simtest *t = *state;
	size_t len;
	uint8_t *rel = rel_of(t, "1.1.0", 2, 4, &len, NULL);
	assert_int_equal(tern_sim_install_buffer(t->dev, rel, len, 0, true), 0);
	free(rel);
	activate_confirm(t, "1.1.0", 1);
	struct tern_status st = status(t);
	assert_int_equal(st.confirmed_sequence, 2);
	assert_int_equal(st.security_floor, 4);
	/* And its trial fails like an install's: back on the factory image. */
	rel = simtest_release(t, NULL, "1.2.0", 3, 4, TERN_SIM_UNHEALTHY, IMG, NULL, 0, &len, NULL);
	assert_int_equal(tern_sim_install_buffer(t->dev, rel, len, 0, true), 0);
	free(rel);
	assert_int_equal(tern_agent_activate(&t->dev->agent), 0);
	assert_int_equal(tern_sim_boot(t->dev, 8), 0);
	st = status(t);
	assert_int_equal(st.state, TERN_ST_ROLLED_BACK);
	assert_int_equal(st.running[TERN_PAIR_FW], 1);
	assert_int_equal(st.confirmed_sequence, 2);
}

static void test_names(void **state)
{
	(void)state;
	assert_string_equal(tern_state_name(TERN_ST_ROLLED_BACK), "rolled-back");
	assert_string_equal(tern_event_name(TERN_EV_CONFIRMED), "confirmed");
	assert_string_equal(tern_errname(TERN_E_HEALTH), "health-check-failed");
	assert_int_equal(tern_crc32(0, "123456789", 9), 0xcbf43926u);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_factory_state, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_good_release_confirmed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unhealthy_rolled_back, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_crash_rolled_back_after_attempts, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_busy_while_downloading, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_chunk_refused_alone_and_resume, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_chunk_verified_sparse, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_index_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_config_component, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bootctl_torn_copy_falls_back, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_active_slot_never_written, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_verify_on_finish_catches_flash_damage, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_bootloader_refuses_damaged_trial, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_config_rolls_back_with_firmware, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_wrong_state, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_many_devices, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_floor_per_pair, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_damaged_active_slot, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_revert_fast_path, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_revert_refusals, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_revert_download_resumed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_revert_to_newer_is_install, setup, teardown),
	    cmocka_unit_test(test_bootctl_record_codec),
	    cmocka_unit_test(test_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
