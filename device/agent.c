/* The device agent: update state machine, streaming install, journal and resume. */
#include "tern/tern_agent.h"

#include "tern/tern_cose.h"
#include "tern/tern_err.h"

#include "le_priv.h"

#include <string.h>

/*
 * Journal layout (TERN_AREA_JOURNAL), computed from the job so that offer and resume
 * agree: the job record (JREC_SIZE bytes, one write, CRC32 last) alone in the first
 * sector(s); then the markers (per component: one write unit for "index verified", then
 * one write unit per chunk); then, sector-aligned, each component's chunk index. A marker
 * is any value other than erased flash: a marker write is only started once what it
 * vouches for is written and verified, so even a torn marker means "done".
 */
#define JREC_MAGIC     0x4c4e4a54u /* "TJNL" */
#define JREC_FORMAT    1u
#define JREC_SIZE      256u
#define JREC_COMP_SIZE (1u + 1u + 8u + TERN_SHA256_LEN)
_Static_assert(4 + 4 + 8 + 4 + 4 + 4 + 4 + TERN_RELEASE_ID_MAX + 1 + TERN_VERSION_MAX + 1 +
		       TERN_AGENT_MAX_COMPONENTS * JREC_COMP_SIZE + 1 + 4 <=
		   JREC_SIZE,
	       "journal record fits");
_Static_assert(sizeof(struct tern_manifest) <= TERN_AGENT_WBUF, "manifest scratch fits");

static uint64_t round_up(uint64_t v, uint64_t unit)
{
	return (v + unit - 1) / unit * unit;
}

static const struct tern_board_ops *ops(const struct tern_agent *ag)
{
	return ag->cfg.board->ops;
}

static void *bctx(const struct tern_agent *ag)
{
	return ag->cfg.board->ctx;
}

static int flash_read(struct tern_agent *ag, enum tern_area a, uint64_t off, void *buf, size_t len)
{
	return ops(ag)->read(bctx(ag), a, off, buf, len);
}

static int flash_write(struct tern_agent *ag, enum tern_area a, uint64_t off, const void *buf,
		       size_t len)
{
	return ops(ag)->write(bctx(ag), a, off, buf, len);
}

static int flash_erase(struct tern_agent *ag, enum tern_area a, uint64_t off, uint64_t len)
{
	return ops(ag)->erase(bctx(ag), a, off, len);
}

static int flash_flush(struct tern_agent *ag, enum tern_area a)
{
	return ops(ag)->flush ? ops(ag)->flush(bctx(ag), a) : 0;
}

const char *tern_state_name(enum tern_state st)
{
	static const char names[][12] = {"idle",  "downloading", "verifying",	"staged",
					 "trial", "confirmed",	 "rolled-back", "failed"};
	return (unsigned)st < sizeof(names) / sizeof(names[0]) ? names[st] : "unknown";
}

void tern_agent_init(struct tern_agent *ag, const struct tern_agent_config *cfg)
{
	memset(ag, 0, sizeof(*ag));
	ag->cfg = *cfg;
	ag->state = TERN_ST_IDLE;
	for (int p = 0; p < TERN_N_PAIRS; p++)
		ag->boot.slot[p] = TERN_SLOT_NONE;
}

/* --- the journal record --- */

static void jrec_encode(const struct tern_job *j, uint8_t out[JREC_SIZE])
{
	struct le_cursor c = {out, 0};
	memset(out, 0, JREC_SIZE);
	le_put_u32(&c, JREC_MAGIC);
	le_put_u32(&c, JREC_FORMAT);
	le_put_u64(&c, j->sequence);
	le_put_u32(&c, j->security_counter);
	le_put_u32(&c, j->chunk_size);
	le_put_u32(&c, j->trial_attempts);
	le_put_u32(&c, j->n_comp);
	le_put_raw(&c, j->release_id, sizeof(j->release_id));
	le_put_raw(&c, j->version, sizeof(j->version));
	for (unsigned i = 0; i < TERN_AGENT_MAX_COMPONENTS; i++) {
		le_put_u8(&c, j->comp[i].pair);
		le_put_u8(&c, j->comp[i].slot);
		le_put_u64(&c, j->comp[i].size);
		le_put_raw(&c, j->comp[i].index_digest, TERN_SHA256_LEN);
	}
	le_put_u8(&c, j->revert); /* zero in records written before reverts existed */
	uint32_t crc = tern_crc32(0, out, JREC_SIZE - 4);
	c.pos = JREC_SIZE - 4;
	le_put_u32(&c, crc);
}

static bool jrec_decode(struct tern_job *j, const uint8_t in[JREC_SIZE])
{
	struct le_cursor c = {(uint8_t *)(uintptr_t)in, JREC_SIZE - 4};
	if (le_get_u32(&c) != tern_crc32(0, in, JREC_SIZE - 4))
		return false;
	c.pos = 0;
	if (le_get_u32(&c) != JREC_MAGIC || le_get_u32(&c) != JREC_FORMAT)
		return false;
	memset(j, 0, sizeof(*j));
	j->sequence = le_get_u64(&c);
	j->security_counter = le_get_u32(&c);
	j->chunk_size = le_get_u32(&c);
	j->trial_attempts = le_get_u32(&c);
	j->n_comp = le_get_u32(&c);
	le_get_raw(&c, j->release_id, sizeof(j->release_id));
	le_get_raw(&c, j->version, sizeof(j->version));
	j->release_id[TERN_RELEASE_ID_MAX] = '\0';
	j->version[TERN_VERSION_MAX] = '\0';
	if (j->n_comp == 0 || j->n_comp > TERN_AGENT_MAX_COMPONENTS || j->chunk_size == 0)
		return false;
	for (unsigned i = 0; i < TERN_AGENT_MAX_COMPONENTS; i++) {
		j->comp[i].pair = le_get_u8(&c);
		j->comp[i].slot = le_get_u8(&c);
		j->comp[i].size = le_get_u64(&c);
		le_get_raw(&c, j->comp[i].index_digest, TERN_SHA256_LEN);
	}
	j->revert = le_get_u8(&c) != 0;
	return true;
}

/* Computes the journal offsets of @j; TERN_E_SLOT_TOO_SMALL when it does not fit. */
static int job_layout(struct tern_agent *ag, struct tern_job *j)
{
	const struct tern_area_info *ji = &ag->areas[TERN_AREA_JOURNAL];
	uint64_t a = ji->write_align, s = ji->sector_size;
	uint64_t off = round_up(JREC_SIZE, s);
	for (unsigned i = 0; i < j->n_comp; i++) {
		struct tern_job_comp *c = &j->comp[i];
		c->n_chunks = tern_chunk_count(c->size, j->chunk_size);
		c->index_size = tern_index_size(c->size, j->chunk_size);
		c->index_marker_off = off;
		off += a;
		c->marker_off = off;
		off += c->n_chunks * a;
	}
	off = round_up(off, s);
	for (unsigned i = 0; i < j->n_comp; i++) {
		j->comp[i].index_off = off;
		off += round_up(j->comp[i].index_size, s);
	}
	j->layout_size = off;
	return off <= ji->size ? 0 : TERN_E_SLOT_TOO_SMALL;
}

/* True when the marker at @off is written (anything but erased flash). */
static int marker_read(struct tern_agent *ag, uint64_t off, bool *set)
{
	uint8_t m[TERN_WRITE_ALIGN_MAX];
	uint32_t a = ag->areas[TERN_AREA_JOURNAL].write_align;
	int rc = flash_read(ag, TERN_AREA_JOURNAL, off, m, a);
	if (rc)
		return rc;
	*set = false;
	for (uint32_t i = 0; i < a; i++)
		if (m[i] != 0xff)
			*set = true;
	return 0;
}

static int marker_write(struct tern_agent *ag, uint64_t off)
{
	uint8_t m[TERN_WRITE_ALIGN_MAX];
	memset(m, 0, sizeof(m));
	return flash_write(ag, TERN_AREA_JOURNAL, off, m, ag->areas[TERN_AREA_JOURNAL].write_align);
}

/* Counts verified chunks of every component from the markers on flash. */
static int job_scan_markers(struct tern_agent *ag)
{
	for (unsigned i = 0; i < ag->job.n_comp; i++) {
		struct tern_job_comp *c = &ag->job.comp[i];
		uint32_t a = ag->areas[TERN_AREA_JOURNAL].write_align;
		int rc = marker_read(ag, c->index_marker_off, &c->index_done);
		if (rc)
			return rc;
		c->n_verified = 0;
		c->first_missing = c->n_chunks;
		c->end_marked = 0;
		for (uint64_t k = 0; k < c->n_chunks; k++) {
			bool set;
			if ((rc = marker_read(ag, c->marker_off + k * a, &set)))
				return rc;
			if (set) {
				c->n_verified++;
				c->end_marked = k + 1;
			} else if (c->first_missing == c->n_chunks) {
				c->first_missing = k;
			}
		}
	}
	return 0;
}

/* --- state derivation --- */

static struct tern_slot_meta *slot_meta(struct tern_agent *ag, unsigned pair, unsigned slot)
{
	return &ag->bc.slots[tern_slot_area((enum tern_pair)pair, slot)];
}

/* True when the journal's job is the one the record marks as installing. */
static bool job_matches_record(struct tern_agent *ag)
{
	unsigned n_installing = 0;
	for (unsigned s = 0; s < TERN_N_SLOTS; s++)
		if (ag->bc.slots[s].state == TERN_SLOT_INSTALLING)
			n_installing++;
	if (n_installing != ag->job.n_comp)
		return false;
	for (unsigned i = 0; i < ag->job.n_comp; i++) {
		const struct tern_job_comp *c = &ag->job.comp[i];
		if (c->pair >= TERN_N_PAIRS || c->slot > 1)
			return false;
		const struct tern_slot_meta *m = slot_meta(ag, c->pair, c->slot);
		if (m->state != TERN_SLOT_INSTALLING || m->sequence != ag->job.sequence ||
		    m->size != c->size || memcmp(m->index_digest, c->index_digest, TERN_SHA256_LEN))
			return false;
	}
	return true;
}

/* Loads the journal's job; *found false when there is none for the record's install. */
static int job_load(struct tern_agent *ag, bool *found)
{
	*found = false;
	int rc = flash_read(ag, TERN_AREA_JOURNAL, 0, ag->u.wbuf, JREC_SIZE);
	if (rc)
		return rc;
	if (!jrec_decode(&ag->job, ag->u.wbuf))
		return 0;
	if (job_layout(ag, &ag->job) || !job_matches_record(ag))
		return 0;
	if ((rc = job_scan_markers(ag)))
		return rc;
	*found = true;
	return 0;
}

static bool any_slot_in(const struct tern_agent *ag, enum tern_slot_state st)
{
	for (unsigned s = 0; s < TERN_N_SLOTS; s++)
		if (ag->bc.slots[s].state == st)
			return true;
	return false;
}

static enum tern_state state_from_event(unsigned ev)
{
	switch (ev) {
	case TERN_EV_CONFIRMED:
		return TERN_ST_CONFIRMED;
	case TERN_EV_ROLLED_BACK:
		return TERN_ST_ROLLED_BACK;
	case TERN_EV_FAILED:
		return TERN_ST_FAILED;
	default:
		return TERN_ST_IDLE;
	}
}

int tern_agent_start(struct tern_agent *ag, const struct tern_boot_result *boot)
{
	int rc;
	ag->boot = *boot;
	ag->sk = TERN_STREAM_NONE;
	ag->idx_n = 0;
	ag->wlen = 0;
	ag->reboot_needed = false;
	memset(&ag->job, 0, sizeof(ag->job));
	for (int a = 0; a < TERN_AREA__COUNT; a++) {
		struct tern_area_info *ai = &ag->areas[a];
		if ((rc = ops(ag)->area_info(bctx(ag), (enum tern_area)a, ai)))
			return rc;
		if (ai->write_align == 0 || ai->write_align > TERN_WRITE_ALIGN_MAX ||
		    (ai->write_align & (ai->write_align - 1)) || ai->sector_size == 0 ||
		    ai->sector_size % ai->write_align)
			return TERN_E_INVAL;
	}
	if ((rc = tern_bootctl_load(ag->cfg.board, &ag->bc, ag->rec)))
		return rc;
	ag->reason = ag->bc.last_reason;
	if (ag->bc.trial_pending) {
		ag->state = boot->trial ? TERN_ST_TRIAL : TERN_ST_STAGED;
		return 0;
	}
	bool found = false;
	if (any_slot_in(ag, TERN_SLOT_INSTALLING) && (rc = job_load(ag, &found)))
		return rc;
	if (found)
		ag->state = TERN_ST_DOWNLOADING;
	else if (any_slot_in(ag, TERN_SLOT_STAGED))
		ag->state = TERN_ST_STAGED;
	else
		ag->state = state_from_event(ag->bc.last_event);
	if (!found)
		memset(&ag->job, 0, sizeof(ag->job));
	return 0;
}

/* --- offer --- */

static void stream_abandon(struct tern_agent *ag);

static enum tern_pair pair_of_kind(enum tern_component_kind k)
{
	return k == TERN_KIND_CONFIG ? TERN_PAIR_CFG : TERN_PAIR_FW;
}

/* Builds ag->job from the decoded manifest in ag->u.m, checking it fits this device. */
static int job_from_manifest(struct tern_agent *ag, struct tern_job *j)
{
	const struct tern_manifest *m = &ag->u.m;
	memset(j, 0, sizeof(*j));
	if (m->n_components > TERN_AGENT_MAX_COMPONENTS)
		return TERN_E_TOO_LARGE;
	memcpy(j->release_id, m->release_id, sizeof(j->release_id));
	memcpy(j->version, m->version, sizeof(j->version));
	j->sequence = m->sequence;
	j->security_counter = m->security_counter;
	j->chunk_size = m->chunk_size;
	j->trial_attempts = m->early_life.trial_attempts ? m->early_life.trial_attempts : 1;
	if (j->trial_attempts > 255)
		j->trial_attempts = 255;
	j->n_comp = (unsigned)m->n_components;
	for (unsigned i = 0; i < j->n_comp; i++) {
		const struct tern_component *mc = &m->components[i];
		struct tern_job_comp *c = &j->comp[i];
		enum tern_pair p = pair_of_kind(mc->kind);
		for (unsigned k = 0; k < i; k++)
			if (j->comp[k].pair == p)
				return TERN_E_MALFORMED; /* one component per slot pair */
		c->pair = (uint8_t)p;
		uint8_t active = ag->bc.active[p];
		c->slot = active == TERN_SLOT_NONE ? 0 : (uint8_t)(active ^ 1u);
		c->size = mc->size;
		memcpy(c->index_digest, mc->index_digest, TERN_SHA256_LEN);
		if (c->slot == ag->boot.slot[p])
			return TERN_E_STATE; /* never write the slot we run from */
		const struct tern_area_info *ai = &ag->areas[tern_slot_area(p, c->slot)];
		if (c->size > ai->size)
			return TERN_E_SLOT_TOO_SMALL;
		if (j->chunk_size % ai->sector_size)
			return TERN_E_GEOMETRY;
	}
	return job_layout(ag, j);
}

static bool same_release(const struct tern_job *a, const struct tern_job *b)
{
	if (a->sequence != b->sequence || a->n_comp != b->n_comp ||
	    strcmp(a->release_id, b->release_id))
		return false;
	for (unsigned i = 0; i < a->n_comp; i++)
		if (a->comp[i].size != b->comp[i].size ||
		    memcmp(a->comp[i].index_digest, b->comp[i].index_digest, TERN_SHA256_LEN))
			return false;
	return true;
}

/* True when every component of @j sits whole in its target slot, in slot state @st:
 * staged by this offer before, or good (confirmed once: the release before an update,
 * kept in the inactive slot), which makes a revert to it need no download. */
static bool job_in_slots(struct tern_agent *ag, const struct tern_job *j, enum tern_slot_state st)
{
	for (unsigned i = 0; i < j->n_comp; i++) {
		const struct tern_slot_meta *m = slot_meta(ag, j->comp[i].pair, j->comp[i].slot);
		if (m->state != st || m->sequence != j->sequence || m->size != j->comp[i].size ||
		    m->chunk_size != j->chunk_size ||
		    memcmp(m->index_digest, j->comp[i].index_digest, TERN_SHA256_LEN))
			return false;
	}
	return true;
}

/* Verifies the signed manifest and decodes it into ag->u.m. */
static int open_manifest(struct tern_agent *ag, const uint8_t *sm, size_t len)
{
	struct tern_sign1 s;
	if (!ag->cfg.keyring)
		return TERN_E_UNKNOWN_KEY;
	if (len > TERN_SIGNED_MANIFEST_MAX)
		return TERN_E_TOO_LARGE;
	int rc = tern_cose_sign1_open(&s, sm, len, ag->cfg.keyring, NULL);
	if (rc)
		return rc;
	if (s.total_len != len)
		return TERN_E_TRAILING;
	if (s.payload_len > TERN_MANIFEST_MAX)
		return TERN_E_TOO_LARGE;
	rc = tern_manifest_decode(&ag->u.m, s.payload, s.payload_len);
	ag->u.m.notes = NULL; /* borrowed from @sm; not kept */
	ag->u.m.notes_len = 0;
	return rc;
}

/* Writes the journal for ag->job: erase its extent, then the record (the commit). */
static int journal_create(struct tern_agent *ag)
{
	int rc = flash_erase(ag, TERN_AREA_JOURNAL, 0, ag->job.layout_size);
	if (rc)
		return rc;
	jrec_encode(&ag->job, ag->u.wbuf);
	if ((rc = flash_write(ag, TERN_AREA_JOURNAL, 0, ag->u.wbuf, JREC_SIZE)))
		return rc;
	return flash_flush(ag, TERN_AREA_JOURNAL);
}

static int offer(struct tern_agent *ag, const uint8_t *sm, size_t len, bool revert)
{
	struct tern_job j;
	int rc;
	if (ag->state == TERN_ST_TRIAL || ag->state == TERN_ST_VERIFYING ||
	    (ag->state == TERN_ST_STAGED && ag->bc.trial_pending) || ag->reboot_needed)
		return TERN_E_BUSY;
	/* Decoding uses the write buffer: a chunk half streamed starts again later. */
	stream_abandon(ag);
	if ((rc = open_manifest(ag, sm, len)))
		return rc;
	const struct tern_manifest *m = &ag->u.m;
	if (!ag->cfg.board_id || !tern_manifest_has_board(m, ag->cfg.board_id))
		return TERN_E_WRONG_BOARD;
	/* A revert may go back; so may the resume of an interrupted one (its journal says). */
	bool resuming_revert =
	    ag->state == TERN_ST_DOWNLOADING && ag->job.revert && ag->job.sequence == m->sequence;
	if (m->sequence <= ag->bc.confirmed_sequence && !revert && !resuming_revert)
		return TERN_E_OLD_SEQUENCE;
	if ((rc = job_from_manifest(ag, &j)))
		return rc;
	j.revert = revert || resuming_revert;
	for (unsigned i = 0; i < j.n_comp; i++)
		if (j.security_counter < ag->bc.security_floor[j.comp[i].pair])
			return TERN_E_BELOW_FLOOR;
	if (ag->state == TERN_ST_DOWNLOADING) {
		if (same_release(&j, &ag->job))
			return 0; /* resume: the journal and markers stand */
		return TERN_E_BUSY;
	}
	if (ag->state == TERN_ST_STAGED && job_in_slots(ag, &j, TERN_SLOT_STAGED))
		return 0;

	/* Accepted. One record write: stale staged slots empty; the target slots staged when
	 * they hold the release already (no download), else installing. */
	bool in_slots = job_in_slots(ag, &j, TERN_SLOT_GOOD);
	struct tern_bootctl bc = ag->bc;
	for (unsigned s = 0; s < TERN_N_SLOTS; s++)
		if (bc.slots[s].state == TERN_SLOT_STAGED ||
		    bc.slots[s].state == TERN_SLOT_INSTALLING)
			bc.slots[s].state = TERN_SLOT_EMPTY;
	for (unsigned i = 0; i < j.n_comp; i++) {
		struct tern_slot_meta *sm_ =
		    &bc.slots[tern_slot_area((enum tern_pair)j.comp[i].pair, j.comp[i].slot)];
		if (in_slots) {
			sm_->state = TERN_SLOT_STAGED;
			continue;
		}
		memset(sm_, 0, sizeof(*sm_));
		sm_->state = TERN_SLOT_INSTALLING;
		sm_->trial_attempts = (uint8_t)j.trial_attempts;
		sm_->security_counter = j.security_counter;
		sm_->sequence = j.sequence;
		sm_->size = j.comp[i].size;
		sm_->chunk_size = j.chunk_size;
		memcpy(sm_->index_digest, j.comp[i].index_digest, TERN_SHA256_LEN);
		memcpy(sm_->version, j.version, sizeof(sm_->version));
	}
	bc.last_event = in_slots ? TERN_EV_STAGED : TERN_EV_INSTALLING;
	bc.last_reason = 0;
	bc.event_sequence = j.sequence;
	if ((rc = tern_bootctl_store(ag->cfg.board, &bc, ag->rec)))
		return rc;
	ag->bc = bc;
	ag->job = j;
	ag->sk = TERN_STREAM_NONE;
	ag->idx_n = 0;
	ag->wlen = 0;
	ag->reason = 0;
	ag->state = in_slots ? TERN_ST_STAGED : TERN_ST_DOWNLOADING;
	if (in_slots)
		return 0;
	if ((rc = journal_create(ag))) {
		/* Without its record the install cannot resume: offer it again. */
		ag->state = TERN_ST_IDLE;
		return rc;
	}
	for (unsigned i = 0; i < ag->job.n_comp; i++) {
		ag->job.comp[i].first_missing = 0;
		ag->job.comp[i].end_marked = 0;
		ag->job.comp[i].n_verified = 0;
		ag->job.comp[i].index_done = false;
	}
	return 0;
}

int tern_agent_offer(struct tern_agent *ag, const uint8_t *sm, size_t len)
{
	return offer(ag, sm, len, false);
}

int tern_agent_offer_revert(struct tern_agent *ag, const uint8_t *sm, size_t len)
{
	return offer(ag, sm, len, true);
}

/* --- streaming writes --- */

/* Area and flash offset where the current stream's byte @pos goes. */
static void stream_target(const struct tern_agent *ag, enum tern_area *area, uint64_t *base)
{
	const struct tern_job_comp *c = &ag->job.comp[ag->s_comp];
	if (ag->sk == TERN_STREAM_INDEX) {
		*area = TERN_AREA_JOURNAL;
		*base = c->index_off;
	} else {
		*area = tern_slot_area((enum tern_pair)c->pair, c->slot);
		*base = ag->s_chunk * ag->job.chunk_size;
	}
}

/* Writes @len bytes of the current stream: whole write units straight from @buf when
 * nothing waits in the buffer, the rest through wbuf. Hashes them. */
static int stream_write(struct tern_agent *ag, const uint8_t *buf, size_t len)
{
	enum tern_area area;
	uint64_t base;
	stream_target(ag, &area, &base);
	uint32_t a = ag->areas[area].write_align;
	int rc;
	tern_sha256_update(&ag->sha, buf, len);
	ag->s_pos += len;
	while (len) {
		if (ag->wlen == 0 && len >= a) {
			size_t n = len - len % a;
			if ((rc = flash_write(ag, area, base + ag->s_flushed, buf, n)))
				return rc;
			ag->s_flushed += n;
			buf += n;
			len -= n;
			continue;
		}
		size_t n = TERN_AGENT_WBUF - ag->wlen;
		if (n > len)
			n = len;
		memcpy(ag->u.wbuf + ag->wlen, buf, n);
		ag->wlen += n;
		buf += n;
		len -= n;
		if (ag->wlen == TERN_AGENT_WBUF) {
			if ((rc =
				 flash_write(ag, area, base + ag->s_flushed, ag->u.wbuf, ag->wlen)))
				return rc;
			ag->s_flushed += ag->wlen;
			ag->wlen = 0;
		}
	}
	return 0;
}

/* Writes what waits in wbuf, padded with erased bytes to a whole write unit. */
static int stream_flush(struct tern_agent *ag)
{
	if (ag->wlen == 0)
		return 0;
	enum tern_area area;
	uint64_t base;
	stream_target(ag, &area, &base);
	size_t padded = (size_t)round_up(ag->wlen, ag->areas[area].write_align);
	memset(ag->u.wbuf + ag->wlen, 0xff, padded - ag->wlen);
	int rc = flash_write(ag, area, base + ag->s_flushed, ag->u.wbuf, padded);
	if (rc)
		return rc;
	ag->s_flushed += padded;
	ag->wlen = 0;
	return 0;
}

/* Starts streaming @kind for component @comp (chunk @chunk): erases its flash first. */
static int stream_begin(struct tern_agent *ag, enum tern_stream_kind kind, unsigned comp,
			uint64_t chunk)
{
	ag->sk = kind;
	ag->s_comp = comp;
	ag->s_chunk = chunk;
	ag->s_pos = 0;
	ag->s_flushed = 0;
	ag->wlen = 0;
	tern_sha256_init(&ag->sha);
	const struct tern_job_comp *c = &ag->job.comp[comp];
	int rc;
	if (kind == TERN_STREAM_INDEX) {
		ag->idx_n = 0; /* the index region is written again */
		rc = flash_erase(ag, TERN_AREA_JOURNAL, c->index_off,
				 round_up(c->index_size, ag->areas[TERN_AREA_JOURNAL].sector_size));
	} else {
		enum tern_area area = tern_slot_area((enum tern_pair)c->pair, c->slot);
		uint32_t len = tern_chunk_len(c->size, ag->job.chunk_size, chunk);
		rc = flash_erase(ag, area, chunk * ag->job.chunk_size,
				 round_up(len, ag->areas[area].sector_size));
	}
	if (rc)
		ag->sk = TERN_STREAM_NONE;
	return rc;
}

static void stream_abandon(struct tern_agent *ag)
{
	if (ag->sk != TERN_STREAM_NONE) {
		uint8_t d[TERN_SHA256_LEN];
		tern_sha256_final(&ag->sha, d);
	}
	ag->sk = TERN_STREAM_NONE;
	ag->wlen = 0;
}

static int check_downloading(struct tern_agent *ag, unsigned comp)
{
	if (ag->state != TERN_ST_DOWNLOADING)
		return TERN_E_STATE;
	if (comp >= ag->job.n_comp)
		return TERN_E_INVAL;
	return 0;
}

int tern_agent_feed_index(struct tern_agent *ag, unsigned comp, uint64_t off, const void *buf,
			  size_t len)
{
	int rc = check_downloading(ag, comp);
	if (rc)
		return rc;
	struct tern_job_comp *c = &ag->job.comp[comp];
	const uint8_t *p = buf;
	if (c->index_done)
		return off + len <= c->index_size ? 0 : TERN_E_OFFSET;
	if (off + len > c->index_size)
		return TERN_E_OFFSET;
	bool continuing = ag->sk == TERN_STREAM_INDEX && ag->s_comp == comp;
	uint64_t pos = continuing ? ag->s_pos : 0;
	if (off > pos)
		return TERN_E_OFFSET;
	if (off + len <= pos)
		return 0; /* already have these bytes */
	size_t skip = (size_t)(pos - off);
	p += skip;
	len -= skip;
	if (!continuing) {
		stream_abandon(ag);
		if ((rc = stream_begin(ag, TERN_STREAM_INDEX, comp, 0)))
			return rc;
	}
	if ((rc = stream_write(ag, p, len)))
		goto out_abandon;
	if (ag->s_pos < c->index_size)
		return 0;
	uint8_t d[TERN_SHA256_LEN];
	if ((rc = stream_flush(ag)))
		goto out_abandon;
	tern_sha256_final(&ag->sha, d);
	ag->sk = TERN_STREAM_NONE;
	if (memcmp(d, c->index_digest, TERN_SHA256_LEN))
		return TERN_E_DIGEST; /* the next try erases the region again */
	if ((rc = flash_flush(ag, TERN_AREA_JOURNAL)) ||
	    (rc = marker_write(ag, c->index_marker_off)))
		return rc;
	c->index_done = true;
	return 0;
out_abandon:
	stream_abandon(ag);
	return rc;
}

/* True when chunk @k of @c carries its marker: known from RAM where possible. */
static int chunk_marked(struct tern_agent *ag, const struct tern_job_comp *c, uint64_t k, bool *set)
{
	if (k < c->first_missing) {
		*set = true;
		return 0;
	}
	if (k >= c->end_marked) {
		*set = false;
		return 0;
	}
	return marker_read(ag, c->marker_off + k * ag->areas[TERN_AREA_JOURNAL].write_align, set);
}

/* Copies chunk @k's digest from the index into @out, through a small cache. */
static int index_entry(struct tern_agent *ag, unsigned comp, uint64_t k,
		       uint8_t out[TERN_SHA256_LEN])
{
	const struct tern_job_comp *c = &ag->job.comp[comp];
	if (ag->idx_n == 0 || ag->idx_comp != comp || k < ag->idx_first ||
	    k >= ag->idx_first + ag->idx_n) {
		uint64_t n = c->n_chunks - k < TERN_AGENT_INDEX_CACHE ? c->n_chunks - k
								      : TERN_AGENT_INDEX_CACHE;
		ag->idx_n = 0;
		int rc = flash_read(ag, TERN_AREA_JOURNAL, c->index_off + k * TERN_SHA256_LEN,
				    ag->idx_cache, (size_t)n * TERN_SHA256_LEN);
		if (rc)
			return rc;
		ag->idx_comp = comp;
		ag->idx_first = k;
		ag->idx_n = (unsigned)n;
	}
	memcpy(out, ag->idx_cache + (k - ag->idx_first) * TERN_SHA256_LEN, TERN_SHA256_LEN);
	return 0;
}

/* Ends the chunk being streamed: checks it against the index and marks it verified. */
static int chunk_complete(struct tern_agent *ag)
{
	struct tern_job_comp *c = &ag->job.comp[ag->s_comp];
	uint8_t d[TERN_SHA256_LEN], want[TERN_SHA256_LEN];
	uint64_t k = ag->s_chunk;
	int rc = stream_flush(ag);
	if (rc)
		return rc;
	tern_sha256_final(&ag->sha, d);
	ag->sk = TERN_STREAM_NONE;
	if ((rc = index_entry(ag, ag->s_comp, k, want)))
		return rc;
	enum tern_area area = tern_slot_area((enum tern_pair)c->pair, c->slot);
	if (memcmp(d, want, sizeof(d))) {
		/* Refused alone: erase it so it can be fetched and written again. */
		uint32_t len = tern_chunk_len(c->size, ag->job.chunk_size, k);
		rc = flash_erase(ag, area, k * ag->job.chunk_size,
				 round_up(len, ag->areas[area].sector_size));
		return rc ? rc : TERN_E_DIGEST;
	}
	if ((rc = flash_flush(ag, area)) ||
	    (rc = marker_write(ag, c->marker_off + k * ag->areas[TERN_AREA_JOURNAL].write_align)))
		return rc;
	c->n_verified++;
	if (k + 1 > c->end_marked)
		c->end_marked = k + 1;
	while (c->first_missing < c->n_chunks) {
		bool set = c->first_missing == k;
		if (!set && (rc = chunk_marked(ag, c, c->first_missing, &set)))
			return rc;
		if (!set)
			break;
		c->first_missing++;
	}
	return 0;
}

int tern_agent_feed(struct tern_agent *ag, unsigned comp, uint64_t off, const void *buf, size_t len)
{
	int rc = check_downloading(ag, comp);
	if (rc)
		return rc;
	struct tern_job_comp *c = &ag->job.comp[comp];
	const uint8_t *p = buf;
	uint32_t cs = ag->job.chunk_size;
	if (!c->index_done)
		return TERN_E_STATE;
	if (off > c->size || len > c->size - off)
		return TERN_E_OFFSET;
	while (len) {
		uint64_t k = off / cs;
		uint64_t in_chunk = off - k * cs;
		uint32_t clen = tern_chunk_len(c->size, cs, k);
		size_t take = (size_t)(clen - in_chunk) < len ? (size_t)(clen - in_chunk) : len;
		bool continuing = ag->sk == TERN_STREAM_CHUNK && ag->s_comp == comp &&
				  ag->s_chunk == k && ag->s_pos == in_chunk;
		if (!continuing) {
			bool done;
			if ((rc = chunk_marked(ag, c, k, &done)))
				return rc;
			if (done) {
				off += take;
				p += take;
				len -= take;
				continue;
			}
			if (in_chunk != 0)
				return TERN_E_OFFSET;
			stream_abandon(ag);
			if ((rc = stream_begin(ag, TERN_STREAM_CHUNK, comp, k)))
				return rc;
		}
		if ((rc = stream_write(ag, p, take))) {
			stream_abandon(ag);
			return rc;
		}
		off += take;
		p += take;
		len -= take;
		if (ag->s_pos == clen && (rc = chunk_complete(ag))) {
			stream_abandon(ag);
			return rc;
		}
	}
	return 0;
}

int tern_agent_next_needed(struct tern_agent *ag, unsigned *comp, bool *is_index, uint64_t *off)
{
	if (ag->state != TERN_ST_DOWNLOADING)
		return TERN_E_STATE;
	for (unsigned i = 0; i < ag->job.n_comp; i++) {
		const struct tern_job_comp *c = &ag->job.comp[i];
		bool streaming = ag->s_comp == i;
		*comp = i;
		if (!c->index_done) {
			*is_index = true;
			*off = streaming && ag->sk == TERN_STREAM_INDEX ? ag->s_pos : 0;
			return 0;
		}
		if (c->first_missing < c->n_chunks) {
			*is_index = false;
			*off = c->first_missing * ag->job.chunk_size;
			if (streaming && ag->sk == TERN_STREAM_CHUNK &&
			    ag->s_chunk == c->first_missing)
				*off += ag->s_pos;
			return 0;
		}
	}
	return TERN_E_STATE;
}

int tern_agent_chunk_verified(struct tern_agent *ag, unsigned comp, uint64_t k, bool *verified)
{
	int rc = check_downloading(ag, comp);
	if (rc)
		return rc;
	const struct tern_job_comp *c = &ag->job.comp[comp];
	if (k >= c->n_chunks)
		return TERN_E_INVAL;
	return chunk_marked(ag, c, k, verified);
}

/* Marks the job's slots with @state, records @ev and @reason, in one record write. */
static int record_job(struct tern_agent *ag, enum tern_slot_state st, enum tern_event ev,
		      int reason)
{
	struct tern_bootctl bc = ag->bc;
	for (unsigned i = 0; i < ag->job.n_comp; i++)
		bc.slots[tern_slot_area((enum tern_pair)ag->job.comp[i].pair, ag->job.comp[i].slot)]
		    .state = (uint8_t)st;
	bc.last_event = (uint8_t)ev;
	bc.last_reason = reason;
	bc.event_sequence = ag->job.sequence;
	int rc = tern_bootctl_store(ag->cfg.board, &bc, ag->rec);
	if (rc == 0)
		ag->bc = bc;
	return rc;
}

int tern_agent_finish(struct tern_agent *ag)
{
	if (ag->state != TERN_ST_DOWNLOADING)
		return TERN_E_STATE;
	for (unsigned i = 0; i < ag->job.n_comp; i++) {
		const struct tern_job_comp *c = &ag->job.comp[i];
		if (!c->index_done || c->n_verified != c->n_chunks)
			return TERN_E_TRUNCATED;
	}
	stream_abandon(ag);
	ag->state = TERN_ST_VERIFYING;
	int rc;
	if (ag->cfg.verify_on_finish) {
		for (unsigned i = 0; i < ag->job.n_comp; i++) {
			const struct tern_job_comp *c = &ag->job.comp[i];
			struct tern_slot_meta *m = slot_meta(ag, c->pair, c->slot);
			if (tern_slot_verify(ag->cfg.board, (enum tern_pair)c->pair, c->slot, m,
					     ag->u.wbuf, sizeof(ag->u.wbuf)))
				continue;
			if ((rc = record_job(ag, TERN_SLOT_EMPTY, TERN_EV_FAILED, TERN_E_DIGEST))) {
				ag->state = TERN_ST_DOWNLOADING;
				return rc;
			}
			ag->state = TERN_ST_FAILED;
			ag->reason = TERN_E_DIGEST;
			return TERN_E_DIGEST;
		}
	}
	if ((rc = record_job(ag, TERN_SLOT_STAGED, TERN_EV_STAGED, 0))) {
		ag->state = TERN_ST_DOWNLOADING;
		return rc;
	}
	ag->state = TERN_ST_STAGED;
	return 0;
}

int tern_agent_activate(struct tern_agent *ag)
{
	if (ag->state != TERN_ST_STAGED)
		return TERN_E_STATE;
	if (ag->bc.trial_pending)
		return 0;
	struct tern_bootctl bc = ag->bc;
	unsigned attempts = 0;
	uint64_t seq = 0;
	for (unsigned p = 0; p < TERN_N_PAIRS; p++) {
		bc.trial_slot[p] = TERN_SLOT_NONE;
		for (unsigned s = 0; s < 2; s++) {
			const struct tern_slot_meta *m = slot_meta(ag, p, s);
			if (m->state != TERN_SLOT_STAGED)
				continue;
			bc.trial_slot[p] = (uint8_t)s;
			if (m->trial_attempts > attempts)
				attempts = m->trial_attempts;
			seq = m->sequence;
		}
	}
	bc.trial_pending = 1;
	bc.attempts_left = (uint8_t)(attempts ? attempts : 1);
	bc.last_event = TERN_EV_ACTIVATED;
	bc.last_reason = 0;
	bc.event_sequence = seq;
	int rc = tern_bootctl_store(ag->cfg.board, &bc, ag->rec);
	if (rc)
		return rc;
	ag->bc = bc;
	return 0;
}

int tern_agent_health(struct tern_agent *ag, bool healthy)
{
	if (ag->state != TERN_ST_TRIAL)
		return TERN_E_STATE;
	struct tern_bootctl bc = ag->bc;
	uint64_t seq = bc.event_sequence;
	for (unsigned p = 0; p < TERN_N_PAIRS; p++) {
		unsigned s = bc.trial_slot[p];
		if (s == TERN_SLOT_NONE)
			continue;
		struct tern_slot_meta *m = &bc.slots[tern_slot_area((enum tern_pair)p, s)];
		m->state = healthy ? TERN_SLOT_GOOD : TERN_SLOT_BAD;
		if (healthy) {
			/* The floor rises with the confirmation, in the same record write. */
			bc.active[p] = (uint8_t)s;
			if (m->security_counter > bc.security_floor[p])
				bc.security_floor[p] = m->security_counter;
		}
		seq = m->sequence;
		bc.trial_slot[p] = TERN_SLOT_NONE;
	}
	bc.trial_pending = 0;
	bc.attempts_left = 0;
	bc.event_sequence = seq;
	if (healthy) {
		bc.confirmed_sequence = seq;
		bc.last_event = TERN_EV_CONFIRMED;
		bc.last_reason = 0;
	} else {
		bc.last_event = TERN_EV_ROLLED_BACK;
		bc.last_reason = TERN_E_HEALTH;
	}
	int rc = tern_bootctl_store(ag->cfg.board, &bc, ag->rec);
	if (rc)
		return rc;
	ag->bc = bc;
	ag->state = healthy ? TERN_ST_CONFIRMED : TERN_ST_ROLLED_BACK;
	ag->reason = bc.last_reason;
	ag->reboot_needed = !healthy;
	return 0;
}

int tern_agent_cancel(struct tern_agent *ag, int reason)
{
	if (ag->state != TERN_ST_DOWNLOADING)
		return TERN_E_STATE;
	stream_abandon(ag);
	if (reason == 0)
		reason = TERN_E_CANCELED;
	int rc = record_job(ag, TERN_SLOT_EMPTY, TERN_EV_FAILED, reason);
	if (rc)
		return rc;
	ag->state = TERN_ST_FAILED;
	ag->reason = reason;
	return 0;
}

bool tern_agent_reboot_needed(const struct tern_agent *ag)
{
	return ag->reboot_needed;
}

void tern_agent_status(const struct tern_agent *ag, struct tern_status *st)
{
	memset(st, 0, sizeof(*st));
	st->state = ag->state;
	st->reason = ag->reason;
	st->last_event = ag->bc.last_event;
	st->event_sequence = ag->bc.event_sequence;
	for (int p = 0; p < TERN_N_PAIRS; p++) {
		st->running[p] = ag->boot.slot[p];
		st->active[p] = ag->bc.active[p];
	}
	st->running_trial = ag->boot.trial && ag->bc.trial_pending;
	st->trial_pending = ag->bc.trial_pending != 0;
	st->attempts_left = ag->bc.attempts_left;
	st->security_floor = ag->bc.security_floor[TERN_PAIR_FW];
	st->config_security_floor = ag->bc.security_floor[TERN_PAIR_CFG];
	st->confirmed_sequence = ag->bc.confirmed_sequence;
	memcpy(st->slots, ag->bc.slots, sizeof(st->slots));
	if (ag->state == TERN_ST_DOWNLOADING) {
		for (unsigned i = 0; i < ag->job.n_comp; i++) {
			st->n_chunks += ag->job.comp[i].n_chunks;
			st->n_verified += ag->job.comp[i].n_verified;
		}
		memcpy(st->job_version, ag->job.version, sizeof(st->job_version));
		st->job_sequence = ag->job.sequence;
	}
}
