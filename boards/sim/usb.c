/* The sim board's USB backend: each request becomes one call into the agent core. */
#include "tern/tern_sim_usb.h"

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
static void running(const struct tern_sim_usb *u, const struct tern_status *st, uint32_t *slot,
		    char *version, size_t size)
{
	unsigned s = u->dev->boot.slot[TERN_PAIR_FW] & 1u;
	*slot = s;
	copy_str(version, size, st->slots[tern_slot_area(TERN_PAIR_FW, s)].version);
}

static int sim_info(void *be, struct tern_msg_info *info)
{
	struct tern_sim_usb *u = be;
	struct tern_status st;
	tern_agent_status(&u->dev->agent, &st);
	copy_str(info->board, sizeof(info->board), u->dev->board_id);
	copy_str(info->serial, sizeof(info->serial), u->serial);
	copy_str(info->device_id, sizeof(info->device_id), u->device_id);
	info->provision_gen = u->provision_gen;
	running(u, &st, &info->slot, info->version, sizeof(info->version));
	info->state = (uint32_t)st.state;
	info->sequence = st.slots[tern_slot_area(TERN_PAIR_FW, info->slot)].sequence;
	info->max_data = TERN_FRAME_DATA_MAX;
	return 0;
}

static int sim_state(void *be, struct tern_msg_state *m)
{
	struct tern_sim_usb *u = be;
	struct tern_status st;
	tern_agent_status(&u->dev->agent, &st);
	m->state = (uint32_t)st.state;
	running(u, &st, &m->slot, m->version, sizeof(m->version));
	if (st.state == TERN_ST_DOWNLOADING || st.state == TERN_ST_VERIFYING ||
	    st.state == TERN_ST_STAGED)
		copy_str(m->target, sizeof(m->target), st.job_version);
	/* Staged and activated, the job is over: the staged firmware slot says what waits. */
	for (unsigned s = 0; s < 2 && st.state == TERN_ST_STAGED && !m->target[0]; s++) {
		const struct tern_slot_meta *sm = &st.slots[tern_slot_area(TERN_PAIR_FW, s)];
		if (sm->state == TERN_SLOT_STAGED)
			copy_str(m->target, sizeof(m->target), sm->version);
	}
	m->done = st.n_verified;
	m->total = st.n_chunks;
	m->last_status = tern_frame_status_from_err(st.reason); /* 0 gives OK */
	return 0;
}

/* Where the agent wants the next bytes; no position once nothing is missing. */
static void next_needed(struct tern_sim_usb *u, struct tern_msg_ack *next)
{
	unsigned comp;
	bool is_index;
	uint64_t off;
	if (tern_agent_next_needed(&u->dev->agent, &comp, &is_index, &off))
		return;
	next->has_next = true;
	next->comp = comp;
	next->kind = is_index ? TERN_DATA_INDEX : TERN_DATA_PAYLOAD;
	next->offset = off;
}

static int sim_offer(void *be, const uint8_t *manifest, size_t len, struct tern_msg_ack *next)
{
	struct tern_sim_usb *u = be;
	int rc = tern_agent_offer(&u->dev->agent, manifest, len);
	if (rc)
		return rc;
	next_needed(u, next);
	return 0;
}

static int sim_data(void *be, const struct tern_msg_data *d, struct tern_msg_ack *next)
{
	struct tern_sim_usb *u = be;
	int rc = d->kind == TERN_DATA_INDEX
		     ? tern_agent_feed_index(&u->dev->agent, d->comp, d->offset, d->bytes, d->len)
		     : tern_agent_feed(&u->dev->agent, d->comp, d->offset, d->bytes, d->len);
	if (rc)
		return rc;
	next_needed(u, next);
	return 0;
}

/* DONE after an offer that was staged at once (the release was whole in the inactive
 * slot, or staged before) has nothing left to finish. */
static int sim_done(void *be)
{
	struct tern_sim_usb *u = be;
	if (u->dev->agent.state == TERN_ST_STAGED)
		return 0;
	return tern_agent_finish(&u->dev->agent);
}

static int sim_activate(void *be)
{
	struct tern_sim_usb *u = be;
	return tern_agent_activate(&u->dev->agent);
}

static int sim_confirm(void *be)
{
	struct tern_sim_usb *u = be;
	if (u->dev->agent.state != TERN_ST_TRIAL)
		return TERN_E_STATE;
	return tern_agent_health(&u->dev->agent, true);
}

const struct tern_usbdev_ops tern_sim_usb_ops = {
    .info = sim_info,
    .state = sim_state,
    .offer = sim_offer,
    .data = sim_data,
    .done = sim_done,
    .activate = sim_activate,
    .confirm = sim_confirm,
};
