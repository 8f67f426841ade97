/* The Linux board's USB backend: each request becomes one call into the agent, plus the
 * bootloader's variables kept in step with the record (as `ternd install` does). */
#include "tern/tern_linux_usb.h"

#include "tern/tern_err.h"

#include <string.h>

static void copy_str(char *out, size_t size, const char *s)
{
	size_t n = strlen(s);
	if (n >= size)
		n = size - 1;
	memcpy(out, s, n);
	out[n] = '\0';
}

/* The firmware slot that runs now and what it holds. */
static void running(const struct tern_linux *lx, const struct tern_status *st, uint32_t *slot,
		    char *version, size_t size)
{
	unsigned s = lx->boot.slot[TERN_PAIR_FW] & 1u;
	*slot = s;
	copy_str(version, size, st->slots[tern_slot_area(TERN_PAIR_FW, s)].version);
}

static int lx_info(void *be, struct tern_msg_info *info)
{
	struct tern_linux *lx = be;
	struct tern_status st;
	tern_agent_status(&lx->agent, &st);
	copy_str(info->board, sizeof(info->board), lx->cfg.board_id);
	copy_str(info->serial, sizeof(info->serial), lx->cfg.usb_serial);
	copy_str(info->device_id, sizeof(info->device_id), lx->cfg.device_id);
	running(lx, &st, &info->slot, info->version, sizeof(info->version));
	info->state = (uint32_t)st.state;
	info->sequence = st.slots[tern_slot_area(TERN_PAIR_FW, info->slot)].sequence;
	info->max_data = TERN_FRAME_DATA_MAX;
	return 0;
}

static int lx_state(void *be, struct tern_msg_state *m)
{
	struct tern_linux *lx = be;
	struct tern_status st;
	tern_agent_status(&lx->agent, &st);
	m->state = (uint32_t)st.state;
	running(lx, &st, &m->slot, m->version, sizeof(m->version));
	if (st.state == TERN_ST_DOWNLOADING || st.state == TERN_ST_VERIFYING ||
	    st.state == TERN_ST_STAGED)
		copy_str(m->target, sizeof(m->target), st.job_version);
	m->done = st.n_verified;
	m->total = st.n_chunks;
	m->last_status = tern_frame_status_from_err(st.reason);
	return 0;
}

static void next_needed(struct tern_linux *lx, struct tern_msg_ack *next)
{
	unsigned comp;
	bool is_index;
	uint64_t off;
	if (tern_agent_next_needed(&lx->agent, &comp, &is_index, &off))
		return;
	next->has_next = true;
	next->comp = comp;
	next->kind = is_index ? TERN_DATA_INDEX : TERN_DATA_PAYLOAD;
	next->offset = off;
}

/* After a step that may have changed the record: the bootloader follows it. */
static int synced(struct tern_linux *lx, int rc)
{
	if (rc == 0 || lx->agent.state == TERN_ST_FAILED) {
		int src = tern_linux_sync_bootloader(lx);
		if (rc == 0)
			rc = src;
	}
	return rc;
}

static int lx_offer(void *be, const uint8_t *manifest, size_t len, struct tern_msg_ack *next)
{
	struct tern_linux *lx = be;
	int rc = tern_linux_check_targets(lx);
	if (rc == 0)
		rc = tern_agent_offer(&lx->agent, manifest, len);
	if (rc)
		return rc;
	next_needed(lx, next);
	return 0;
}

static int lx_data(void *be, const struct tern_msg_data *d, struct tern_msg_ack *next)
{
	struct tern_linux *lx = be;
	int rc = d->kind == TERN_DATA_INDEX
		     ? tern_agent_feed_index(&lx->agent, d->comp, d->offset, d->bytes, d->len)
		     : tern_agent_feed(&lx->agent, d->comp, d->offset, d->bytes, d->len);
	if (rc)
		return rc;
	next_needed(lx, next);
	return 0;
}

/* DONE after an offer that was staged at once (the release was whole in the inactive
 * slot, or staged before) has nothing left to finish. */
static int lx_done(void *be)
{
	struct tern_linux *lx = be;
	if (lx->agent.state == TERN_ST_STAGED)
		return 0;
	return synced(lx, tern_agent_finish(&lx->agent));
}

static int lx_activate(void *be)
{
	struct tern_linux *lx = be;
	return synced(lx, tern_agent_activate(&lx->agent));
}

/* CONFIRM in a trial: the host vouches for the image (as `ternd mark-good`). */
static int lx_confirm(void *be)
{
	struct tern_linux *lx = be;
	if (lx->agent.state != TERN_ST_TRIAL)
		return TERN_E_STATE;
	return tern_linux_end_trial(lx, true);
}

const struct tern_usbdev_ops tern_linux_usb_ops = {
    .info = lx_info,
    .state = lx_state,
    .offer = lx_offer,
    .data = lx_data,
    .done = lx_done,
    .activate = lx_activate,
    .confirm = lx_confirm,
};
