/* The sim board's USB backend: each request becomes one call into the agent core. */
#include "tern/tern_sim_usb.h"

#include "tern/tern_err.h"

#include <string.h>

static int sim_info(void *be, struct tern_msg_info *info)
{
	struct tern_sim_usb *u = be;
	struct tern_status st;
	tern_agent_status(&u->dev->agent, &st);
	const struct tern_usbdev_ident id = {u->dev->board_id, u->serial, u->device_id,
					     u->provision_gen};
	tern_usbdev_info_from_status(&id, &st, u->dev->boot.slot[TERN_PAIR_FW], info);
	return 0;
}

static int sim_state(void *be, struct tern_msg_state *m)
{
	struct tern_sim_usb *u = be;
	struct tern_status st;
	tern_agent_status(&u->dev->agent, &st);
	tern_usbdev_state_from_status(&st, u->dev->boot.slot[TERN_PAIR_FW], m);
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

static int sim_offer(void *be, const uint8_t *manifest, size_t len, bool revert,
		     struct tern_msg_ack *next)
{
	struct tern_sim_usb *u = be;
	int rc = revert ? tern_agent_offer_revert(&u->dev->agent, manifest, len)
			: tern_agent_offer(&u->dev->agent, manifest, len);
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
