/* The Linux board's USB backend: each request becomes one call into the agent, plus the
 * bootloader's variables kept in step with the record (as `ternd install` does). */
#include "tern/tern_linux_usb.h"

#include "tern/tern_err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* --- sharing the agent with MQTT (struct tern_linux_share; nothing when USB is alone) */

static void agent_lock(struct tern_linux *lx)
{
	if (lx->share)
		pthread_mutex_lock(&lx->share->lock);
}

/* An install request while MQTT's install holds the agent: TERN_E_BUSY (lock held). */
static int usb_may_install(const struct tern_linux *lx)
{
	return lx->share && lx->share->owner == TERN_OWNER_MQTT ? TERN_E_BUSY : 0;
}

/* Releases the lock after a request that may have changed the agent: USB keeps the
 * agent while its install is in flight, and the MQTT loop is woken to report the
 * change. Returns @rc. */
static int agent_unlock_changed(struct tern_linux *lx, int rc)
{
	struct tern_linux_share *sh = lx->share;
	if (!sh)
		return rc;
	enum tern_state st = lx->agent.state;
	bool installing =
	    st == TERN_ST_DOWNLOADING || st == TERN_ST_VERIFYING || st == TERN_ST_STAGED;
	if (sh->owner == TERN_OWNER_USB && !installing)
		sh->owner = TERN_OWNER_NONE;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	sh->usb_last_ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
	sh->usb_changed = true;
	uint64_t one = 1;
	ssize_t n = write(sh->wake_fd, &one, sizeof(one));
	(void)n; /* EAGAIN: the loop wakes anyway */
	pthread_mutex_unlock(&sh->lock);
	return rc;
}

static void agent_unlock(struct tern_linux *lx)
{
	if (lx->share)
		pthread_mutex_unlock(&lx->share->lock);
}

static int lx_info(void *be, struct tern_msg_info *info)
{
	struct tern_linux *lx = be;
	struct tern_status st;
	agent_lock(lx);
	tern_agent_status(&lx->agent, &st);
	const struct tern_usbdev_ident id = {lx->cfg.board_id, lx->cfg.usb_serial,
					     lx->cfg.device_id, lx->cfg.provision_gen};
	tern_usbdev_info_from_status(&id, &st, lx->boot.slot[TERN_PAIR_FW], info);
	agent_unlock(lx);
	return 0;
}

static int lx_state(void *be, struct tern_msg_state *m)
{
	struct tern_linux *lx = be;
	struct tern_status st;
	agent_lock(lx);
	tern_agent_status(&lx->agent, &st);
	tern_usbdev_state_from_status(&st, lx->boot.slot[TERN_PAIR_FW], m);
	agent_unlock(lx);
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

static int lx_offer(void *be, const uint8_t *manifest, size_t len, bool revert,
		    struct tern_msg_ack *next)
{
	struct tern_linux *lx = be;
	agent_lock(lx);
	int rc = usb_may_install(lx);
	if (rc)
		goto out_unlock; /* nothing changed */
	if ((rc = tern_linux_check_targets(lx)) == 0)
		rc = revert ? tern_agent_offer_revert(&lx->agent, manifest, len)
			    : tern_agent_offer(&lx->agent, manifest, len);
	if (rc == 0) {
		if (lx->share)
			lx->share->owner = TERN_OWNER_USB;
		next_needed(lx, next);
	}
	return agent_unlock_changed(lx, rc);
out_unlock:
	agent_unlock(lx);
	return rc;
}

static int lx_data(void *be, const struct tern_msg_data *d, struct tern_msg_ack *next)
{
	struct tern_linux *lx = be;
	agent_lock(lx);
	int rc = usb_may_install(lx);
	if (rc) {
		agent_unlock(lx);
		return rc;
	}
	rc = d->kind == TERN_DATA_INDEX
		 ? tern_agent_feed_index(&lx->agent, d->comp, d->offset, d->bytes, d->len)
		 : tern_agent_feed(&lx->agent, d->comp, d->offset, d->bytes, d->len);
	if (rc == 0)
		next_needed(lx, next);
	return agent_unlock_changed(lx, rc);
}

/* DONE, ACTIVATE and CONFIRM: one agent step under the lock (@step), unless MQTT's
 * install holds the agent. */
static int usb_step(struct tern_linux *lx, int (*step)(struct tern_linux *lx))
{
	agent_lock(lx);
	int rc = usb_may_install(lx);
	if (rc) {
		agent_unlock(lx);
		return rc;
	}
	return agent_unlock_changed(lx, step(lx));
}

/* DONE after an offer that was staged at once (the release was whole in the inactive
 * slot, or staged before) has nothing left to finish. */
static int done_step(struct tern_linux *lx)
{
	if (lx->agent.state == TERN_ST_STAGED)
		return 0;
	return synced(lx, tern_agent_finish(&lx->agent));
}

static int activate_step(struct tern_linux *lx)
{
	return synced(lx, tern_agent_activate(&lx->agent));
}

/* CONFIRM in a trial: the host vouches for the image (as `ternd mark-good`). */
static int confirm_step(struct tern_linux *lx)
{
	if (lx->agent.state != TERN_ST_TRIAL)
		return TERN_E_STATE;
	return tern_linux_end_trial(lx, true);
}

static int lx_done(void *be)
{
	return usb_step(be, done_step);
}

static int lx_activate(void *be)
{
	return usb_step(be, activate_step);
}

static int lx_confirm(void *be)
{
	return usb_step(be, confirm_step);
}

/*
 * PROVISION: a blank device (no [device] id) takes a plain request; a provisioned one
 * only a request signed by a key it trusts, bound to its USB serial, of a newer
 * generation (as the sim board). The files are written next to ternd.conf
 * (tern_linux_provision_write); the id and the keys take effect at once, the
 * configuration's [mqtt] settings at the next start of ternd.
 */
static int lx_provision(void *be, const struct tern_msg_provision *req)
{
	struct tern_linux *lx = be;
	struct tern_msg_provision opened;
	const struct tern_msg_provision *p = req;
	struct tern_keyring kr;
	struct tern_linux_config *merged = NULL;
	char err[TERN_LINUX_PATH_MAX + 256];
	int rc;
	agent_lock(lx);
	if (req->signed_req) {
		rc = tern_msg_provision_open(req, &lx->keyring, lx->cfg.usb_serial, &opened);
		if (rc)
			goto out_unlock;
		p = &opened;
	} else if (lx->cfg.device_id[0]) {
		rc = TERN_E_EXISTS; /* wire status "provisioned": a signed request is needed */
		goto out_unlock;
	}
	if ((rc = tern_provision_generation_check(req->signed_req != NULL, p->generation,
						  lx->cfg.provision_gen)))
		goto out_unlock;
	memset(&kr, 0, sizeof(kr));
	for (size_t i = 0; i < p->n_keys && rc == 0; i++) {
		struct tern_pubkey pk;
		rc = tern_pubkey_from_point(&pk, p->keys[i], TERN_P256_POINT_LEN);
		if (rc == 0)
			rc = tern_keyring_add(&kr, &pk);
	}
	if (rc)
		goto out_unlock;
	if (!(merged = malloc(sizeof(*merged)))) {
		rc = TERN_E_NOMEM;
		goto out_unlock;
	}
	uint64_t gen =
	    p->generation > lx->cfg.provision_gen ? p->generation : lx->cfg.provision_gen;
	struct tern_linux_provisioning prov = {
	    .device_id = p->device_id,
	    .keyring = &kr,
	    .config = p->config,
	    .config_len = p->config ? p->config_len : 0,
	    .generation = gen,
	};
	if ((rc = tern_linux_provision_write(&lx->cfg, &prov, merged, err, sizeof(err)))) {
		fprintf(stderr, "ternd: provisioning refused: %s\n", err);
		goto out_unlock;
	}
	lx->keyring = kr; /* the agent (and MQTT's desired states) read it through this */
	snprintf(lx->cfg.device_id, sizeof(lx->cfg.device_id), "%s", merged->device_id);
	lx->cfg.provision_gen = gen;
	printf("ternd: provisioned over USB as %s (generation %llu, %zu key%s); the "
	       "configuration's [mqtt] settings take effect at the next start\n",
	       lx->cfg.device_id, (unsigned long long)gen, kr.n_keys, kr.n_keys == 1 ? "" : "s");
	fflush(stdout);
out_unlock:
	agent_unlock(lx);
	free(merged);
	return rc;
}

const struct tern_usbdev_ops tern_linux_usb_ops = {
    .info = lx_info,
    .state = lx_state,
    .offer = lx_offer,
    .data = lx_data,
    .done = lx_done,
    .activate = lx_activate,
    .confirm = lx_confirm,
    .provision = lx_provision,
};
