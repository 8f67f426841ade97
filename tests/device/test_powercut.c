/*
 * Power-cut replay (MCUboot sim style): a scenario of seven steps - a good release with a
 * config component (confirmed), an unhealthy one (rolled back by the agent), one that
 * crashes (rolled back by the bootloader when its attempts run out), a good one with
 * another config, a revert to the first (whole in the inactive slots: the fast path, no
 * download), a good firmware-only one, and a revert to the fourth (overwritten since:
 * downloaded again) - is run once to
 * count every flash write and erase, then replayed from the same start with power cut
 * at operation N for every N: clean cuts (the operation does not happen) and torn ones
 * (some of its write units land, the next is garbage; an erase leaves a garbled sector).
 * After each cut the device reboots and the driver carries on (resume, offer again,
 * activate, boot). After every boot it checks: the running image is complete and its
 * digest matches a signed manifest (or the factory image); the reported state agrees
 * with the slots; nothing below the security floor runs; the floor only rises with a
 * confirmation. Each release must end as its expected outcome.
 */
#include "simtest.h"

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

#define SECTOR	 1024
#define SLOT	 (8 * 1024)
#define IMG	 (5 * 1024 + 100) /* six chunks, the last one short */
#define CFG_LEN	 1500		  /* two chunks */
#define PIECE	 128		  /* transport piece: several writes per chunk */
#define N_REL	 7
#define N_PARTS	 2 /* replayed apart (the cost grows with the square of a part's length) */
#define MAX_STEP 40

/* Steps of each part: the first three releases, then the reverts around them. */
static const int part_first[N_PARTS + 1] = {0, 3, N_REL};

struct rel {
	bool revert; /* offered as a revert (bytes borrowed from the release it goes back to) */
	uint8_t *bytes;
	size_t len;
	uint64_t sequence;
	uint32_t security;
	enum tern_event outcome;
	int reason; /* expected reason (0: any) */
	size_t head_len;
	unsigned n_comp;
	size_t index_at[2], payload_at[2]; /* where each component's bytes start */
	uint64_t index_len[2], payload_len[2];
};

/* Finds where each component's index and bytes are in the release. */
static int locate(struct rel *r)
{
	struct tern_release_head rh;
	int rc = tern_release_parse_unverified(&rh, r->bytes, r->len);
	if (rc)
		return rc;
	size_t pos = rh.head_len, hl;
	r->head_len = rh.head_len;
	r->n_comp = (unsigned)rh.manifest.n_components;
	for (unsigned i = 0; i < r->n_comp; i++) {
		const struct tern_component *c = &rh.manifest.components[i];
		r->index_len[i] = tern_index_size(c->size, rh.manifest.chunk_size);
		r->payload_len[i] = c->size;
		if ((rc = tern_release_expect_bstr(r->bytes + pos, r->len - pos, r->index_len[i],
						   &hl)))
			return rc;
		r->index_at[i] = pos + hl;
		pos += hl + r->index_len[i];
		if ((rc = tern_release_expect_bstr(r->bytes + pos, r->len - pos, c->size, &hl)))
			return rc;
		r->payload_at[i] = pos + hl;
		pos += hl + c->size;
	}
	return 0;
}

struct pc {
	struct simtest t;
	struct rel rel[N_REL];
	uint8_t known[12][TERN_SHA256_LEN]; /* digests a running slot may have */
	unsigned n_known;
	uint8_t *mem_at[N_PARTS];		/* flash at the start of each part */
	struct tern_sim_device dev_at[N_PARTS]; /* device at the start of each part */
	uint32_t floor_at[N_PARTS];
	unsigned part; /* the part run_scenario() runs */
	uint32_t max_floor;
	uint64_t second_cut; /* after the first cut, cut again at this operation (0: no) */
	bool torn;
	unsigned n_cuts;
	/* Figures. */
	uint64_t n_resumed, n_reoffered, n_boots_checked, n_revert_resumed;
};

static void add_known(struct pc *pc, const uint8_t *data, size_t len)
{
	uint8_t d[TERN_SHA256_LEN];
	struct tern_sha256 h;
	tern_sha256_init(&h);
	for (size_t off = 0; off < len; off += pc->t.chunk_size) {
		size_t n = len - off < pc->t.chunk_size ? len - off : pc->t.chunk_size;
		tern_sha256(data + off, n, d);
		tern_sha256_update(&h, d, sizeof(d));
	}
	tern_sha256_final(&h, pc->known[pc->n_known++]);
}

static int setup(void **state)
{
	struct pc *pc = calloc(1, sizeof(*pc));
	if (!pc || simtest_setup(&pc->t, SLOT, SECTOR, 2 * 1024))
		return -1;
	uint8_t img[IMG], cfg[2][CFG_LEN];
	for (size_t i = 0; i < CFG_LEN; i++) {
		cfg[0][i] = (uint8_t)(i * 13 + 1);
		cfg[1][i] = (uint8_t)(i * 7 + 5);
	}
	/* The factory image is known too. */
	uint8_t factory[2 * 1024];
	tern_sim_image_make(factory, sizeof(factory), TERN_SIM_HEALTHY, "1.0.0");
	add_known(pc, factory, sizeof(factory));
	static const struct {
		const char *version;
		enum tern_sim_health health;
		int cfg; /* config blob 0 or 1, -1: none */
		uint32_t attempts, security;
		enum tern_event outcome;
		int reason;
		int revert_to; /* >= 0: a revert to that step's release */
	} spec[N_REL] = {
	    {"2.0.0", TERN_SIM_HEALTHY, 0, 3, 1, TERN_EV_CONFIRMED, 0, -1},
	    {"3.0.0", TERN_SIM_UNHEALTHY, -1, 3, 2, TERN_EV_ROLLED_BACK, 0, -1},
	    {"4.0.0", TERN_SIM_CRASH, -1, 2, 2, TERN_EV_ROLLED_BACK, TERN_E_TRIAL_BOOT, -1},
	    {"5.0.0", TERN_SIM_HEALTHY, 1, 3, 1, TERN_EV_CONFIRMED, 0, -1},
	    {NULL, 0, 0, 0, 0, TERN_EV_CONFIRMED, 0, 0}, /* fast path: 2.0.0 is in both pairs */
	    {"6.0.0", TERN_SIM_HEALTHY, -1, 3, 1, TERN_EV_CONFIRMED, 0, -1},
	    {NULL, 0, 0, 0, 0, TERN_EV_CONFIRMED, 0, 3}, /* 5.0.0's firmware is overwritten */
	};
	for (int i = 0; i < N_REL; i++) {
		struct rel *r = &pc->rel[i];
		r->outcome = spec[i].outcome;
		r->reason = spec[i].reason;
		if (spec[i].revert_to >= 0) {
			*r = pc->rel[spec[i].revert_to];
			r->revert = true;
			continue;
		}
		r->sequence = 2 + (uint64_t)i;
		r->security = spec[i].security;
		const uint8_t *c = spec[i].cfg >= 0 ? cfg[spec[i].cfg] : NULL;
		r->bytes = simtest_release_ex(&pc->t, NULL, "sim", spec[i].version, r->sequence,
					      r->security, spec[i].health, IMG, c, CFG_LEN,
					      spec[i].attempts, &r->len, NULL);
		if (!r->bytes || locate(r))
			return -1;
		tern_sim_image_make(img, IMG, spec[i].health, spec[i].version);
		add_known(pc, img, IMG);
		if (c)
			add_known(pc, c, CFG_LEN);
	}
	for (int i = 0; i < N_PARTS; i++)
		if (!(pc->mem_at[i] = malloc(pc->t.mem_len)))
			return -1;
	memcpy(pc->mem_at[0], pc->t.mem, pc->t.mem_len);
	pc->dev_at[0] = *pc->t.dev;
	*state = pc;
	return 0;
}

static int teardown(void **state)
{
	struct pc *pc = *state;
	for (int i = 0; i < N_REL; i++)
		if (!pc->rel[i].revert)
			free(pc->rel[i].bytes);
	for (int i = 0; i < N_PARTS; i++)
		free(pc->mem_at[i]);
	simtest_teardown(&pc->t);
	free(pc);
	return 0;
}

/* Back to the start of part pc->part. */
static void restore(struct pc *pc)
{
	memcpy(pc->t.mem, pc->mem_at[pc->part], pc->t.mem_len);
	*pc->t.dev = pc->dev_at[pc->part];
	pc->max_floor = pc->floor_at[pc->part];
	pc->n_cuts = 0;
}

/* Power comes back (and may fail again once, during the recovery); the device boots. */
static void recover(struct pc *pc)
{
	struct tern_sim_device *d = pc->t.dev;
	int rc = 0;
	while (d->flash.powered_off) {
		pc->n_cuts++;
		tern_sim_power_restore(&d->flash);
		if (pc->n_cuts == 1 && pc->second_cut)
			tern_sim_power_cut_at(&d->flash, pc->second_cut, pc->torn);
		rc = tern_sim_boot(d, 16);
	}
	assert_int_equal(rc, 0);
}

/* The running slot's bytes hash to its meta's digest, which is one we signed. */
static void check_slot_content(struct pc *pc, enum tern_pair pair, unsigned slot,
			       const struct tern_slot_meta *m)
{
	struct tern_sim_device *d = pc->t.dev;
	const uint8_t *base = pc->t.mem + d->flash.area_off[tern_slot_area(pair, slot)];
	uint8_t dg[TERN_SHA256_LEN], chunk[TERN_SHA256_LEN];
	struct tern_sha256 h;
	assert_true(m->size > 0 && m->size <= d->flash.area_size[tern_slot_area(pair, slot)]);
	tern_sha256_init(&h);
	for (uint64_t off = 0; off < m->size; off += m->chunk_size) {
		uint64_t n = m->size - off < m->chunk_size ? m->size - off : m->chunk_size;
		tern_sha256(base + off, (size_t)n, chunk);
		tern_sha256_update(&h, chunk, sizeof(chunk));
	}
	tern_sha256_final(&h, dg);
	assert_memory_equal(dg, m->index_digest, TERN_SHA256_LEN);
	bool known = false;
	for (unsigned i = 0; i < pc->n_known; i++)
		known = known || !memcmp(dg, pc->known[i], TERN_SHA256_LEN);
	assert_true(known);
	if (pair == TERN_PAIR_FW) {
		struct tern_sim_image img;
		assert_true(tern_sim_image_parse(base, TERN_SIM_IMAGE_HDR_LEN, &img));
		assert_string_equal(img.version, m->version);
	}
}

/* Everything that must hold whenever the device runs. */
static void check_invariants(struct pc *pc)
{
	struct tern_sim_device *d = pc->t.dev;
	struct tern_status st;
	assert_true(d->running);
	assert_int_equal(d->flash.violations, 0);
	tern_agent_status(&d->agent, &st);
	pc->n_boots_checked++;
	for (unsigned p = 0; p < TERN_N_PAIRS; p++) {
		unsigned s = st.running[p];
		if (s == TERN_SLOT_NONE) {
			assert_int_equal(p, TERN_PAIR_CFG);
			continue;
		}
		const struct tern_slot_meta *m = &st.slots[tern_slot_area((enum tern_pair)p, s)];
		check_slot_content(pc, (enum tern_pair)p, s, m);
		assert_true(m->security_counter >=
			    (p == TERN_PAIR_FW ? st.security_floor : st.config_security_floor));
		if (st.running_trial)
			assert_true(m->state == TERN_SLOT_STAGED || m->state == TERN_SLOT_GOOD);
		else
			assert_int_equal(m->state, TERN_SLOT_GOOD);
	}
	/* The floor never falls, and rises only with a confirmation. */
	assert_true(st.security_floor >= pc->max_floor);
	pc->max_floor = st.security_floor;
	if (st.security_floor > 0)
		assert_true(st.confirmed_sequence >= 2);
	unsigned n_installing = 0, n_staged = 0;
	for (unsigned i = 0; i < TERN_N_SLOTS; i++) {
		n_installing += st.slots[i].state == TERN_SLOT_INSTALLING;
		n_staged += st.slots[i].state == TERN_SLOT_STAGED;
	}
	switch (st.state) {
	case TERN_ST_DOWNLOADING:
		assert_true(n_installing > 0);
		break;
	case TERN_ST_STAGED:
		assert_true(n_staged > 0);
		break;
	case TERN_ST_CONFIRMED:
		assert_int_equal(st.last_event, TERN_EV_CONFIRMED);
		assert_int_equal(st.event_sequence, st.confirmed_sequence);
		assert_int_equal(st.running[TERN_PAIR_FW], st.active[TERN_PAIR_FW]);
		break;
	case TERN_ST_ROLLED_BACK: {
		assert_int_equal(st.last_event, TERN_EV_ROLLED_BACK);
		assert_true(st.reason == TERN_E_HEALTH || st.reason == TERN_E_TRIAL_BOOT);
		bool bad = false;
		for (unsigned i = 0; i < TERN_N_SLOTS; i++)
			bad = bad || (st.slots[i].state == TERN_SLOT_BAD &&
				      st.slots[i].sequence == st.event_sequence);
		assert_true(bad);
		assert_int_equal(st.running[TERN_PAIR_FW], st.active[TERN_PAIR_FW]);
		break;
	}
	case TERN_ST_TRIAL:
	case TERN_ST_VERIFYING:
		fail_msg("state %s after a completed boot", tern_state_name(st.state));
		break;
	default:
		break;
	}
	/* No slot being written or staged is the one running. */
	for (unsigned p = 0; p < TERN_N_PAIRS; p++) {
		unsigned s = st.running[p];
		if (s != TERN_SLOT_NONE && !st.running_trial)
			assert_true(st.slots[tern_slot_area((enum tern_pair)p, s)].state ==
				    TERN_SLOT_GOOD);
	}
}

static bool outcome_reached(const struct tern_sim_device *d, const struct rel *r)
{
	const struct tern_bootctl *bc = &d->agent.bc;
	return d->running && !bc->trial_pending && bc->event_sequence == r->sequence &&
	       (bc->last_event == TERN_EV_CONFIRMED || bc->last_event == TERN_EV_ROLLED_BACK ||
		bc->last_event == TERN_EV_FAILED);
}

/* One move towards the release's outcome; returns 0 or an error (a power cut). An
 * interrupted download is resumed with a plain offer, a revert too: its journal says. */
static int step(struct pc *pc, const struct rel *r)
{
	struct tern_sim_device *d = pc->t.dev;
	struct tern_agent *ag = &d->agent;
	switch (ag->state) {
	case TERN_ST_STAGED:
		if (ag->bc.trial_pending)
			return tern_sim_boot(d, 16);
		return tern_agent_activate(ag);
	case TERN_ST_TRIAL:
		return tern_sim_boot(d, 16);
	case TERN_ST_DOWNLOADING:
		if (ag->job.comp[0].n_verified > 0) {
			pc->n_resumed++;
			pc->n_revert_resumed += r->revert;
		}
		return tern_sim_install_buffer(d, r->bytes, r->len, PIECE, false);
	default:
		if (ag->bc.event_sequence == r->sequence)
			pc->n_reoffered++;
		return tern_sim_install_buffer(d, r->bytes, r->len, PIECE, r->revert);
	}
}

/* Runs part pc->part of the scenario; a power cut (armed by the caller) is survived by
 * rebooting. Returns the number of flash operations. */
static uint64_t run_scenario(struct pc *pc, bool *cut_happened)
{
	struct tern_sim_device *d = pc->t.dev;
	uint64_t ops0 = d->flash.n_ops;
	*cut_happened = false;
	for (int i = part_first[pc->part]; i < part_first[pc->part + 1]; i++) {
		const struct rel *r = &pc->rel[i];
		int n = 0;
		while (!outcome_reached(d, r)) {
			assert_true(++n < MAX_STEP);
			/* Whatever a step does, it never writes a slot that is running. */
			uint64_t running_ops[TERN_N_PAIRS];
			for (unsigned p = 0; p < TERN_N_PAIRS; p++)
				running_ops[p] = d->boot.slot[p] == TERN_SLOT_NONE
						     ? 0
						     : d->flash.n_area_ops[tern_slot_area(
							   (enum tern_pair)p, d->boot.slot[p])];
			uint8_t was_running[TERN_N_PAIRS] = {d->boot.slot[0], d->boot.slot[1]};
			int rc = step(pc, r);
			for (unsigned p = 0; p < TERN_N_PAIRS; p++)
				if (was_running[p] != TERN_SLOT_NONE)
					assert_int_equal(d->flash.n_area_ops[tern_slot_area(
							     (enum tern_pair)p, was_running[p])],
							 running_ops[p]);
			if (d->flash.powered_off) {
				*cut_happened = true;
				recover(pc);
				check_invariants(pc);
				continue;
			}
			if (rc != 0)
				fail_msg("release %d: %s in state %s", i, tern_errname(rc),
					 tern_state_name(d->agent.state));
			if (d->running && d->agent.state != TERN_ST_DOWNLOADING)
				check_invariants(pc);
		}
		const struct tern_bootctl *bc = &d->agent.bc;
		assert_int_equal(bc->last_event, r->outcome);
		if (r->reason)
			assert_int_equal(bc->last_reason, r->reason);
		check_invariants(pc);
	}
	/* The end state: 2.0.0 runs after part 0, confirmed, floor 1, with its config; after
	 * part 1, 5.0.0 (a revert: below 6.0.0's sequence), with its config, and 6.0.0 stays
	 * in the other slot, good. */
	struct tern_status st;
	tern_agent_status(&d->agent, &st);
	const struct tern_slot_meta *m =
	    &st.slots[tern_slot_area(TERN_PAIR_FW, st.running[TERN_PAIR_FW])];
	assert_int_equal(st.security_floor, 1);
	assert_true(st.running[TERN_PAIR_CFG] != TERN_SLOT_NONE);
	if (pc->part == 0) {
		assert_string_equal(m->version, "2.0.0");
		assert_int_equal(st.confirmed_sequence, 2);
		return d->flash.n_ops - ops0;
	}
	assert_string_equal(m->version, "5.0.0");
	assert_int_equal(st.security_floor, 1);
	assert_int_equal(st.confirmed_sequence, 5);
	assert_true(st.running[TERN_PAIR_CFG] != TERN_SLOT_NONE);
	assert_int_equal(
	    st.slots[tern_slot_area(TERN_PAIR_CFG, st.running[TERN_PAIR_CFG])].sequence, 5);
	m = &st.slots[tern_slot_area(TERN_PAIR_FW, st.running[TERN_PAIR_FW] ^ 1u)];
	assert_string_equal(m->version, "6.0.0");
	assert_int_equal(m->state, TERN_SLOT_GOOD);
	return d->flash.n_ops - ops0;
}

/* Runs every part once without a cut, keeping where each part starts; returns the
 * flash operations of each part in @ops. */
static void prepare_parts(struct pc *pc, uint64_t ops[N_PARTS])
{
	bool cut;
	pc->second_cut = 0;
	for (unsigned p = 0; p < N_PARTS; p++) {
		pc->part = p;
		restore(pc);
		ops[p] = run_scenario(pc, &cut);
		assert_false(cut);
		if (p + 1 < N_PARTS) {
			memcpy(pc->mem_at[p + 1], pc->t.mem, pc->t.mem_len);
			pc->dev_at[p + 1] = *pc->t.dev;
			pc->floor_at[p + 1] = pc->max_floor;
		}
	}
}

static void replay(struct pc *pc, bool torn)
{
	bool cut;
	uint64_t ops[N_PARTS];
	pc->torn = torn;
	prepare_parts(pc, ops);
	for (pc->part = 0; pc->part < N_PARTS; pc->part++) {
		uint64_t checked = 0, total = ops[pc->part];
		pc->n_resumed = pc->n_reoffered = pc->n_boots_checked = pc->n_revert_resumed = 0;
		for (uint64_t n = 1; n <= total; n++) {
			restore(pc);
			tern_sim_power_cut_at(&pc->t.dev->flash, n, torn);
			run_scenario(pc, &cut);
			if (!cut)
				fail_msg("cut at %llu of %llu never happened",
					 (unsigned long long)n, (unsigned long long)total);
			checked++;
		}
		printf("power-cut (%s, %s): %llu flash operations, %llu cut points checked, "
		       "%llu boots checked, %llu resumed downloads (%llu of a revert), %llu "
		       "offers repeated\n",
		       pc->part ? "reverts" : "installs", torn ? "torn writes" : "clean cuts",
		       (unsigned long long)total, (unsigned long long)checked,
		       (unsigned long long)pc->n_boots_checked, (unsigned long long)pc->n_resumed,
		       (unsigned long long)pc->n_revert_resumed,
		       (unsigned long long)pc->n_reoffered);
	}
	pc->part = 0;
}

/* Two cuts: at operation N (every fourth N), and again at operation M (1..6) of the
 * recovery that follows, torn. */
static void test_powercut_double(void **state)
{
	struct pc *pc = *state;
	bool cut;
	uint64_t ops[N_PARTS];
	pc->torn = true;
	prepare_parts(pc, ops);
	uint64_t checked = 0, second = 0;
	for (pc->part = 0; pc->part < N_PARTS; pc->part++) {
		for (uint64_t n = 1; n <= ops[pc->part]; n += 4) {
			for (uint64_t m = 1; m <= 6; m++) {
				restore(pc);
				pc->second_cut = m;
				tern_sim_power_cut_at(&pc->t.dev->flash, n, true);
				run_scenario(pc, &cut);
				assert_true(cut);
				checked++;
				second += pc->n_cuts > 1;
			}
		}
	}
	pc->part = 0;
	printf("power-cut (double, torn): %llu pairs of cut points checked, %llu with a second "
	       "cut during the recovery\n",
	       (unsigned long long)checked, (unsigned long long)second);
}

static uint32_t rnd(uint32_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return *x;
}

/* Codes an operation may return in the random test; anything else is a bug. */
static bool expected_rc(int rc)
{
	return rc == 0 || rc == TERN_E_POWER_CUT || rc == TERN_E_STATE || rc == TERN_E_BUSY ||
	       rc == TERN_E_OFFSET || rc == TERN_E_DIGEST || rc == TERN_E_TRUNCATED ||
	       rc == TERN_E_OLD_SEQUENCE || rc == TERN_E_BELOW_FLOOR || rc == TERN_E_INVAL;
}

/*
 * Random operations (seeded, so failures replay): offers, index and chunk feeds (good,
 * corrupted, at odd offsets), finish, activate, cancel, boots, and power cuts (clean or
 * torn) at random points. After every boot the invariants of the power-cut test hold,
 * and no operation breaks a flash rule or returns an unexpected code.
 */
static void test_random_operations(void **state)
{
	struct pc *pc = *state;
	struct tern_sim_device *d = pc->t.dev;
	uint64_t n_ops = 0, n_cuts = 0, n_confirmed = 0;
	for (uint32_t episode = 1; episode <= 40; episode++) {
		uint32_t x = episode * 2654435761u | 1u;
		restore(pc);
		for (int op = 0; op < 100; op++) {
			struct tern_agent *ag = &d->agent;
			const struct rel *r = &pc->rel[rnd(&x) % N_REL];
			/* Half the time, one move of the driver towards a release's outcome. */
			if (rnd(&x) % 2) {
				for (int i = 0; i < N_REL; i++)
					if (ag->state == TERN_ST_DOWNLOADING &&
					    ag->job.sequence == pc->rel[i].sequence)
						r = &pc->rel[i];
				int rc = outcome_reached(d, r) ? 0 : step(pc, r);
				n_ops++;
				if (!expected_rc(rc))
					fail_msg("episode %u op %d: driver got %s", episode, op,
						 tern_errname(rc));
				if (d->flash.powered_off) {
					n_cuts++;
					recover(pc);
				}
				if (d->running && d->agent.state != TERN_ST_DOWNLOADING)
					check_invariants(pc);
				continue;
			}
			unsigned comp = r->n_comp ? rnd(&x) % r->n_comp : 0;
			uint64_t cs = pc->t.chunk_size;
			uint64_t n_chunks = (r->payload_len[comp] + cs - 1) / cs;
			uint64_t k = rnd(&x) % n_chunks;
			uint64_t off = k * cs;
			size_t clen =
			    (size_t)(r->payload_len[comp] - off < cs ? r->payload_len[comp] - off
								     : cs);
			uint8_t bad[SECTOR];
			int rc = 0;
			switch (rnd(&x) % 12) {
			case 0:
				rc = r->revert ? tern_agent_offer_revert(ag, r->bytes, r->head_len)
					       : tern_agent_offer(ag, r->bytes, r->head_len);
				break;
			case 1:
			case 2:
				rc =
				    tern_agent_feed_index(ag, comp, 0, r->bytes + r->index_at[comp],
							  (size_t)r->index_len[comp]);
				break;
			case 3:
			case 4:
			case 5:
				rc = tern_agent_feed(ag, comp, off,
						     r->bytes + r->payload_at[comp] + off, clen);
				break;
			case 6:
				memcpy(bad, r->bytes + r->payload_at[comp] + off, clen);
				{
					size_t at = rnd(&x) % clen;
					bad[at] ^= (uint8_t)(1u << (rnd(&x) % 8));
				}
				rc = tern_agent_feed(ag, comp, off, bad, clen);
				break;
			case 7: {
				uint64_t o = rnd(&x) % r->payload_len[comp];
				size_t n = 1 + rnd(&x) % 300;
				if (n > r->payload_len[comp] - o)
					n = (size_t)(r->payload_len[comp] - o);
				rc = tern_agent_feed(ag, comp, o,
						     r->bytes + r->payload_at[comp] + o, n);
				break;
			}
			case 8:
				rc = rnd(&x) % 2 ? tern_agent_finish(ag) : tern_agent_activate(ag);
				break;
			case 9:
				rc = rnd(&x) % 4 ? tern_sim_install_buffer(d, r->bytes, r->len,
									   PIECE, r->revert)
						 : tern_agent_cancel(ag, 0);
				if (rc == TERN_E_WRONG_BOARD || rc == TERN_E_UNKNOWN_KEY)
					fail_msg("refused a good release: %s", tern_errname(rc));
				break;
			case 10:
				rc = tern_sim_boot(d, 16);
				if (!d->flash.powered_off) {
					assert_int_equal(rc, 0);
					check_invariants(pc);
				}
				break;
			case 11: {
				uint64_t at = 1 + rnd(&x) % 12;
				bool torn = rnd(&x) % 2;
				tern_sim_power_cut_at(&d->flash, at, torn);
			} break;
			}
			n_ops++;
			if (!expected_rc(rc))
				fail_msg("episode %u op %d: unexpected %s in state %s", episode, op,
					 tern_errname(rc), tern_state_name(d->agent.state));
			if (d->flash.powered_off) {
				n_cuts++;
				recover(pc);
				check_invariants(pc);
			}
		}
		tern_sim_power_cut_at(&d->flash, 0, false);
		assert_int_equal(tern_sim_boot(d, 16), 0);
		check_invariants(pc);
		n_confirmed += d->agent.bc.confirmed_sequence > 0;
	}
	printf("random operations: %llu operations in 40 episodes, %llu power cuts, %llu "
	       "episodes confirmed a release\n",
	       (unsigned long long)n_ops, (unsigned long long)n_cuts,
	       (unsigned long long)n_confirmed);
}

static void test_powercut_clean(void **state)
{
	replay(*state, false);
}

static void test_powercut_torn(void **state)
{
	replay(*state, true);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_powercut_clean, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_powercut_torn, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_powercut_double, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_random_operations, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
