/* `tern deploy`: signed, retained desired states with generations from the database. */
#include "broker.h"
#include "db.h"
#include "deploy.h"
#include "host.h"
#include "host_util.h"
#include "mqtt.h"

#include "tern/tern_err.h"
#include "tern/tern_msg.h"
#include "tern/tern_topic.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char deploy_help[] =
    "usage: tern deploy RELEASE --key FILE.key (--device ID ... | --all)\n"
    "           [--activate now|later] [--action install|activate|revert] [--revert]\n"
    "           [--rate N] --broker URL\n"
    "\n"
    "Tells devices what to run: publishes to PREFIX/dev/ID/desired, retained, a desired\n"
    "state signed with the release key (COSE_Sign1) and bound to the device id and a\n"
    "generation number that only grows (kept in the host database), so devices refuse a\n"
    "forged, replayed or misaddressed one. Offline devices get it when they connect.\n"
    "  RELEASE              a release file, or the id 'tern publish' printed\n"
    "  --device ID          a device (repeat for more); --all: every device in the database\n"
    "  --activate now|later boot the new release as soon as it is staged (default), or\n"
    "                       stage and wait for 'tern deploy RELEASE --action activate'\n"
    "  --action A           install (default), activate a staged release, or revert to an\n"
    "                       older release still at or above the security floor (taken\n"
    "                       from the inactive slot when it is still there, else fetched)\n"
    "  --revert             the same as --action revert\n"
    "  --rate N             desired states a second (default " DEPLOY_RATE_TEXT
    "; 0: all at once): the\n"
    "                       devices start their downloads in turn, so the first ones\n"
    "                       finish and boot early and the broker is not asked for the\n"
    "                       release by every device at the same moment\n"
    "\n" BROKER_HELP;

/* Devices per transaction (about 15 ms of signing and recording). */
#define DEPLOY_BATCH 100

struct deploy_args {
	const char *release, *key;
	const char **devices;
	size_t n_devices, cap_devices;
	bool all;
	uint32_t rate;
	enum tern_action action;
	enum tern_activate_mode activate;
	struct broker_opts bo;
};

static int add_device(void *ctx, const char *id)
{
	struct deploy_args *a = ctx;
	if (a->n_devices == a->cap_devices) {
		size_t cap = a->cap_devices ? a->cap_devices * 2 : 16;
		const char **p = realloc(a->devices, cap * sizeof(*p));
		if (!p)
			return TERN_E_NOMEM;
		a->devices = p;
		a->cap_devices = cap;
	}
	char *copy = strdup(id);
	if (!copy)
		return TERN_E_NOMEM;
	a->devices[a->n_devices++] = copy;
	return 0;
}

static int parse_deploy(int argc, char **argv, struct deploy_args *a)
{
	static const struct option opts[] = {
	    {"key", required_argument, NULL, 'k'},
	    {"device", required_argument, NULL, 'd'},
	    {"all", no_argument, NULL, 'A'},
	    {"activate", required_argument, NULL, 'a'},
	    {"action", required_argument, NULL, 'c'},
	    {"revert", no_argument, NULL, 'R'},
	    {"rate", required_argument, NULL, 'r'},
	    {"help", no_argument, NULL, 'h'},
	    BROKER_LONG_OPTIONS,
	    {0, 0, 0, 0},
	};
	const char *cmd = "deploy";
	int c;
	a->rate = DEPLOY_RATE;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (broker_opts_flag(&a->bo, c, optarg))
			continue;
		switch (c) {
		case 'k':
			a->key = optarg;
			break;
		case 'd':
			if (!tern_topic_id_valid(optarg, TERN_DEVICE_ID_MAX))
				return host_usage(cmd,
						  "a device id is 1 to 64 of A-Z a-z 0-9 . _ -");
			if (add_device(a, optarg))
				return host_fail(NULL, TERN_E_NOMEM);
			break;
		case 'A':
			a->all = true;
			break;
		case 'a':
			if (!strcmp(optarg, "now"))
				a->activate = TERN_ACTIVATE_NOW;
			else if (!strcmp(optarg, "later"))
				a->activate = TERN_ACTIVATE_LATER;
			else
				return host_usage(cmd, "--activate takes now or later");
			break;
		case 'c':
			if (!strcmp(optarg, "install"))
				a->action = TERN_ACTION_INSTALL;
			else if (!strcmp(optarg, "activate"))
				a->action = TERN_ACTION_ACTIVATE;
			else if (!strcmp(optarg, "revert"))
				a->action = TERN_ACTION_REVERT;
			else
				return host_usage(cmd,
						  "--action takes install, activate or revert");
			break;
		case 'R':
			a->action = TERN_ACTION_REVERT;
			break;
		case 'r':
			if (deploy_parse_rate(optarg, &a->rate))
				return host_usage(cmd, DEPLOY_RATE_HELP);
			break;
		case 'h':
			fputs(deploy_help, stdout);
			return 0;
		default:
			return host_usage(cmd, NULL);
		}
	}
	if (optind + 1 != argc)
		return host_usage(cmd, "give one release (file or id)");
	a->release = argv[optind];
	if (!a->key)
		return host_usage(cmd, "--key FILE.key (the release signing key) is required");
	if (a->all == (a->n_devices > 0))
		return host_usage(cmd, "give --device ID (one or more) or --all");
	if (broker_opts_finish(&a->bo, true))
		return 2;
	return -1;
}

/* The end of the batch of devices that starts at @start. */
static size_t batch_end(size_t start, size_t n)
{
	return n - start < DEPLOY_BATCH ? n : start + DEPLOY_BATCH;
}

/* Signs and records the desired states of devices [@from, @to) into @msgs, in the
 * transaction the caller opened (rolled back here on failure, which is reported). */
static int sign_batch(struct db *db, const struct tern_signer *sg, const struct deploy_args *a,
		      const char *release_id, uint64_t sequence, struct deploy_msg *msgs,
		      size_t from, size_t to)
{
	for (size_t i = from; i < to; i++) {
		struct tern_desired d = {.sequence = sequence,
					 .action = a->action,
					 .activate = a->activate,
					 .issued = (uint64_t)time(NULL)};
		snprintf(d.device_id, sizeof(d.device_id), "%s", a->devices[i]);
		snprintf(d.release_id, sizeof(d.release_id), "%s", release_id);
		int rc = deploy_issue(db, sg, &d, &msgs[i]);
		if (rc) {
			db_rollback(db);
			if (rc != TERN_E_DB)
				host_fail("signing", rc);
			return rc;
		}
	}
	return 0;
}

/* One line per desired state the broker has: the first @n of @msgs. */
static void print_deployed(const struct deploy_args *a, const char *release_id,
			   const struct deploy_msg *msgs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		printf("deployed %s to %s: %s, activate %s, generation %llu\n", release_id,
		       a->devices[i], tern_action_name(a->action), tern_activate_name(a->activate),
		       (unsigned long long)msgs[i].generation);
}

int cmd_deploy(int argc, char **argv)
{
	static struct deploy_args a;
	struct tern_signer sg = {0};
	struct db *db = NULL;
	struct mqtt *mq = NULL;
	struct deploy_msg *msgs = NULL;
	char release_id[TERN_RELEASE_ID_MAX + 1], client_id[64];
	uint64_t sequence;
	size_t published = 0;
	int rc, status = parse_deploy(argc, argv, &a);
	if (status >= 0)
		goto out;
	status = 1;
	if ((rc = host_load_signer(a.key, &sg))) {
		host_fail(a.key, rc);
		goto out;
	}
	if (db_open(&db, broker_opt(&a.bo, BF_DB)))
		goto out;
	if (deploy_resolve_release(db, a.release, release_id, sizeof(release_id), &sequence, NULL,
				   0, NULL, 0))
		goto out;
	/* Devices fetch the release from the broker: a file never published would leave
	 * them waiting for it without a word. (An id was checked when it was resolved.) */
	bool complete = false;
	uint64_t published_sequence;
	rc = db_release_get(db, release_id, &published_sequence, &complete);
	if (rc == TERN_E_NOT_FOUND || (!rc && !complete)) {
		fprintf(
		    stderr,
		    "tern: release %s is not %spublished, so devices cannot fetch it: run 'tern "
		    "publish %s' first\n",
		    release_id, rc ? "" : "completely ", a.release);
		goto out;
	}
	if (rc)
		goto out;
	if (a.all && (rc = db_device_ids(db, add_device, &a))) {
		host_fail("--all", rc);
		goto out;
	}
	if (a.n_devices == 0) {
		fprintf(stderr,
			"tern: --all: no devices in the database yet (run 'tern watch' while "
			"devices connect)\n");
		goto out;
	}
	msgs = calloc(a.n_devices, sizeof(*msgs));
	if (!msgs) {
		host_fail(NULL, TERN_E_NOMEM);
		goto out;
	}
	/* The pace counts from here: the states due while paho connects (about 0.1 s) go
	 * out as soon as it has. */
	struct deploy_pace pace;
	deploy_pace_start(&pace, a.rate);
	snprintf(client_id, sizeof(client_id), "tern-deploy-%ld", (long)getpid());
	struct mqtt_params mp = {.client_id = client_id};
	if (mqtt_connect_start(&mq, &a.bo, &mp))
		goto out;
	/* While paho connects (about 0.1 s, host/mqtt.h), batches are signed and recorded in
	 * one transaction that is committed only once the broker has answered, so an
	 * unreachable broker still costs no generation number. */
	size_t signed_now = 0;
	if (db_begin(db)) {
		mqtt_connect_finish(&mq);
		goto out;
	}
	do {
		size_t end = batch_end(signed_now, a.n_devices);
		if (sign_batch(db, &sg, &a, release_id, sequence, msgs, signed_now, end)) {
			mqtt_connect_finish(&mq);
			goto out;
		}
		signed_now = end;
	} while (signed_now < a.n_devices && mqtt_connect_pending(mq));
	if (mqtt_connect_finish(&mq)) {
		db_rollback(db);
		goto out;
	}
	if (db_commit(db))
		goto out;
	/* Interrupted while paced, it stops between two states and says how far it got. */
	host_catch_stop_signals();
	/* Then in batches: a batch's generations are taken and recorded (one transaction)
	 * before any of its states is published, so a crash between the two wastes numbers
	 * but never issues one twice; devices of the first batches start while later ones
	 * are signed. */
	for (size_t start = 0; start < a.n_devices; start = batch_end(start, a.n_devices)) {
		size_t end = batch_end(start, a.n_devices);
		if (end > signed_now &&
		    (db_begin(db) ||
		     sign_batch(db, &sg, &a, release_id, sequence, msgs, start, end) ||
		     db_commit(db)))
			goto out_partial;
		for (size_t i = start; i < end; i++) {
			deploy_pace_wait(&pace);
			if (host_stop_signal)
				goto out_stopped;
			if ((rc = deploy_publish(mq, broker_opt(&a.bo, BF_PREFIX), &msgs[i]))) {
				host_fail("publish", rc);
				goto out_partial;
			}
			published = i + 1;
		}
	}
	if ((rc = mqtt_flush(mq))) {
		host_fail("publish", rc);
		goto out_partial;
	}
	print_deployed(&a, release_id, msgs, a.n_devices);
	status = 0;
	goto out;
out_stopped:
	/* What was handed to paho goes out before it is told as deployed. */
	if ((rc = mqtt_flush(mq)))
		host_fail("publish", rc);
	else
		print_deployed(&a, release_id, msgs, published);
	fprintf(stderr, "tern: deploy interrupted (%s)\n", strsignal(host_stop_signal));
	if (!published)
		fprintf(stderr, "tern: no desired state was published; run the deploy again\n");
out_partial:
	if (published)
		fprintf(
		    stderr,
		    "tern: deploy stopped after handing %zu of %zu desired states to the broker "
		    "(their generations are recorded; run the deploy again for the rest)\n",
		    published, a.n_devices);
out:
	mqtt_close(mq);
	free(msgs);
	db_close(db);
	tern_signer_free(&sg);
	for (size_t i = 0; i < a.n_devices; i++)
		free((void *)a.devices[i]);
	free(a.devices);
	broker_opts_free(&a.bo);
	return status;
}
