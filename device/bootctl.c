/* Boot control record (two copies, sequence + CRC32) and the bootloader's slot choice. */
#include "tern/tern_bootctl.h"

#include "tern/tern_err.h"
#include "tern/tern_sha256.h"

#include "le_priv.h"

#include <string.h>

/* On flash: 4 magic, 4 seq, 2 active, 2 trial_slot, 1 trial_pending, 1 attempts, 1 event,
 * 1 reserved, 4 reason, 8 event_sequence, 4 + 4 floors (fw, cfg), 8 confirmed_sequence
 * (44 bytes), then
 * per slot SLOT_REC_SIZE bytes, zero padding, and the CRC32 of everything before it in the
 * last 4 bytes. */
#define HDR_REC_SIZE  44u
#define SLOT_REC_SIZE (1u + 1u + 2u + 4u + 8u + 8u + 4u + TERN_SHA256_LEN + TERN_VERSION_MAX + 1u)
_Static_assert(HDR_REC_SIZE + TERN_N_SLOTS * SLOT_REC_SIZE + 4u <= TERN_BOOTCTL_REC_SIZE,
	       "boot control record fits its fixed size");

void tern_bootctl_encode(const struct tern_bootctl *bc, uint8_t out[TERN_BOOTCTL_REC_SIZE])
{
	struct le_cursor c = {out, 0};
	memset(out, 0, TERN_BOOTCTL_REC_SIZE);
	le_put_u32(&c, TERN_BOOTCTL_MAGIC);
	le_put_u32(&c, bc->seq);
	for (int i = 0; i < TERN_N_PAIRS; i++)
		le_put_u8(&c, bc->active[i]);
	for (int i = 0; i < TERN_N_PAIRS; i++)
		le_put_u8(&c, bc->trial_slot[i]);
	le_put_u8(&c, bc->trial_pending);
	le_put_u8(&c, bc->attempts_left);
	le_put_u8(&c, bc->last_event);
	le_put_u8(&c, 0);
	le_put_u32(&c, (uint32_t)bc->last_reason);
	le_put_u64(&c, bc->event_sequence);
	for (int i = 0; i < TERN_N_PAIRS; i++)
		le_put_u32(&c, bc->security_floor[i]);
	le_put_u64(&c, bc->confirmed_sequence);
	for (int i = 0; i < TERN_N_SLOTS; i++) {
		const struct tern_slot_meta *m = &bc->slots[i];
		le_put_u8(&c, m->state);
		le_put_u8(&c, m->trial_attempts);
		le_put_u8(&c, 0);
		le_put_u8(&c, 0);
		le_put_u32(&c, m->security_counter);
		le_put_u64(&c, m->sequence);
		le_put_u64(&c, m->size);
		le_put_u32(&c, m->chunk_size);
		le_put_raw(&c, m->index_digest, TERN_SHA256_LEN);
		le_put_raw(&c, m->version, TERN_VERSION_MAX + 1);
	}
	uint32_t crc = tern_crc32(0, out, TERN_BOOTCTL_REC_SIZE - 4);
	c.pos = TERN_BOOTCTL_REC_SIZE - 4;
	le_put_u32(&c, crc);
}

bool tern_bootctl_decode(struct tern_bootctl *bc, const uint8_t in[TERN_BOOTCTL_REC_SIZE])
{
	struct le_cursor c = {(uint8_t *)(uintptr_t)in, TERN_BOOTCTL_REC_SIZE - 4};
	if (le_get_u32(&c) != tern_crc32(0, in, TERN_BOOTCTL_REC_SIZE - 4))
		return false;
	c.pos = 0;
	if (le_get_u32(&c) != TERN_BOOTCTL_MAGIC)
		return false;
	memset(bc, 0, sizeof(*bc));
	bc->seq = le_get_u32(&c);
	for (int i = 0; i < TERN_N_PAIRS; i++)
		bc->active[i] = le_get_u8(&c);
	for (int i = 0; i < TERN_N_PAIRS; i++)
		bc->trial_slot[i] = le_get_u8(&c);
	bc->trial_pending = le_get_u8(&c);
	bc->attempts_left = le_get_u8(&c);
	bc->last_event = le_get_u8(&c);
	(void)le_get_u8(&c);
	bc->last_reason = (int32_t)le_get_u32(&c);
	bc->event_sequence = le_get_u64(&c);
	for (int i = 0; i < TERN_N_PAIRS; i++)
		bc->security_floor[i] = le_get_u32(&c);
	bc->confirmed_sequence = le_get_u64(&c);
	for (int i = 0; i < TERN_N_SLOTS; i++) {
		struct tern_slot_meta *m = &bc->slots[i];
		m->state = le_get_u8(&c);
		m->trial_attempts = le_get_u8(&c);
		c.pos += 2;
		m->security_counter = le_get_u32(&c);
		m->sequence = le_get_u64(&c);
		m->size = le_get_u64(&c);
		m->chunk_size = le_get_u32(&c);
		le_get_raw(&c, m->index_digest, TERN_SHA256_LEN);
		le_get_raw(&c, m->version, TERN_VERSION_MAX + 1);
		m->version[TERN_VERSION_MAX] = '\0';
	}
	return true;
}

/* Reads copy @i (0 or 1) into @bc; false when it is not valid. */
static int load_copy(const struct tern_board *b, unsigned i, uint32_t sector,
		     struct tern_bootctl *bc, uint8_t *buf, bool *valid)
{
	int rc = b->ops->read(b->ctx, TERN_AREA_BOOTCTL, (uint64_t)i * sector, buf,
			      TERN_BOOTCTL_REC_SIZE);
	if (rc)
		return rc;
	*valid = tern_bootctl_decode(bc, buf);
	return 0;
}

/* Loads the newest valid copy; @newest_copy tells which copy it came from. */
static int bootctl_load(const struct tern_board *b, struct tern_bootctl *bc, uint8_t *buf,
			unsigned *newest_copy)
{
	struct tern_area_info ai;
	int rc = b->ops->area_info(b->ctx, TERN_AREA_BOOTCTL, &ai);
	if (rc)
		return rc;
	if (ai.sector_size < TERN_BOOTCTL_REC_SIZE || ai.size < 2u * ai.sector_size)
		return TERN_E_INVAL;
	struct tern_bootctl copy[2];
	bool valid[2];
	for (unsigned i = 0; i < 2; i++)
		if ((rc = load_copy(b, i, ai.sector_size, &copy[i], buf, &valid[i])))
			return rc;
	if (!valid[0] && !valid[1])
		return TERN_E_NO_BOOTCTL;
	/* Sequence numbers compare modulo 2^32 so they may wrap. */
	unsigned pick = !valid[0]   ? 1
			: !valid[1] ? 0
				    : ((int32_t)(copy[1].seq - copy[0].seq) > 0 ? 1 : 0);
	*bc = copy[pick];
	*newest_copy = pick;
	return 0;
}

int tern_bootctl_load(const struct tern_board *b, struct tern_bootctl *bc, uint8_t *buf)
{
	unsigned newest;
	return bootctl_load(b, bc, buf, &newest);
}

int tern_bootctl_store(const struct tern_board *b, struct tern_bootctl *bc, uint8_t *buf)
{
	struct tern_area_info ai;
	int rc = b->ops->area_info(b->ctx, TERN_AREA_BOOTCTL, &ai);
	if (rc)
		return rc;
	struct tern_bootctl cur;
	unsigned newest = 1; /* with no valid copy, write copy 0 */
	uint32_t seq = 0;
	rc = bootctl_load(b, &cur, buf, &newest);
	if (rc == 0)
		seq = cur.seq;
	else if (rc != TERN_E_NO_BOOTCTL)
		return rc;
	unsigned target = newest ^ 1u;
	struct tern_bootctl next = *bc;
	next.seq = seq + 1;
	tern_bootctl_encode(&next, buf);
	uint64_t off = (uint64_t)target * ai.sector_size;
	if ((rc = b->ops->erase(b->ctx, TERN_AREA_BOOTCTL, off, ai.sector_size)) ||
	    (rc = b->ops->write(b->ctx, TERN_AREA_BOOTCTL, off, buf, TERN_BOOTCTL_REC_SIZE)))
		return rc;
	if (b->ops->flush && (rc = b->ops->flush(b->ctx, TERN_AREA_BOOTCTL)))
		return rc;
	bc->seq = next.seq;
	return 0;
}

bool tern_slot_verify(const struct tern_board *b, enum tern_pair pair, unsigned slot,
		      const struct tern_slot_meta *meta, uint8_t *buf, size_t buf_len)
{
	enum tern_area area = tern_slot_area(pair, slot);
	struct tern_area_info ai;
	if (b->ops->area_info(b->ctx, area, &ai) || meta->size == 0 || meta->size > ai.size ||
	    meta->chunk_size == 0)
		return false;
	struct tern_sha256 index_hash, chunk_hash;
	uint8_t d[TERN_SHA256_LEN];
	uint64_t n = tern_chunk_count(meta->size, meta->chunk_size);
	tern_sha256_init(&index_hash);
	for (uint64_t i = 0; i < n; i++) {
		uint64_t off = i * meta->chunk_size;
		uint32_t left = tern_chunk_len(meta->size, meta->chunk_size, i);
		tern_sha256_init(&chunk_hash);
		while (left) {
			size_t piece = left < buf_len ? left : buf_len;
			if (b->ops->read(b->ctx, area, off, buf, piece)) {
				tern_sha256_final(&chunk_hash, d);
				tern_sha256_final(&index_hash, d);
				return false;
			}
			tern_sha256_update(&chunk_hash, buf, piece);
			off += piece;
			left -= (uint32_t)piece;
		}
		tern_sha256_final(&chunk_hash, d);
		tern_sha256_update(&index_hash, d, sizeof(d));
	}
	tern_sha256_final(&index_hash, d);
	return memcmp(d, meta->index_digest, TERN_SHA256_LEN) == 0;
}

/* True when the slot may be booted as a normal (non-trial) boot. */
static bool slot_bootable(const struct tern_board *b, const struct tern_bootctl *bc,
			  enum tern_pair pair, unsigned slot, uint8_t *buf, size_t buf_len)
{
	const struct tern_slot_meta *m = &bc->slots[tern_slot_area(pair, slot)];
	return m->state == TERN_SLOT_GOOD && m->security_counter >= bc->security_floor[pair] &&
	       tern_slot_verify(b, pair, slot, m, buf, buf_len);
}

/* Ends a trial that used up its attempts or does not verify: the trial slots are marked
 * bad and the event recorded, in one record write. */
static int fall_back(const struct tern_board *b, struct tern_bootctl *bc, int reason, uint8_t *buf)
{
	for (int p = 0; p < TERN_N_PAIRS; p++) {
		if (bc->trial_slot[p] != TERN_SLOT_NONE)
			bc->slots[tern_slot_area((enum tern_pair)p, bc->trial_slot[p])].state =
			    TERN_SLOT_BAD;
		bc->trial_slot[p] = TERN_SLOT_NONE;
	}
	bc->trial_pending = 0;
	bc->attempts_left = 0;
	bc->last_event = TERN_EV_ROLLED_BACK;
	bc->last_reason = reason;
	return tern_bootctl_store(b, bc, buf);
}

int tern_boot_select(const struct tern_board *b, struct tern_boot_result *res, uint8_t *buf,
		     size_t buf_len)
{
	struct tern_bootctl bc;
	int rc = tern_bootctl_load(b, &bc, buf);
	if (rc)
		return rc;
	if (bc.trial_pending) {
		bool ok = true;
		for (int p = 0; p < TERN_N_PAIRS && ok; p++) {
			unsigned s = bc.trial_slot[p];
			if (s == TERN_SLOT_NONE)
				continue;
			const struct tern_slot_meta *m =
			    &bc.slots[tern_slot_area((enum tern_pair)p, s)];
			ok = m->state == TERN_SLOT_STAGED &&
			     m->security_counter >= bc.security_floor[p] &&
			     tern_slot_verify(b, (enum tern_pair)p, s, m, buf, buf_len);
		}
		if (!ok)
			rc = fall_back(b, &bc, TERN_E_DIGEST, buf);
		else if (bc.attempts_left == 0)
			rc = fall_back(b, &bc, TERN_E_TRIAL_BOOT, buf);
		if (rc)
			return rc;
		if (bc.trial_pending) {
			/* Consume the attempt before booting: a crash then counts. */
			bc.attempts_left--;
			if ((rc = tern_bootctl_store(b, &bc, buf)))
				return rc;
			for (int p = 0; p < TERN_N_PAIRS; p++)
				res->slot[p] = bc.trial_slot[p] != TERN_SLOT_NONE ? bc.trial_slot[p]
										  : bc.active[p];
			res->trial = true;
			return 0;
		}
	}
	res->trial = false;
	bool switched = false;
	for (int p = 0; p < TERN_N_PAIRS; p++) {
		unsigned s = bc.active[p];
		res->slot[p] = TERN_SLOT_NONE;
		if (s == TERN_SLOT_NONE)
			continue;
		if (slot_bootable(b, &bc, (enum tern_pair)p, s, buf, buf_len)) {
			res->slot[p] = (uint8_t)s;
		} else if (slot_bootable(b, &bc, (enum tern_pair)p, s ^ 1u, buf, buf_len)) {
			/* The active slot is damaged: the other good one takes over for good,
			 * so that updates go to the damaged slot and never to the running one. */
			struct tern_slot_meta *m = &bc.slots[tern_slot_area((enum tern_pair)p, s)];
			m->state = TERN_SLOT_BAD;
			bc.event_sequence = m->sequence;
			bc.active[p] = (uint8_t)(s ^ 1u);
			res->slot[p] = (uint8_t)(s ^ 1u);
			switched = true;
		} else if (p == TERN_PAIR_FW) {
			return TERN_E_NO_IMAGE;
		}
	}
	if (switched) {
		bc.last_event = TERN_EV_ROLLED_BACK;
		bc.last_reason = TERN_E_DIGEST;
		if ((rc = tern_bootctl_store(b, &bc, buf)))
			return rc;
	}
	return 0;
}

const char *tern_slot_state_name(unsigned state)
{
	static const char names[][12] = {"empty", "installing", "staged", "good", "bad"};
	return state < sizeof(names) / sizeof(names[0]) ? names[state] : "unknown";
}

const char *tern_event_name(unsigned ev)
{
	static const char names[][12] = {"none",      "provisioned", "installing",  "staged",
					 "activated", "confirmed",   "rolled-back", "failed"};
	return ev < sizeof(names) / sizeof(names[0]) ? names[ev] : "unknown";
}
