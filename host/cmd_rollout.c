/*
 * `tern rollout create|run|status|pause|resume|approve|abort`: staged rollouts driven
 * from the host database. The controller (`run`) is a loop of steps; each step is one
 * transaction that reads the rollout, what devices reported, and decides; desired
 * states go through an outbox so that a controller killed at any moment continues
 * where it stopped (docs/rollout.md).
 */
#include "broker.h"
#include "db.h"
#include "deploy.h"
#include "host.h"
#include "host_util.h"
#include "mqtt.h"
#include "recorder.h"
#include "rollout.h"
#include "rollout_db.h"
#include "rollout_lease.h"
#include "rollout_plan.h"

#include "tern/tern_err.h"
#include "tern/tern_msg.h"
#include "tern/tern_topic.h"

#include <getopt.h>
#include <math.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define STEP_MS		  200 /* the controller looks at the database this often */
#define ABORT_SETTLE_S	  60  /* how long an abort waits for devices acting on its commands */
#define OUTBOX_BATCH	  256 /* desired states published per outbox pass */
#define EXIT_NEEDS_ACTION 3   /* run --no-wait: paused or waiting for approval */

static const char create_help[] =
    "usage: tern rollout create RELEASE --key FILE.key --name NAME\n"
    "           [--devices all|ID[,ID...] | --board B] --waves 1,10%,50%,100%\n"
    "           [--bake 10m] [--max-failures 5%] [--min-success 95%]\n"
    "           [--device-timeout 15m] [--approve-each-wave] [--activate together|each]\n"
    "           [--rate " DEPLOY_RATE_TEXT "]\n"
    "\n"
    "Plans a staged rollout of RELEASE (a release file, or an id 'tern publish' printed)\n"
    "and records it in the host database; 'tern rollout run NAME' carries it out.\n"
    "  --devices all        every device in the database (default); or ids, repeated or\n"
    "                       comma-separated; --board B: every known device of board B\n"
    "  --waves LIST         cumulative size of the rollout after each wave, as counts or\n"
    "                       percentages of the target set (1,10%,50%,100%); members are\n"
    "                       chosen by a hash of (NAME, device id): stable across reruns\n"
    "  --bake D             watch each wave for D after every member reported (0, 45s,\n"
    "                       10m, 2h; default 0); a roll back meanwhile is a failure\n"
    "  --max-failures R     pause as soon as more than R of a wave failed (default 0%)\n"
    "  --min-success R      promote only if at least R of a wave succeeded (default none)\n"
    "  --device-timeout D   a member that has not succeeded or failed after D counts as\n"
    "                       failed (timed out); 0: wait for ever (default 15m)\n"
    "  --approve-each-wave  wait for 'tern rollout approve NAME' before each next wave\n"
    "  --activate together  stage the whole wave, then boot every staged member at once;\n"
    "             each      each device boots the release as soon as it is staged (default)\n"
    "  --rate N             desired states a second within a wave (default " DEPLOY_RATE_TEXT
    "; 0: all at\n"
    "                       once): a large wave starts its downloads in turn, and a wave\n"
    "                       that pauses or fails its gate early keeps the rest of its\n"
    "                       commands (reverts are paced the same way)\n"
    "\n" BROKER_HELP;

static const char run_help[] =
    "usage: tern rollout run NAME [--key FILE.key] [--no-wait] [--client-id ID] --broker URL\n"
    "\n"
    "Drives the rollout: deploys each wave with signed desired states, records what the\n"
    "devices report, bakes, applies the gates. Safe to stop (Ctrl-C, kill) and run again\n"
    "at any moment: it continues from the database. Returns when the rollout is done or\n"
    "aborted; while it is paused or waiting for approval it waits, or with --no-wait\n"
    "exits with status 3. --key overrides the key file given to 'rollout create'.\n"
    "Refuses (changing nothing) a release that 'tern publish' did not complete.\n"
    "One controller per rollout: a second 'run' refuses, naming the first (its pid,\n"
    "host and start); the lease of a controller that died is taken over at once.\n"
    "A live line per wave on a terminal; plain lines otherwise; NO_COLOR is respected.\n"
    "\n" BROKER_HELP;

static const char status_help[] =
    "usage: tern rollout status [NAME] [--json] [--members] [--db FILE]\n"
    "\n"
    "Every rollout, or one: state (created, running, waiting-approval, paused, done,\n"
    "aborted), the reason when paused or aborted, the controller driving it (pid, host,\n"
    "since), and per wave its size and how many members succeeded, failed, are pending\n"
    "and were withdrawn by an abort; after an abort with --revert, how many members are\n"
    "back on their previous release. --members: one line per member of NAME (wave,\n"
    "device, outcome, reason, and the revert's outcome), in the order they are deployed.\n";

static const char decide_help[] =
    "usage: tern rollout pause|resume|approve NAME [--by WHO] [--db FILE]\n"
    "       tern rollout pace NAME --rate N [--by WHO] [--db FILE]\n"
    "       tern rollout abort NAME [--revert] [--key FILE.key] [--broker URL] [--by WHO]\n"
    "\n"
    "  pause    stop deploying (devices already told carry on); the controller keeps\n"
    "           watching\n"
    "  resume   continue a paused rollout; a wave that failed its gate is passed by\n"
    "           the operator's decision, recorded as such\n"
    "  approve  start the next wave of a rollout waiting for approval\n"
    "  pace     send the commands still to go at N desired states a second (0: at\n"
    "           once): the waves' installs and the reverts; the controller takes it\n"
    "           at its next step\n"
    "  abort    stop for good; the commands of members that have not started (offline,\n"
    "           not yet downloading, downloading, or staged for a joint activation) are\n"
    "           withdrawn from the broker, so a device that connects later never\n"
    "           installs the release; the running controller does it, else this command\n"
    "           (it needs the broker then). --revert also sends every member that took\n"
    "           the release back to its previous release (signed like any command),\n"
    "           waits for their reports (up to the device timeout) and records them\n"
    "Every decision is recorded with the time and who made it (--by, else $USER, else\n"
    "the account).\n";

/* ---- shared with `tern report` */

const char *rollout_actor(const char *by)
{
	if (by && *by)
		return by;
	const char *u = getenv("USER");
	if (u && *u)
		return u;
	/* No $USER (a systemd unit, a container): the account running the controller. */
	const struct passwd *pw = getpwuid(geteuid());
	return pw && pw->pw_name && *pw->pw_name ? pw->pw_name : "unknown";
}

int rollout_load(struct db *db, const char *name, struct rollout *r)
{
	sqlite3_stmt *s = rdb_query(
	    db,
	    "SELECT name, release_id, version, sequence, notes, key_file, targets, waves_spec,"
	    " bake_s, device_timeout_s, max_fail_ppm, min_success_ppm, approve_each, activate,"
	    " state, reason, current_wave, revert, created_at, updated_at,"
	    " (SELECT count(*) FROM rollout_waves w WHERE w.rollout=r.name), rate"
	    " FROM rollouts r WHERE name=?1",
	    "t", name);
	if (!s)
		return TERN_E_DB;
	int rc = sqlite3_step(s);
	if (rc != SQLITE_ROW) {
		sqlite3_finalize(s);
		if (rc != SQLITE_DONE)
			return db_fail(db, "read rollout");
		fprintf(stderr, "tern: no rollout named '%s' (see 'tern rollout status')\n", name);
		return TERN_E_NOT_FOUND;
	}
	memset(r, 0, sizeof(*r));
	snprintf(r->name, sizeof(r->name), "%s", rdb_text(s, 0));
	snprintf(r->release_id, sizeof(r->release_id), "%s", rdb_text(s, 1));
	snprintf(r->version, sizeof(r->version), "%s", rdb_text(s, 2));
	r->sequence = (uint64_t)sqlite3_column_int64(s, 3);
	snprintf(r->notes, sizeof(r->notes), "%s", rdb_text(s, 4));
	snprintf(r->key_file, sizeof(r->key_file), "%s", rdb_text(s, 5));
	snprintf(r->targets, sizeof(r->targets), "%s", rdb_text(s, 6));
	snprintf(r->waves_spec, sizeof(r->waves_spec), "%s", rdb_text(s, 7));
	r->bake_s = (uint64_t)sqlite3_column_int64(s, 8);
	r->device_timeout_s = (uint64_t)sqlite3_column_int64(s, 9);
	r->max_fail_ppm = (uint32_t)sqlite3_column_int64(s, 10);
	r->min_success_ppm = (uint32_t)sqlite3_column_int64(s, 11);
	r->approve_each = sqlite3_column_int(s, 12) != 0;
	r->activate_together = !strcmp(rdb_text(s, 13), "together");
	snprintf(r->state, sizeof(r->state), "%s", rdb_text(s, 14));
	snprintf(r->reason, sizeof(r->reason), "%s", rdb_text(s, 15));
	r->current_wave = sqlite3_column_int64(s, 16);
	r->revert = sqlite3_column_int64(s, 17);
	r->created_at = sqlite3_column_double(s, 18);
	r->updated_at = sqlite3_column_double(s, 19);
	r->n_waves = sqlite3_column_int64(s, 20);
	r->rate = (uint32_t)sqlite3_column_int64(s, 21);
	sqlite3_finalize(s);
	return 0;
}

int rollout_waves(struct db *db, const char *name,
		  int (*fn)(void *ctx, const struct rollout_wave_row *w), void *ctx)
{
	sqlite3_stmt *s = rdb_query(
	    db,
	    "SELECT w.wave, w.state, w.size,"
	    " coalesce(sum(m.outcome='succeeded'), 0),"
	    " coalesce(sum(m.outcome IN ('failed','timed-out')), 0),"
	    " coalesce(sum(m.outcome IN ('waiting','pending')), 0),"
	    " coalesce(w.started_at, 0), coalesce(w.reported_at, 0), coalesce(w.bake_until, 0),"
	    " coalesce(w.gated_at, 0),"
	    " (SELECT count(*) FROM rollout_withdrawals x WHERE x.rollout=w.rollout AND"
	    "  x.wave=w.wave AND x.taken_at IS NULL),"
	    " coalesce(sum(m.outcome='pending' AND m.generation > 0 AND m.deployed_at IS NULL), 0)"
	    " FROM rollout_waves w LEFT JOIN rollout_members m ON m.rollout=w.rollout AND"
	    " m.wave=w.wave WHERE w.rollout=?1 GROUP BY w.wave ORDER BY w.wave",
	    "t", name);
	if (!s)
		return TERN_E_DB;
	int rc, cb = 0;
	while (!cb && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct rollout_wave_row w = {0};
		w.wave = sqlite3_column_int64(s, 0);
		snprintf(w.state, sizeof(w.state), "%s", rdb_text(s, 1));
		w.c.size = (uint64_t)sqlite3_column_int64(s, 2);
		w.c.succeeded = (uint64_t)sqlite3_column_int64(s, 3);
		w.c.failed = (uint64_t)sqlite3_column_int64(s, 4);
		w.c.pending = (uint64_t)sqlite3_column_int64(s, 5);
		w.started_at = sqlite3_column_double(s, 6);
		w.reported_at = sqlite3_column_double(s, 7);
		w.bake_until = sqlite3_column_double(s, 8);
		w.gated_at = sqlite3_column_double(s, 9);
		w.withdrawn = (uint64_t)sqlite3_column_int64(s, 10);
		w.queued = (uint64_t)sqlite3_column_int64(s, 11);
		cb = fn(ctx, &w);
	}
	if (!cb && rc != SQLITE_DONE && rc != SQLITE_ROW)
		cb = db_fail(db, "read waves");
	sqlite3_finalize(s);
	return cb;
}

/* ---- create */

struct id_list {
	const char **ids;
	size_t n, cap;
};

static int id_add(void *ctx, const char *id)
{
	struct id_list *l = ctx;
	for (size_t i = 0; i < l->n; i++)
		if (!strcmp(l->ids[i], id))
			return 0; /* given twice */
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		const char **p = realloc(l->ids, cap * sizeof(*p));
		if (!p)
			return TERN_E_NOMEM;
		l->ids = p;
		l->cap = cap;
	}
	char *copy = strdup(id);
	if (!copy)
		return TERN_E_NOMEM;
	l->ids[l->n++] = copy;
	return 0;
}

static void id_free(struct id_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free((void *)l->ids[i]);
	free(l->ids);
	memset(l, 0, sizeof(*l));
}

/* Adds ids from "a,b,c"; "all" sets @all. Returns 0, TERN_E_USAGE or TERN_E_NOMEM. */
static int parse_devices(const char *arg, struct id_list *l, bool *all)
{
	char buf[TERN_DEVICE_ID_MAX + 1];
	const char *p = arg;
	for (;;) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		if (len == 0 || len > TERN_DEVICE_ID_MAX)
			return TERN_E_USAGE;
		memcpy(buf, p, len);
		buf[len] = '\0';
		if (!strcmp(buf, "all")) {
			*all = true;
		} else {
			if (!tern_topic_id_valid(buf, TERN_DEVICE_ID_MAX))
				return TERN_E_USAGE;
			int rc = id_add(l, buf);
			if (rc)
				return rc;
		}
		if (!end)
			return 0;
		p = end + 1;
	}
}

/* Devices of the target set from the database: all, or of one board. */
static int targets_from_db(struct db *db, const char *board, struct id_list *l)
{
	sqlite3_stmt *s = rdb_query(
	    db, "SELECT id FROM devices WHERE ?1 IS NULL OR board=?1 ORDER BY id", "t", board);
	if (!s)
		return TERN_E_DB;
	int rc, cb = 0;
	while (!cb && (rc = sqlite3_step(s)) == SQLITE_ROW)
		cb = id_add(l, rdb_text(s, 0));
	if (!cb && rc != SQLITE_DONE && rc != SQLITE_ROW)
		cb = db_fail(db, "list devices");
	sqlite3_finalize(s);
	return cb;
}

struct create_args {
	const char *release, *key, *name, *board, *waves, *activate;
	struct id_list ids;
	bool all, approve_each;
	uint64_t bake_s, timeout_s;
	uint32_t max_fail, min_success, rate;
	struct broker_opts bo;
};

static int parse_create(int argc, char **argv, struct create_args *a)
{
	static const struct option opts[] = {
	    {"key", required_argument, NULL, 'k'},
	    {"name", required_argument, NULL, 'n'},
	    {"devices", required_argument, NULL, 'd'},
	    {"board", required_argument, NULL, 'b'},
	    {"waves", required_argument, NULL, 'w'},
	    {"bake", required_argument, NULL, 'B'},
	    {"max-failures", required_argument, NULL, 'f'},
	    {"min-success", required_argument, NULL, 's'},
	    {"device-timeout", required_argument, NULL, 't'},
	    {"approve-each-wave", no_argument, NULL, 'A'},
	    {"activate", required_argument, NULL, 'a'},
	    {"rate", required_argument, NULL, 'r'},
	    {"help", no_argument, NULL, 'h'},
	    BROKER_LONG_OPTIONS,
	    {0, 0, 0, 0},
	};
	const char *cmd = "rollout create";
	int c;
	a->timeout_s = 15 * 60;
	a->activate = "each";
	a->rate = DEPLOY_RATE;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (broker_opts_flag(&a->bo, c, optarg))
			continue;
		switch (c) {
		case 'k':
			a->key = optarg;
			break;
		case 'n':
			a->name = optarg;
			break;
		case 'd':
			if (parse_devices(optarg, &a->ids, &a->all))
				return host_usage(cmd, "--devices takes all, or device ids "
						       "(1 to 64 of A-Z a-z 0-9 . _ -)");
			break;
		case 'b':
			a->board = optarg;
			break;
		case 'w':
			a->waves = optarg;
			break;
		case 'B':
			if (rollout_parse_duration(optarg, &a->bake_s))
				return host_usage(cmd, "--bake takes a duration: 0, 45s, 10m, 2h");
			break;
		case 't':
			if (rollout_parse_duration(optarg, &a->timeout_s))
				return host_usage(
				    cmd, "--device-timeout takes a duration: 0, 45s, 10m, 2h");
			break;
		case 'f':
			if (rollout_parse_ratio(optarg, &a->max_fail))
				return host_usage(cmd, "--max-failures takes a percentage: 5%");
			break;
		case 's':
			if (rollout_parse_ratio(optarg, &a->min_success))
				return host_usage(cmd, "--min-success takes a percentage: 95%");
			break;
		case 'A':
			a->approve_each = true;
			break;
		case 'a':
			if (strcmp(optarg, "together") && strcmp(optarg, "each"))
				return host_usage(cmd, "--activate takes together or each");
			a->activate = optarg;
			break;
		case 'r':
			if (deploy_parse_rate(optarg, &a->rate))
				return host_usage(cmd, DEPLOY_RATE_HELP);
			break;
		case 'h':
			fputs(create_help, stdout);
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
	if (!a->name || !tern_topic_id_valid(a->name, ROLLOUT_NAME_MAX))
		return host_usage(cmd, "--name NAME is required: 1 to 64 of A-Z a-z 0-9 . _ -");
	if (!a->waves)
		return host_usage(cmd, "--waves is required, e.g. --waves 1,10%,50%,100%");
	if (a->board && (a->all || a->ids.n))
		return host_usage(cmd, "give --devices or --board, not both");
	if (a->all && a->ids.n)
		return host_usage(cmd, "--devices all and device ids together");
	if (!a->board && !a->ids.n)
		a->all = true;
	if (broker_opts_finish(&a->bo, false))
		return 2;
	return -1;
}

static int insert_plan(struct db *db, const struct create_args *a, const char *release_id,
		       uint64_t sequence, const char *version, const char *notes,
		       const char *key_abs, const char *targets, const uint64_t *sizes,
		       size_t n_waves)
{
	double now = rdb_now();
	int rc = rdb_exec(
	    db,
	    "INSERT INTO rollouts(name, release_id, version, sequence, notes, key_file,"
	    " targets, waves_spec, bake_s, max_fail_ppm, min_success_ppm,"
	    " device_timeout_s, approve_each, activate, state, created_at, updated_at, rate)"
	    " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14,"
	    " 'created', ?15, ?15, ?16)",
	    "tttittttiiiiitdi", a->name, release_id, version, (int64_t)sequence, notes, key_abs,
	    targets, a->waves, (int64_t)a->bake_s, (int64_t)a->max_fail, (int64_t)a->min_success,
	    (int64_t)a->timeout_s, (int64_t)(a->approve_each ? 1 : 0), a->activate, now,
	    (int64_t)a->rate);
	size_t next = 0;
	for (size_t w = 0; !rc && w < n_waves; w++) {
		rc = rdb_exec(db,
			      "INSERT INTO rollout_waves(rollout, wave, size, state)"
			      " VALUES(?1, ?2, ?3, 'pending')",
			      "tii", a->name, (int64_t)w, (int64_t)sizes[w]);
		for (uint64_t k = 0; !rc && k < sizes[w]; k++, next++)
			rc = rdb_exec(db,
				      "INSERT INTO rollout_members(rollout, device_id, wave, rank)"
				      " VALUES(?1, ?2, ?3, ?4)",
				      "ttii", a->name, a->ids.ids[next], (int64_t)w, (int64_t)next);
	}
	char bake[32], timeout[32], maxf[16], mins[16], rate[48];
	if (!rc)
		rc = rdb_event(
		    db, a->name, -1, NULL, "created", rollout_actor(NULL),
		    "release %s to %s: %zu devices in %zu waves (%s), bake %s, max "
		    "failures %s, min success %s, device timeout %s%s, activate %s, %s",
		    release_id, targets, next, n_waves, a->waves,
		    rollout_format_duration(a->bake_s, bake, sizeof(bake)),
		    rollout_format_ratio(a->max_fail, maxf, sizeof(maxf)),
		    a->min_success ? rollout_format_ratio(a->min_success, mins, sizeof(mins))
				   : "none",
		    a->timeout_s ? rollout_format_duration(a->timeout_s, timeout, sizeof(timeout))
				 : "none",
		    a->approve_each ? ", approval before each wave" : "", a->activate,
		    rollout_format_rate(a->rate, rate, sizeof(rate)));
	return rc;
}

int cmd_rollout_create(int argc, char **argv)
{
	static struct create_args a;
	static char notes[TERN_NOTES_MAX + 1];
	struct tern_signer sg = {0};
	struct db *db = NULL;
	char release_id[TERN_RELEASE_ID_MAX + 1], version[TERN_VERSION_MAX + 1], targets[256];
	char key_abs[4096];
	uint64_t sequence, sizes[ROLLOUT_MAX_WAVES];
	struct rollout_wave_spec spec[ROLLOUT_MAX_WAVES];
	size_t n_spec, n_waves;
	int rc, status = parse_create(argc, argv, &a);
	if (status >= 0)
		goto out;
	status = 1;
	if (rollout_parse_waves(a.waves, spec, ROLLOUT_MAX_WAVES, &n_spec)) {
		status = host_usage("rollout create",
				    "--waves takes growing counts or percentages: 1,10%,50%,100%");
		goto out;
	}
	if ((rc = host_load_signer(a.key, &sg))) {
		host_fail(a.key, rc);
		goto out;
	}
	if (!realpath(a.key, key_abs)) {
		host_fail(a.key, TERN_E_NOT_FOUND);
		goto out;
	}
	if (db_open(&db, broker_opt(&a.bo, BF_DB)))
		goto out;
	if (deploy_resolve_release(db, a.release, release_id, sizeof(release_id), &sequence,
				   version, sizeof(version), notes, sizeof(notes)))
		goto out;
	if (a.all || a.board) {
		if ((rc = targets_from_db(db, a.board, &a.ids))) {
			host_fail("devices", rc);
			goto out;
		}
		snprintf(targets, sizeof(targets), a.board ? "board %s" : "all devices",
			 a.board ? a.board : "");
	} else {
		snprintf(targets, sizeof(targets), "%zu listed device%s", a.ids.n,
			 a.ids.n == 1 ? "" : "s");
	}
	if (a.ids.n == 0) {
		fprintf(stderr,
			"tern: rollout create: no devices to target (%s): run 'tern watch' "
			"while devices connect, or give --devices ID\n",
			targets);
		goto out;
	}
	if (rollout_wave_sizes(spec, n_spec, a.ids.n, sizes, ROLLOUT_MAX_WAVES, &n_waves)) {
		host_fail("--waves", TERN_E_INVAL);
		goto out;
	}
	if ((rc = rollout_order(a.name, a.ids.ids, a.ids.n))) {
		host_fail(NULL, rc);
		goto out;
	}
	int64_t exists;
	if (db_begin(db))
		goto out;
	if ((rc = rdb_int(db, &exists, "SELECT count(*) FROM rollouts WHERE name=?1", "t",
			  a.name)) ||
	    exists) {
		db_rollback(db);
		if (!rc)
			fprintf(stderr,
				"tern: a rollout named '%s' exists already; choose another "
				"--name\n",
				a.name);
		goto out;
	}
	if (insert_plan(db, &a, release_id, sequence, version, notes, key_abs, targets, sizes,
			n_waves)) {
		db_rollback(db);
		goto out;
	}
	if (db_commit(db))
		goto out;
	uint64_t planned = 0;
	for (size_t w = 0; w < n_waves; w++)
		planned += sizes[w];
	printf("rollout %s: %s to %llu of %zu devices (%s) in %zu waves:", a.name, release_id,
	       (unsigned long long)planned, a.ids.n, targets, n_waves);
	for (size_t w = 0; w < n_waves; w++)
		printf(" %llu", (unsigned long long)sizes[w]);
	/* A file may be published after planning, but 'run' deploys nothing until it is. */
	uint64_t published_sequence;
	bool complete = false;
	if (db_release_get(db, release_id, &published_sequence, &complete) || !complete)
		printf("\nnext: tern publish %s, then tern rollout run %s\n", a.release, a.name);
	else
		printf("\nnext: tern rollout run %s\n", a.name);
	status = 0;
out:
	db_close(db);
	tern_signer_free(&sg);
	id_free(&a.ids);
	broker_opts_free(&a.bo);
	return status;
}

/* ---- the controller */

struct ctl {
	struct db *db;
	struct mqtt *mq; /* NULL: decide, but publish nothing */
	const char *prefix;
	struct tern_signer sg;
	bool have_signer;
	bool leased; /* a controller: holds the rollout's lease, checked at every step */
	struct rollout r;
	double now;
	/* Judging only what changed: the last device_states and events rows already
	 * judged; judge_all makes the next pass look at every member. */
	int64_t seen_state_seq, seen_event_seq;
	bool judge_all;
	double next_deadline; /* a pending member may time out after this; 0: none */
	/* --rate: the schedule of the paced commands in the outbox, restarted when none
	 * waited (docs/rollout.md, "Pacing a wave"). */
	struct deploy_pace pace;
	bool pace_idle;
};

/* A member whose outcome changed. */
struct change {
	char device_id[TERN_DEVICE_ID_MAX + 1];
	int64_t wave;
	const char *outcome;
	char reason[160];
};

struct changes {
	struct change *v;
	size_t n, cap;
};

static int change_add(struct changes *c, const char *dev, int64_t wave, const char *outcome,
		      const char *reason)
{
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 64;
		struct change *p = realloc(c->v, cap * sizeof(*p));
		if (!p)
			return TERN_E_NOMEM;
		c->v = p;
		c->cap = cap;
	}
	struct change *x = &c->v[c->n++];
	snprintf(x->device_id, sizeof(x->device_id), "%s", dev);
	x->wave = wave;
	x->outcome = outcome;
	snprintf(x->reason, sizeof(x->reason), "%s", reason ? reason : "");
	return 0;
}

/*
 * What judging a member reads (?1 rollout, ?2 its release); a WHERE clause follows. A
 * failure is an event about our command: its generation, or (a device that does not
 * say) our release after we deployed. The state alone is ambiguous: right after
 * accepting, a device still shows how its last update ended.
 */
#define JUDGE_SELECT                                                                               \
	"SELECT m.device_id, m.wave, m.generation, m.deployed_at, m.outcome,"                      \
	" coalesce(d.state, ''), coalesce(d.release_id, ''), coalesce(d.generation, 0),"           \
	" coalesce(d.last_status, ''),"                                                            \
	" (SELECT e.status || coalesce(': ' || e.detail, '') FROM events e"                        \
	"   WHERE e.device_id=m.device_id AND e.kind='refused' AND"                                \
	"   e.status<>'old-generation' AND e.generation IN (m.generation,"                         \
	"   coalesce(m.activate_generation, -1)) ORDER BY e.seq DESC LIMIT 1),"                    \
	" (SELECT e.to_state || ': ' || coalesce(e.status, '') ||"                                 \
	"   coalesce(': ' || e.detail, '') FROM events e"                                          \
	"   WHERE e.device_id=m.device_id AND e.kind='transition' AND"                             \
	"   e.to_state IN ('rolled-back','failed') AND (e.generation IN (m.generation,"            \
	"   coalesce(m.activate_generation, -1)) OR (e.generation IS NULL AND"                     \
	"   e.release_id=?2 AND e.received_at >= m.deployed_at - 1))"                              \
	"   ORDER BY e.seq DESC LIMIT 1),"                                                         \
	" coalesce(w.activated_at, 0)"                                                             \
	" FROM rollout_members m LEFT JOIN devices d ON d.id=m.device_id"                          \
	" JOIN rollout_waves w ON w.rollout=m.rollout AND w.wave=m.wave"

/*
 * Reads what members reported and updates their outcome: pending -> succeeded, failed
 * or timed-out; succeeded -> failed (rolled back during the bake); timed-out ->
 * succeeded or failed when the device reports late. Failed is final.
 *
 * A verdict depends on the member's row, its device's row and events, the wave's
 * activation and the clock. So a pass judges only the members whose device recorded a
 * state or an event since the last pass; every member on the first pass, after the
 * controller itself changed member rows or a wave's clock (deploy, activate:
 * c->judge_all), and once the earliest device timeout of a pending member has run out
 * (c->next_deadline). The decisions are those of judging every member every time.
 */
static int evaluate_members(struct ctl *c)
{
	struct changes ch = {0};
	int64_t state_seq, event_seq;
	if (rdb_int(c->db, &state_seq, "SELECT coalesce(max(seq), 0) FROM device_states", "") ||
	    rdb_int(c->db, &event_seq, "SELECT coalesce(max(seq), 0) FROM events", ""))
		return TERN_E_DB;
	if (state_seq < c->seen_state_seq || event_seq < c->seen_event_seq)
		c->judge_all = true; /* rows went away: the history was pruned */
	if (c->next_deadline > 0 && c->now > c->next_deadline)
		c->judge_all = true; /* a device timeout may have run out */
	bool all = c->judge_all;
	/* Every member, or (indexed) only those whose device reported since the last pass. */
	sqlite3_stmt *s = rdb_query(
	    c->db,
	    all ? JUDGE_SELECT " WHERE m.rollout=?1 AND m.generation IS NOT NULL AND"
			       " m.outcome IN ('pending','succeeded','timed-out')"
		: JUDGE_SELECT " WHERE m.rollout=?1 AND m.device_id IN"
			       " (SELECT device_id FROM device_states WHERE seq>?3 UNION"
			       "  SELECT device_id FROM events WHERE seq>?4) AND"
			       " m.generation IS NOT NULL AND"
			       " m.outcome IN ('pending','succeeded','timed-out')",
	    all ? "tt" : "ttii", c->r.name, c->r.release_id, c->seen_state_seq, c->seen_event_seq);
	if (!s)
		return TERN_E_DB;
	int rc = 0, st;
	double deadline_min = INFINITY;
	while (!rc && (st = sqlite3_step(s)) == SQLITE_ROW) {
		const char *dev = rdb_text(s, 0), *cur = rdb_text(s, 4), *dstate = rdb_text(s, 5);
		const char *drel = rdb_text(s, 6);
		int64_t gen = sqlite3_column_int64(s, 2), dgen = sqlite3_column_int64(s, 7);
		/* Its command waits in the outbox for its turn: its clock has not started. */
		bool queued = sqlite3_column_type(s, 3) == SQLITE_NULL;
		double deployed = sqlite3_column_double(s, 3);
		const char *refused =
		    sqlite3_column_type(s, 9) == SQLITE_NULL ? NULL : rdb_text(s, 9);
		const char *failure =
		    sqlite3_column_type(s, 10) == SQLITE_NULL ? NULL : rdb_text(s, 10);
		const char *next = "pending";
		char reason[160] = "";
		if (failure) {
			next = "failed";
			snprintf(reason, sizeof(reason), "%s", failure);
		} else if (dgen >= gen && !strcmp(dstate, "confirmed") &&
			   !strcmp(drel, c->r.release_id)) {
			next = "succeeded";
		} else if (refused) {
			/* Refused our command, or accepted it and refused the release (not
			 * newer, another board...): the agent does not try again either way. */
			next = "failed";
			snprintf(reason, sizeof(reason), "refused: %s", refused);
		}
		/* activate together: a staged member waits for the wave's activation, and
		 * its clock starts again when the wave is told to boot. */
		double activated = sqlite3_column_double(s, 11);
		bool held = c->r.activate_together && activated == 0 && dgen >= gen &&
			    !strcmp(dstate, "staged");
		double since = activated > deployed ? activated : deployed;
		if (!strcmp(next, "pending") && !held && !queued && c->r.device_timeout_s &&
		    c->now - since > (double)c->r.device_timeout_s) {
			next = "timed-out";
			snprintf(reason, sizeof(reason),
				 "no outcome within the device timeout (%s)",
				 *dstate ? dstate : "never reported");
		} else if (!strcmp(next, "pending") && !strcmp(cur, "pending") && !held &&
			   !queued && c->r.device_timeout_s) {
			/* Still pending: when to look at it again without a report. */
			double deadline = since + (double)c->r.device_timeout_s;
			if (deadline < deadline_min)
				deadline_min = deadline;
		}
		/* A success stays one unless the device fails; a time-out unless it reports. */
		if (!strcmp(cur, "succeeded") && strcmp(next, "failed"))
			next = cur;
		if (!strcmp(cur, "timed-out") && !strcmp(next, "pending"))
			next = cur;
		if (strcmp(next, cur))
			rc = change_add(&ch, dev, sqlite3_column_int64(s, 1), next, reason);
	}
	sqlite3_finalize(s);
	for (size_t i = 0; !rc && i < ch.n; i++) {
		const struct change *x = &ch.v[i];
		rc = rdb_exec(c->db,
			      "UPDATE rollout_members SET outcome=?3, reason=?4, outcome_at=?5"
			      " WHERE rollout=?1 AND device_id=?2",
			      "ttttd", c->r.name, x->device_id, x->outcome, x->reason, c->now);
		if (!rc)
			rc = rdb_event(c->db, c->r.name, x->wave, x->device_id, x->outcome, NULL,
				       "%s", x->reason);
	}
	free(ch.v);
	if (!rc) {
		c->seen_state_seq = state_seq;
		c->seen_event_seq = event_seq;
		c->judge_all = false;
		/* After a full pass the earliest deadline is exact; otherwise it only moves
		 * earlier (a member no longer held by activate together). */
		if (all)
			c->next_deadline = deadline_min < INFINITY ? deadline_min : 0;
		else if (deadline_min < INFINITY &&
			 (c->next_deadline == 0 || deadline_min < c->next_deadline))
			c->next_deadline = deadline_min;
	}
	return rc;
}

/* Queues a signed desired state for publishing (same transaction as its issue). */
static int outbox_add(struct ctl *c, const struct deploy_msg *m)
{
	return rdb_exec(c->db,
			"INSERT OR IGNORE INTO rollout_outbox(rollout, device_id, generation)"
			" VALUES(?1, ?2, ?3)",
			"tti", c->r.name, m->device_id, (int64_t)m->generation);
}

/* Issues @action of (@release, @sequence) to @dev; fills *@generation. */
static int issue(struct ctl *c, const char *dev, const char *release, uint64_t sequence,
		 enum tern_action action, enum tern_activate_mode activate, int64_t *generation)
{
	static struct deploy_msg msg;
	struct tern_desired d = {.sequence = sequence,
				 .action = action,
				 .activate = activate,
				 .issued = (uint64_t)c->now};
	snprintf(d.device_id, sizeof(d.device_id), "%s", dev);
	snprintf(d.release_id, sizeof(d.release_id), "%s", release);
	int rc = deploy_issue(c->db, &c->sg, &d, &msg);
	if (rc) {
		if (rc != TERN_E_DB)
			host_fail("signing", rc);
		return rc;
	}
	*generation = (int64_t)msg.generation;
	return outbox_add(c, &msg);
}

/* The release and sequence a device runs now, from its last state (to revert to). */
static void previous_release(const void *state, size_t len, char *rel, size_t rel_size,
			     int64_t *seq)
{
	struct tern_state_msg m;
	rel[0] = '\0';
	*seq = 0;
	if (!state || tern_state_decode(&m, state, len))
		return;
	snprintf(rel, rel_size, "%s", m.slots[m.active_slot].release_id);
	*seq = (int64_t)m.slots[m.active_slot].sequence;
}

/*
 * Deploys the members of wave @w that have not been deployed: each gets its generation,
 * signed desired state and outbox entry in this transaction, with the release it runs
 * now (to revert to). A member already running the release counts as succeeded.
 */
static int deploy_wave(struct ctl *c, int64_t w, uint64_t *n_sent, uint64_t *n_already)
{
	struct changes todo = {0};
	sqlite3_stmt *s =
	    rdb_query(c->db,
		      "SELECT m.device_id, coalesce(d.state, ''),"
		      " coalesce(d.release_id, ''), d.state_cbor"
		      " FROM rollout_members m LEFT JOIN devices d ON d.id=m.device_id"
		      " WHERE m.rollout=?1 AND m.wave=?2 AND m.generation IS NULL AND"
		      " m.outcome='waiting' ORDER BY m.rank",
		      "ti", c->r.name, w);
	if (!s)
		return TERN_E_DB;
	int rc = 0, st;
	*n_sent = *n_already = 0;
	while (!rc && (st = sqlite3_step(s)) == SQLITE_ROW) {
		bool already = !strcmp(rdb_text(s, 1), "confirmed") &&
			       !strcmp(rdb_text(s, 2), c->r.release_id);
		char rel[TERN_RELEASE_ID_MAX + 1];
		int64_t seq;
		previous_release(sqlite3_column_blob(s, 3), (size_t)sqlite3_column_bytes(s, 3), rel,
				 sizeof(rel), &seq);
		char prev[160];
		snprintf(prev, sizeof(prev), "%s\n%lld", rel, (long long)seq);
		rc = change_add(&todo, rdb_text(s, 0), w, already ? "already" : "deploy", prev);
	}
	sqlite3_finalize(s);
	enum tern_activate_mode mode =
	    c->r.activate_together ? TERN_ACTIVATE_LATER : TERN_ACTIVATE_NOW;
	for (size_t i = 0; !rc && i < todo.n; i++) {
		struct change *x = &todo.v[i];
		char *nl = strchr(x->reason, '\n');
		int64_t prev_seq = 0, gen = 0;
		if (nl) {
			*nl = '\0';
			uint64_t v;
			if (!host_parse_u64(nl + 1, INT64_MAX, &v))
				prev_seq = (int64_t)v;
		}
		if (!strcmp(x->outcome, "already")) {
			rc =
			    rdb_exec(c->db,
				     "UPDATE rollout_members SET outcome='succeeded', generation=0,"
				     " deployed_at=?3, outcome_at=?3, reason='already running the"
				     " release' WHERE rollout=?1 AND device_id=?2",
				     "ttd", c->r.name, x->device_id, c->now);
			(*n_already)++;
			continue;
		}
		rc = issue(c, x->device_id, c->r.release_id, c->r.sequence, TERN_ACTION_INSTALL,
			   mode, &gen);
		if (!rc)
			/* deployed_at is set when the broker took the command (outbox_flush). */
			rc = rdb_exec(c->db,
				      "UPDATE rollout_members SET generation=?3, deployed_at=NULL,"
				      " outcome='pending', prev_release=?4, prev_sequence=?5"
				      " WHERE rollout=?1 AND device_id=?2",
				      "ttiti", c->r.name, x->device_id, gen, x->reason, prev_seq);
		(*n_sent)++;
	}
	free(todo.v);
	c->judge_all = true; /* member rows changed here: judge them all next time */
	return rc;
}

/* activate together: once every member of @w is staged or resolved, boot the staged. */
static int activate_wave(struct ctl *c, int64_t w, bool *done)
{
	int64_t waiting;
	*done = false;
	int rc;
	rc = rdb_int(c->db, &waiting,
		     "SELECT count(*) FROM rollout_members m LEFT JOIN devices d ON"
		     " d.id=m.device_id WHERE m.rollout=?1 AND m.wave=?2 AND"
		     " m.outcome IN ('waiting','pending') AND NOT (coalesce(d.generation, 0) >="
		     " m.generation AND d.state='staged')",
		     "ti", c->r.name, w);
	if (rc || waiting)
		return rc;
	struct changes todo = {0};
	sqlite3_stmt *s = rdb_query(c->db,
				    "SELECT device_id FROM rollout_members WHERE rollout=?1 AND"
				    " wave=?2 AND outcome='pending' AND activate_generation IS NULL"
				    " ORDER BY rank",
				    "ti", c->r.name, w);
	if (!s)
		return TERN_E_DB;
	while (!rc && sqlite3_step(s) == SQLITE_ROW)
		rc = change_add(&todo, rdb_text(s, 0), w, "activate", NULL);
	sqlite3_finalize(s);
	for (size_t i = 0; !rc && i < todo.n; i++) {
		int64_t gen;
		rc = issue(c, todo.v[i].device_id, c->r.release_id, c->r.sequence,
			   TERN_ACTION_ACTIVATE, TERN_ACTIVATE_NOW, &gen);
		if (!rc)
			rc = rdb_exec(c->db,
				      "UPDATE rollout_members SET activate_generation=?3 WHERE"
				      " rollout=?1 AND device_id=?2",
				      "tti", c->r.name, todo.v[i].device_id, gen);
	}
	if (!rc)
		rc = rdb_exec(
		    c->db, "UPDATE rollout_waves SET activated_at=?3 WHERE rollout=?1 AND wave=?2",
		    "tid", c->r.name, w, c->now);
	if (!rc)
		rc = rdb_event(c->db, c->r.name, w, NULL, "activated", NULL,
			       "wave %lld: %zu staged devices told to boot the release together",
			       (long long)w + 1, todo.n);
	free(todo.v);
	*done = true;
	c->judge_all = true; /* the wave's clock restarted */
	return rc;
}

static int set_rollout(struct ctl *c, const char *state, const char *reason)
{
	snprintf(c->r.state, sizeof(c->r.state), "%s", state);
	snprintf(c->r.reason, sizeof(c->r.reason), "%s", reason ? reason : "");
	return rdb_exec(c->db,
			"UPDATE rollouts SET state=?2, reason=?3, updated_at=?4 WHERE name=?1",
			"tttd", c->r.name, state, reason, c->now);
}

static int set_wave(struct ctl *c, int64_t w, const char *state, const char *time_col)
{
	char sql[160];
	snprintf(sql, sizeof(sql),
		 "UPDATE rollout_waves SET state=?3%s%s%s WHERE rollout=?1 AND wave=?2",
		 time_col ? ", " : "", time_col ? time_col : "", time_col ? "=?4" : "");
	return rdb_exec(c->db, sql, time_col ? "titd" : "tit", c->r.name, w, state, c->now);
}

struct wave_now {
	char state[16];
	int64_t size;
	double bake_until, activated_at;
	struct rollout_counts n;
};

static int wave_load(struct ctl *c, int64_t w, struct wave_now *wn)
{
	sqlite3_stmt *s = rdb_query(
	    c->db,
	    "SELECT w.state, w.size, coalesce(w.bake_until, 0), coalesce(w.activated_at, 0),"
	    " (SELECT count(*) FROM rollout_members m WHERE m.rollout=w.rollout AND"
	    "  m.wave=w.wave AND m.outcome='succeeded'),"
	    " (SELECT count(*) FROM rollout_members m WHERE m.rollout=w.rollout AND"
	    "  m.wave=w.wave AND m.outcome IN ('failed','timed-out')),"
	    " (SELECT count(*) FROM rollout_members m WHERE m.rollout=w.rollout AND"
	    "  m.wave=w.wave AND m.outcome IN ('waiting','pending'))"
	    " FROM rollout_waves w WHERE w.rollout=?1 AND w.wave=?2",
	    "ti", c->r.name, w);
	if (!s)
		return TERN_E_DB;
	int rc = sqlite3_step(s) == SQLITE_ROW ? 0 : db_fail(c->db, "read wave");
	if (!rc) {
		snprintf(wn->state, sizeof(wn->state), "%s", rdb_text(s, 0));
		wn->size = sqlite3_column_int64(s, 1);
		wn->bake_until = sqlite3_column_double(s, 2);
		wn->activated_at = sqlite3_column_double(s, 3);
		wn->n.size = (uint64_t)wn->size;
		wn->n.succeeded = (uint64_t)sqlite3_column_int64(s, 4);
		wn->n.failed = (uint64_t)sqlite3_column_int64(s, 5);
		wn->n.pending = (uint64_t)sqlite3_column_int64(s, 6);
	}
	sqlite3_finalize(s);
	return rc;
}

/* Pauses the rollout because wave @w failed its gate. */
static int halt(struct ctl *c, int64_t w, const char *why)
{
	int rc = set_wave(c, w, "halted", "gated_at");
	if (!rc)
		rc = set_rollout(c, "paused", why);
	if (!rc)
		rc = rdb_event(c->db, c->r.name, w, NULL, "gate-failed", "controller", "%s", why);
	if (!rc)
		rc = rdb_event(c->db, c->r.name, w, NULL, "paused", "controller", "%s", why);
	return rc;
}

/* Moves on after wave @w passed (its gate, or the operator's decision). */
static int promote(struct ctl *c, int64_t w, const char *actor)
{
	int rc;
	if (w + 1 >= c->r.n_waves) {
		rc = set_rollout(c, "done", NULL);
		if (!rc)
			rc = rdb_event(c->db, c->r.name, -1, NULL, "done", actor,
				       "every wave passed");
		return rc;
	}
	rc = rdb_exec(c->db, "UPDATE rollouts SET current_wave=?2 WHERE name=?1", "ti", c->r.name,
		      w + 1);
	c->r.current_wave = w + 1;
	if (!rc && c->r.approve_each) {
		char why[128];
		snprintf(why, sizeof(why), "wave %lld passed; wave %lld waits for approval",
			 (long long)w + 1, (long long)w + 2);
		rc = set_rollout(c, "waiting-approval", why);
		if (!rc)
			rc = rdb_event(c->db, c->r.name, w + 1, NULL, "waiting-approval", actor,
				       "%s", why);
	}
	return rc;
}

/* One step of the current wave of a running rollout. */
static int wave_step(struct ctl *c)
{
	int64_t w = c->r.current_wave;
	struct wave_now wn;
	int rc = wave_load(c, w, &wn);
	if (rc)
		return rc;
	if (!strcmp(wn.state, "pending")) {
		if ((rc = set_wave(c, w, "deploying", "started_at")) ||
		    (rc = rdb_event(c->db, c->r.name, w, NULL, "wave-started", "controller",
				    "wave %lld of %lld: %lld devices", (long long)w + 1,
				    (long long)c->r.n_waves, (long long)wn.size)))
			return rc;
		snprintf(wn.state, sizeof(wn.state), "deploying");
	}
	if (!strcmp(wn.state, "deploying")) {
		uint64_t sent, already;
		if ((rc = deploy_wave(c, w, &sent, &already)) ||
		    (rc = set_wave(c, w, "running", NULL)) ||
		    (rc = rdb_event(c->db, c->r.name, w, NULL, "deployed", "controller",
				    "wave %lld: desired state signed for %llu devices%s",
				    (long long)w + 1, (unsigned long long)sent,
				    already ? " (others run the release already)" : "")))
			return rc;
		return 0; /* publish first; judge from the next step on */
	}
	if (!strcmp(wn.state, "halted") || !strcmp(wn.state, "passed"))
		return 0;
	if (c->r.activate_together && wn.activated_at == 0) {
		bool done;
		if ((rc = activate_wave(c, w, &done)) || !done)
			return rc;
		if ((rc = wave_load(c, w, &wn)))
			return rc;
	}
	char maxf[16], mins[16], why[256];
	rollout_format_ratio(c->r.max_fail_ppm, maxf, sizeof(maxf));
	rollout_format_ratio(c->r.min_success_ppm, mins, sizeof(mins));
	if (!strcmp(wn.state, "running") && wn.n.pending == 0 &&
	    rollout_gate(&wn.n, c->r.max_fail_ppm, 0, false) == ROLLOUT_GATE_WAIT) {
		char bake[32];
		rc = rdb_exec(c->db,
			      "UPDATE rollout_waves SET state='baking', reported_at=?3,"
			      " bake_until=?4 WHERE rollout=?1 AND wave=?2",
			      "tidd", c->r.name, w, c->now, c->now + (double)c->r.bake_s);
		if (!rc)
			rc = rdb_event(c->db, c->r.name, w, NULL, "bake-started", "controller",
				       "wave %lld: all %lld reported (%llu succeeded, %llu failed);"
				       " baking %s",
				       (long long)w + 1, (long long)wn.size,
				       (unsigned long long)wn.n.succeeded,
				       (unsigned long long)wn.n.failed,
				       rollout_format_duration(c->r.bake_s, bake, sizeof(bake)));
		if (rc)
			return rc;
		snprintf(wn.state, sizeof(wn.state), "baking");
		wn.bake_until = c->now + (double)c->r.bake_s;
	}
	bool bake_over = !strcmp(wn.state, "baking") && c->now >= wn.bake_until;
	switch (rollout_gate(&wn.n, c->r.max_fail_ppm, c->r.min_success_ppm, bake_over)) {
	case ROLLOUT_GATE_WAIT:
		return 0;
	case ROLLOUT_GATE_TOO_MANY_FAILED:
		snprintf(why, sizeof(why),
			 "wave %lld: %llu of %lld devices failed, above the maximum of %s",
			 (long long)w + 1, (unsigned long long)wn.n.failed, (long long)wn.size,
			 maxf);
		return halt(c, w, why);
	case ROLLOUT_GATE_TOO_FEW_SUCCEEDED:
		snprintf(why, sizeof(why),
			 "wave %lld: %llu of %lld devices succeeded, below the minimum of %s",
			 (long long)w + 1, (unsigned long long)wn.n.succeeded, (long long)wn.size,
			 mins);
		return halt(c, w, why);
	case ROLLOUT_GATE_PASS:
		break;
	}
	if ((rc = set_wave(c, w, "passed", "gated_at")) ||
	    (rc = rdb_event(c->db, c->r.name, w, NULL, "gate-passed", "controller",
			    "wave %lld: %llu succeeded, %llu failed of %lld (max failures %s%s%s)",
			    (long long)w + 1, (unsigned long long)wn.n.succeeded,
			    (unsigned long long)wn.n.failed, (long long)wn.size, maxf,
			    c->r.min_success_ppm ? ", min success " : "",
			    c->r.min_success_ppm ? mins : "")))
		return rc;
	return promote(c, w, "controller");
}

static int abort_settled(struct ctl *c, bool *settled);

/* Members that took the release and are sent back to what they ran before. Sets
 * @finished once every revert sent has an outcome and the abort has settled. */
static int revert_step(struct ctl *c, bool *finished)
{
	struct changes todo = {0};
	int rc = 0;
	*finished = false;
	sqlite3_stmt *s = rdb_query(
	    c->db,
	    "SELECT device_id, wave, coalesce(prev_release, ''), coalesce(prev_sequence, 0)"
	    " FROM rollout_members m WHERE rollout=?1 AND generation > 0 AND"
	    " revert_generation IS NULL AND revert_outcome IS NULL AND"
	    " outcome IN ('pending','succeeded','timed-out') AND NOT EXISTS (SELECT 1 FROM"
	    " rollout_withdrawals x WHERE x.rollout=?1 AND x.device_id=m.device_id AND"
	    " x.taken_at IS NULL)"
	    " ORDER BY wave, rank",
	    "t", c->r.name);
	if (!s)
		return TERN_E_DB;
	while (!rc && sqlite3_step(s) == SQLITE_ROW) {
		char prev[160];
		snprintf(prev, sizeof(prev), "%s\n%lld", rdb_text(s, 2),
			 (long long)sqlite3_column_int64(s, 3));
		rc = change_add(&todo, rdb_text(s, 0), sqlite3_column_int64(s, 1), "revert", prev);
	}
	sqlite3_finalize(s);
	size_t sent = 0;
	for (size_t i = 0; !rc && i < todo.n; i++) {
		struct change *x = &todo.v[i];
		char *nl = strchr(x->reason, '\n');
		uint64_t seq = 0;
		*nl = '\0';
		host_parse_u64(nl + 1, INT64_MAX, &seq);
		if (!x->reason[0] || !strcmp(x->reason, c->r.release_id)) {
			rc = rdb_exec(
			    c->db,
			    "UPDATE rollout_members SET revert_outcome='no previous release'"
			    " , revert_at=?3 WHERE rollout=?1 AND device_id=?2",
			    "ttd", c->r.name, x->device_id, c->now);
			continue;
		}
		int64_t gen;
		rc = issue(c, x->device_id, x->reason, seq, TERN_ACTION_REVERT, TERN_ACTIVATE_NOW,
			   &gen);
		if (!rc)
			/* revert_at is set when the broker took the revert (outbox_flush). */
			rc = rdb_exec(
			    c->db,
			    "UPDATE rollout_members SET revert_generation=?3, revert_at=NULL"
			    " WHERE rollout=?1 AND device_id=?2",
			    "tti", c->r.name, x->device_id, gen);
		sent++;
	}
	free(todo.v);
	if (!rc && todo.n)
		rc = rdb_event(c->db, c->r.name, -1, NULL, "revert-sent", "controller",
			       "%zu devices told to go back to their previous release", sent);
	if (rc || todo.n)
		return rc;
	/* Outcomes of the reverts sent. */
	struct changes res = {0};
	s = rdb_query(c->db,
		      "SELECT m.device_id, m.wave, m.revert_generation, m.revert_at,"
		      " coalesce(m.prev_release, ''), coalesce(d.state, ''),"
		      " coalesce(d.release_id, ''), coalesce(d.generation, 0),"
		      " (SELECT e.status FROM events e WHERE e.device_id=m.device_id AND"
		      "  e.kind='refused' AND e.generation=m.revert_generation AND"
		      "  e.status<>'old-generation' ORDER BY e.seq DESC LIMIT 1)"
		      " FROM rollout_members m LEFT JOIN devices d ON d.id=m.device_id"
		      " WHERE m.rollout=?1 AND m.revert_generation IS NOT NULL AND"
		      " m.revert_outcome IS NULL",
		      "t", c->r.name);
	if (!s)
		return TERN_E_DB;
	int64_t open = 0;
	while (!rc && sqlite3_step(s) == SQLITE_ROW) {
		int64_t gen = sqlite3_column_int64(s, 2), dgen = sqlite3_column_int64(s, 7);
		const char *dstate = rdb_text(s, 5), *drel = rdb_text(s, 6);
		const char *out = NULL;
		char why[160];
		/* Reverted: the device has the revert and runs its previous release, settled
		 * (confirmed after a revert's trial; or a download of the new release canceled,
		 * or its trial rolled back, before the revert came: back on it already). */
		bool settled = !strcmp(dstate, "confirmed") || !strcmp(dstate, "idle") ||
			       !strcmp(dstate, "failed") || !strcmp(dstate, "rolled-back");
		if (dgen >= gen && settled && !strcmp(drel, rdb_text(s, 4))) {
			out = "reverted";
		} else if (dgen >= gen &&
			   (!strcmp(dstate, "failed") || !strcmp(dstate, "rolled-back"))) {
			out = "revert-failed";
		} else if (sqlite3_column_type(s, 8) != SQLITE_NULL) {
			snprintf(why, sizeof(why), "revert-refused: %s", rdb_text(s, 8));
			out = why;
		} else if (c->r.device_timeout_s && sqlite3_column_type(s, 3) != SQLITE_NULL &&
			   c->now - sqlite3_column_double(s, 3) > (double)c->r.device_timeout_s) {
			out = "revert-timed-out";
		}
		if (out)
			rc = change_add(&res, rdb_text(s, 0), sqlite3_column_int64(s, 1), "", out);
		else
			open++;
	}
	sqlite3_finalize(s);
	for (size_t i = 0; !rc && i < res.n; i++) {
		rc = rdb_exec(c->db,
			      "UPDATE rollout_members SET revert_outcome=?3 WHERE rollout=?1 AND"
			      " device_id=?2",
			      "ttt", c->r.name, res.v[i].device_id, res.v[i].reason);
		if (!rc)
			rc = rdb_event(c->db, c->r.name, res.v[i].wave, res.v[i].device_id,
				       strncmp(res.v[i].reason, "reverted", 8) ? "revert-failed"
									       : "reverted",
				       NULL, "%s", res.v[i].reason);
	}
	free(res.v);
	if (rc || open)
		return rc;
	/* A withdrawn device may still boot the release (late_takes): wait for its answer. */
	bool settled;
	if ((rc = abort_settled(c, &settled)) || !settled)
		return rc;
	int64_t n_ok, n_all;
	if ((rc = rdb_int(c->db, &n_ok,
			  "SELECT count(*) FROM rollout_members WHERE rollout=?1 AND"
			  " revert_outcome='reverted'",
			  "t", c->r.name)) ||
	    (rc = rdb_int(c->db, &n_all,
			  "SELECT count(*) FROM rollout_members WHERE rollout=?1 AND"
			  " revert_outcome IS NOT NULL",
			  "t", c->r.name)))
		return rc;
	rc = rdb_exec(c->db, "UPDATE rollouts SET revert=2 WHERE name=?1", "t", c->r.name);
	if (!rc)
		rc = rdb_event(c->db, c->r.name, -1, NULL, "revert-done", "controller",
			       "%lld of %lld devices back on their previous release",
			       (long long)n_ok, (long long)n_all);
	c->r.revert = 2;
	*finished = true;
	return rc;
}

/* What a member's device was doing with our command when the abort withdrew it. */
static const char *withdrawn_what(int64_t gen, int64_t dgen, const char *dstate)
{
	if (dgen < gen)
		return "not taken yet (offline, or had not started)";
	if (!strcmp(dstate, "downloading") || !strcmp(dstate, "verifying"))
		return "download canceled";
	if (!strcmp(dstate, "staged"))
		return "staged, not activated";
	return "accepted, not started";
}

/*
 * After an abort, once: takes back the commands that members have not started, so that
 * a device which connects later, or has not begun, never installs the aborted release.
 * A member qualifies while its command is still the newest issued to its device and the
 * device has not booted the release (it never accepted the command, or is downloading,
 * verifying or staged). Its command is superseded by a newer signed desired state:
 * install the release it ran when it was deployed (the agent settles at once when it
 * runs that release, and cancels a download or leaves a staged slot unactivated); a
 * device whose release is unknown (it never reported) gets its retained command
 * cleared instead (an empty retained message). Each is a "withdrawn" event; the
 * member's outcome becomes "withdrawn" (a timed-out one keeps its verdict).
 */
static int withdraw_step(struct ctl *c)
{
	int64_t done;
	int rc = rdb_int(c->db, &done,
			 "SELECT count(*) FROM rollout_events WHERE rollout=?1 AND"
			 " kind='withdraw-done'",
			 "t", c->r.name);
	if (rc || done)
		return rc;
	/* What arrived up to now is judged first: a member that finished is not withdrawn. */
	c->judge_all = true;
	if ((rc = evaluate_members(c)))
		return rc;
	struct changes todo = {0};
	sqlite3_stmt *s = rdb_query(
	    c->db,
	    "SELECT m.device_id, m.wave, m.generation, coalesce(m.activate_generation, 0),"
	    " coalesce(m.prev_release, ''), coalesce(m.prev_sequence, 0), coalesce(d.state, ''),"
	    " coalesce(d.generation, 0),"
	    " (SELECT max(x.generation) FROM desired x WHERE x.device_id=m.device_id),"
	    " m.deployed_at IS NULL AND EXISTS (SELECT 1 FROM rollout_outbox o WHERE"
	    "  o.device_id=m.device_id AND o.generation=m.generation)"
	    " FROM rollout_members m LEFT JOIN devices d ON d.id=m.device_id"
	    " WHERE m.rollout=?1 AND m.generation > 0 AND m.outcome IN ('pending','timed-out')"
	    " AND NOT EXISTS (SELECT 1 FROM rollout_withdrawals x WHERE x.rollout=?1 AND"
	    "  x.device_id=m.device_id) ORDER BY m.wave, m.rank",
	    "t", c->r.name);
	if (!s)
		return TERN_E_DB;
	while (!rc && sqlite3_step(s) == SQLITE_ROW) {
		int64_t gen = sqlite3_column_int64(s, 2), act = sqlite3_column_int64(s, 3);
		int64_t dgen = sqlite3_column_int64(s, 7), latest = sqlite3_column_int64(s, 8);
		const char *dstate = rdb_text(s, 6);
		/* Still waiting for its turn (--rate): it never reaches the broker. */
		bool queued = sqlite3_column_int(s, 9) != 0;
		if (!queued && latest > (act > gen ? act : gen))
			continue; /* a later command (another rollout, a deploy) replaced ours */
		if (!queued && dgen >= gen && !strcmp(dstate, "trial"))
			continue; /* booting the release: taken */
		char prev[200];
		snprintf(prev, sizeof(prev), "%s\n%lld\n%s", rdb_text(s, 4),
			 (long long)sqlite3_column_int64(s, 5), withdrawn_what(gen, dgen, dstate));
		rc = change_add(&todo, rdb_text(s, 0), sqlite3_column_int64(s, 1),
				queued ? "unsent" : "withdraw", prev);
	}
	sqlite3_finalize(s);
	size_t n_cleared = 0, n_unsent = 0;
	for (size_t i = 0; !rc && i < todo.n; i++) {
		struct change *x = &todo.v[i];
		char *nl = strchr(x->reason, '\n');
		char *nl2 = nl ? strchr(nl + 1, '\n') : NULL;
		if (!nl || !nl2) {
			rc = TERN_E_INVAL;
			break;
		}
		*nl = *nl2 = '\0';
		const char *rel = x->reason, *what = nl2 + 1;
		uint64_t seq = 0;
		host_parse_u64(nl + 1, INT64_MAX, &seq);
		int64_t gen = 0; /* the withdrawal's: 0 cleared, -1 never sent */
		if (!strcmp(x->outcome, "unsent")) {
			/* Its outbox row goes with the others below. */
			what = "not sent yet (its turn had not come)";
			gen = -1;
			n_unsent++;
		} else if (rel[0] && strcmp(rel, c->r.release_id)) {
			rc = issue(c, x->device_id, rel, seq, TERN_ACTION_INSTALL,
				   TERN_ACTIVATE_NOW, &gen);
		} else {
			/* Nothing known to go back to: clear the retained command. */
			rc = rdb_exec(c->db,
				      "INSERT OR IGNORE INTO rollout_outbox(rollout, device_id,"
				      " generation) VALUES(?1, ?2, 0)",
				      "tt", c->r.name, x->device_id);
			n_cleared++;
		}
		if (!rc)
			rc =
			    rdb_exec(c->db,
				     "INSERT INTO rollout_withdrawals(rollout, device_id, wave,"
				     " generation, was, at) VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
				     "ttiitd", c->r.name, x->device_id, x->wave, gen, what, c->now);
		if (!rc)
			rc = rdb_exec(c->db,
				      "UPDATE rollout_members SET outcome='withdrawn', reason=?3,"
				      " outcome_at=?4 WHERE rollout=?1 AND device_id=?2 AND"
				      " outcome='pending'",
				      "tttd", c->r.name, x->device_id, what, c->now);
		const char *how = gen > 0   ? "superseded by a command to stay on its release"
				  : gen < 0 ? "its command was never published"
					    : "retained command cleared";
		if (!rc)
			rc = rdb_event(c->db, c->r.name, x->wave, x->device_id, "withdrawn", NULL,
				       "%s; %s", what, how);
	}
	/* Nothing of the rollout's waves is sent after an abort: the commands withdrawn as
	 * unsent above, and those of members judged by what their devices did under another
	 * command (a deploy meanwhile). */
	if (!rc)
		rc =
		    rdb_exec(c->db,
			     "DELETE FROM rollout_outbox WHERE rollout=?1 AND EXISTS (SELECT 1 FROM"
			     " rollout_members m WHERE m.rollout=?1 AND"
			     " m.device_id=rollout_outbox.device_id AND"
			     " m.generation=rollout_outbox.generation AND m.deployed_at IS NULL)",
			     "t", c->r.name);
	if (!rc)
		rc = todo.n ? rdb_event(c->db, c->r.name, -1, NULL, "withdraw-done", "controller",
					"%zu commands not started withdrawn (%zu cleared: their"
					" devices never reported; %zu never sent: their turn had"
					" not come)",
					todo.n, n_cleared, n_unsent)
			    : rdb_event(c->db, c->r.name, -1, NULL, "withdraw-done", "controller",
					"nothing to withdraw: every member deployed had started");
	free(todo.v);
	return rc;
}

/*
 * After an abort: a withdrawn member whose device booted the release after all is not
 * withdrawn. It was staged (or verifying its last chunk) when the abort looked, and
 * rebooted into the release before the withdrawal reached it, which it then refused as
 * an older release. The proof is a transition into trial, confirmed or rolled-back of
 * the rollout's release with the member's generation, or its device running the release
 * under that generation or the withdrawal's. Such a withdrawal is marked taken
 * (taken_at), the member is judged again (it counts as succeeded or failed, and an
 * abort with --revert sends it back, reopening a finished revert), and a
 * "withdrawal-late" event says so.
 */
static int late_takes(struct ctl *c)
{
	struct changes late = {0};
	sqlite3_stmt *s = rdb_query(
	    c->db,
	    "SELECT x.device_id, x.wave, x.was FROM rollout_withdrawals x"
	    " JOIN rollout_members m ON m.rollout=x.rollout AND m.device_id=x.device_id"
	    " LEFT JOIN devices d ON d.id=x.device_id"
	    " WHERE x.rollout=?1 AND x.taken_at IS NULL AND m.generation > 0 AND"
	    " (EXISTS (SELECT 1 FROM events e WHERE e.device_id=x.device_id AND"
	    "   e.kind='transition' AND e.to_state IN ('trial','confirmed','rolled-back') AND"
	    "   e.release_id=?2 AND e.generation IN (m.generation,"
	    "   coalesce(m.activate_generation, -1)))"
	    "  OR (d.release_id=?2 AND d.state IN ('trial','confirmed') AND d.generation IN"
	    "   (m.generation, coalesce(m.activate_generation, -1), x.generation)))"
	    " ORDER BY x.wave, x.device_id",
	    "tt", c->r.name, c->r.release_id);
	if (!s)
		return TERN_E_DB;
	int rc = 0;
	while (!rc && sqlite3_step(s) == SQLITE_ROW)
		rc = change_add(&late, rdb_text(s, 0), sqlite3_column_int64(s, 1), "late",
				rdb_text(s, 2));
	sqlite3_finalize(s);
	for (size_t i = 0; !rc && i < late.n; i++) {
		const struct change *x = &late.v[i];
		rc = rdb_exec(c->db,
			      "UPDATE rollout_withdrawals SET taken_at=?3 WHERE rollout=?1 AND"
			      " device_id=?2",
			      "ttd", c->r.name, x->device_id, c->now);
		if (!rc)
			rc = rdb_exec(c->db,
				      "UPDATE rollout_members SET outcome='pending', reason=NULL,"
				      " outcome_at=?3 WHERE rollout=?1 AND device_id=?2 AND"
				      " outcome='withdrawn'",
				      "ttd", c->r.name, x->device_id, c->now);
		if (!rc)
			rc = rdb_event(c->db, c->r.name, x->wave, x->device_id, "withdrawal-late",
				       NULL,
				       "withdrawn as '%s', but it had booted the release before "
				       "the withdrawal reached it: judged as a member",
				       x->reason);
	}
	if (!rc && late.n) {
		if (c->r.revert == 2) { /* the revert had finished: this one goes back too */
			rc = rdb_exec(c->db, "UPDATE rollouts SET revert=1 WHERE name=?1", "t",
				      c->r.name);
			c->r.revert = 1;
		}
		c->judge_all = true;
		if (!rc)
			rc = evaluate_members(c);
	}
	free(late.v);
	return rc;
}

/*
 * After an abort: sets @settled once no online device is still acting on the rollout's
 * commands - every member that accepted its command has an outcome, and every
 * withdrawal sent to an online device is answered (the device accepted a generation at
 * least as new) - or once ABORT_SETTLE_S (the device timeout when shorter) have passed
 * since the withdrawal. Until then the controller goes on recording and judging, so
 * that the record says what each device did with the abort; what is still open then is
 * an "abort-unsettled" event, and `tern rollout run NAME` judges it later.
 */
static int abort_settled(struct ctl *c, bool *settled)
{
	*settled = false;
	sqlite3_stmt *s = rdb_query(
	    c->db,
	    "SELECT (SELECT at FROM rollout_events WHERE rollout=?1 AND kind='withdraw-done'"
	    "  ORDER BY seq DESC LIMIT 1),"
	    " (SELECT count(*) FROM rollout_members m JOIN devices d ON d.id=m.device_id"
	    "  WHERE m.rollout=?1 AND m.outcome='pending' AND m.generation > 0 AND"
	    "  d.online=1 AND d.generation >= m.generation) +"
	    " (SELECT count(*) FROM rollout_withdrawals x JOIN devices d ON d.id=x.device_id"
	    "  WHERE x.rollout=?1 AND x.generation > 0 AND x.taken_at IS NULL AND"
	    "  d.online=1 AND d.generation < x.generation),"
	    " (SELECT count(*) FROM rollout_events WHERE rollout=?1 AND kind='abort-unsettled')",
	    "t", c->r.name);
	if (!s)
		return TERN_E_DB;
	int rc = 0;
	if (sqlite3_step(s) != SQLITE_ROW) {
		rc = TERN_E_DB;
	} else if (sqlite3_column_type(s, 0) != SQLITE_NULL) { /* withdrawn: the step ran */
		double limit = ABORT_SETTLE_S;
		if (c->r.device_timeout_s && (double)c->r.device_timeout_s < limit)
			limit = (double)c->r.device_timeout_s;
		int64_t open = sqlite3_column_int64(s, 1);
		bool said = sqlite3_column_int64(s, 2) > 0;
		if (!open) {
			*settled = true;
		} else if (c->now - sqlite3_column_double(s, 0) >= limit) {
			*settled = true;
			if (!said)
				rc = rdb_event(
				    c->db, c->r.name, -1, NULL, "abort-unsettled", "controller",
				    "%lld devices still acting on the rollout's commands "
				    "%.0f s after the abort; 'tern rollout run %s' records "
				    "and judges what they report later",
				    (long long)open, limit, c->r.name);
		}
	}
	sqlite3_finalize(s);
	return rc;
}

/*
 * One controller step in one transaction. Sets @finished when the rollout needs
 * nothing more from a controller (done, or aborted with any revert finished and the
 * devices acting on the abort settled: abort_settled()).
 */
static int step(struct ctl *c, bool *finished)
{
	*finished = false;
	bool settled = false;
	int rc = db_begin(c->db);
	if (rc)
		return rc;
	c->now = rdb_now();
	if (c->leased && (rc = rollout_lease_refresh(c->db, c->r.name)))
		goto out_rollback;
	if ((rc = rollout_load(c->db, c->r.name, &c->r)))
		goto out_rollback;
	/* Members are judged after an abort too: devices go on reporting what they did. */
	if (strcmp(c->r.state, "done") && (rc = evaluate_members(c)))
		goto out_rollback;
	if (!strcmp(c->r.state, "created")) {
		if ((rc = set_rollout(c, "running", NULL)) ||
		    (rc = rdb_event(c->db, c->r.name, -1, NULL, "started", rollout_actor(NULL),
				    "controller started")))
			goto out_rollback;
	}
	if (!strcmp(c->r.state, "running")) {
		rc = wave_step(c);
	} else if (!strcmp(c->r.state, "aborted")) {
		rc = withdraw_step(c);
		if (!rc)
			rc = late_takes(c);
		if (!rc) /* a revert finishes only once the abort has settled */
			rc = c->r.revert == 1 ? revert_step(c, &settled)
					      : abort_settled(c, &settled);
	}
	if (rc)
		goto out_rollback;
	*finished = !strcmp(c->r.state, "done") || (!strcmp(c->r.state, "aborted") && settled);
	return db_commit(c->db);
out_rollback:
	db_rollback(c->db);
	c->judge_all = true; /* what this step judged was not kept */
	return rc;
}

/*
 * Whether a command in the outbox waits for its turn (--rate): a wave's install (@wave:
 * the generation a member was deployed with) or a revert, which start downloads. A
 * withdrawal (an install to stay on the release a device runs, or a cleared command), a
 * joint activation and the like go at once: they download nothing, and an abort or a
 * joint boot must not wait.
 */
static bool paced(const struct ctl *c, const char *action, bool wave)
{
	return c->r.rate && (!strcmp(action, "revert") || (wave && !strcmp(action, "install")));
}

/* A wave's install is not sent while the rollout is paused or waits for approval (it
 * goes when the rollout is resumed), nor once it is aborted (the abort withdraws it). */
static bool held(const struct ctl *c, const char *action, bool wave)
{
	return wave && !strcmp(action, "install") &&
	       (!strcmp(c->r.state, "paused") || !strcmp(c->r.state, "waiting-approval") ||
		!strcmp(c->r.state, "aborted"));
}

/*
 * Publishes what the outbox holds, in order: desired states committed but not yet
 * acknowledged by the broker. Rows go only after the broker acknowledged them, so a
 * crash publishes them again (the same bytes and generation: a device refuses the copy
 * as a replay). Paced commands go at the rollout's rate, on the schedule of `tern
 * deploy` (command k of a run of them k / rate seconds after the first); the rest wait
 * in the outbox for a later pass. The broker's acknowledgement starts a member's clock
 * (deployed_at, revert_at): its device timeout runs from when it could act.
 */
static int outbox_flush(struct ctl *c)
{
	static struct deploy_msg msgs[OUTBOX_BATCH];
	if (c->pace_idle || c->pace.rate != c->r.rate) {
		deploy_pace_start(&c->pace, c->r.rate);
		c->pace_idle = false;
	}
	for (;;) {
		size_t n = 0;
		/* What is due before the next pass, a step from now. */
		uint64_t due = deploy_pace_due(&c->pace, STEP_MS / 1000.0), n_paced = 0;
		bool waits = false; /* a command waits for its turn: the rows after it too */
		sqlite3_stmt *s = rdb_query(
		    c->db,
		    "SELECT o.device_id, o.generation, coalesce(x.action, ''),"
		    " EXISTS (SELECT 1 FROM rollout_members m WHERE m.rollout=o.rollout AND"
		    "  m.device_id=o.device_id AND m.generation=o.generation)"
		    " FROM rollout_outbox o LEFT JOIN desired x ON x.device_id=o.device_id AND"
		    " x.generation=o.generation WHERE o.rollout=?1 ORDER BY o.rowid LIMIT ?2",
		    "ti", c->r.name, (int64_t)OUTBOX_BATCH);
		if (!s)
			return TERN_E_DB;
		int rc = 0;
		while (!rc && n < OUTBOX_BATCH && sqlite3_step(s) == SQLITE_ROW) {
			const char *action = rdb_text(s, 2);
			bool wave = sqlite3_column_int(s, 3) != 0;
			bool hold = held(c, action, wave), pace = paced(c, action, wave);
			if (hold || (pace && n_paced == due)) {
				waits = true;
				c->pace_idle = hold; /* resumed: from the start */
				break;
			}
			n_paced += pace;
			struct deploy_msg *m = &msgs[n];
			snprintf(m->device_id, sizeof(m->device_id), "%s", rdb_text(s, 0));
			m->generation = (uint64_t)sqlite3_column_int64(s, 1);
			m->len = 0; /* generation 0: clear the retained command (withdrawn) */
			if (m->generation)
				rc = db_desired_get(c->db, m->device_id, m->generation, m->bytes,
						    sizeof(m->bytes), &m->len);
			n++;
		}
		sqlite3_finalize(s);
		if (rc)
			return rc;
		if (n == 0) {
			if (!waits)
				c->pace_idle = true; /* the next paced command goes at once */
			return 0;
		}
		for (size_t i = 0; i < n; i++)
			if ((rc = deploy_publish(c->mq, c->prefix, &msgs[i])))
				return rc;
		if ((rc = mqtt_flush(c->mq)))
			return rc;
		c->pace.sent += n_paced;
		double now = rdb_now();
		if ((rc = db_begin(c->db)))
			return rc;
		for (size_t i = 0; !rc && i < n; i++) {
			const struct deploy_msg *m = &msgs[i];
			rc = rdb_exec(
			    c->db,
			    "DELETE FROM rollout_outbox WHERE device_id=?1 AND generation=?2", "ti",
			    m->device_id, (int64_t)m->generation);
			if (!rc && m->generation)
				rc = rdb_exec(c->db,
					      "UPDATE rollout_members SET deployed_at=?3 WHERE"
					      " rollout=?1 AND device_id=?2 AND generation=?4 AND"
					      " deployed_at IS NULL",
					      "ttdi", c->r.name, m->device_id, now,
					      (int64_t)m->generation);
			if (!rc && m->generation)
				rc = rdb_exec(
				    c->db,
				    "UPDATE rollout_members SET revert_at=?3 WHERE"
				    " rollout=?1 AND device_id=?2 AND revert_generation=?4"
				    " AND revert_at IS NULL",
				    "ttdi", c->r.name, m->device_id, now, (int64_t)m->generation);
		}
		if (rc) {
			db_rollback(c->db);
			return rc;
		}
		if ((rc = db_commit(c->db)))
			return rc;
		/* A member sent now may time out from now + its device timeout. */
		double deadline = now + (double)c->r.device_timeout_s;
		if (c->r.device_timeout_s && (c->next_deadline == 0 || deadline < c->next_deadline))
			c->next_deadline = deadline;
		if (getenv("TERN_TEST_ROLLOUT_EXIT_AFTER_PUBLISH"))
			_exit(3); /* tests: a crash between the broker's ack and the outbox */
		if (waits)
			return 0;
	}
}

/* ---- progress: a live line per wave on a terminal, plain lines otherwise */

struct progress {
	bool tty, color;
	int drawn; /* live lines on screen */
	int64_t last_event;
	char last[ROLLOUT_MAX_WAVES][200];
	char last_head[300];
};

struct draw_ctx {
	struct progress *p;
	const struct rollout *r;
	double now;
	int lines;
};

static const char *col(const struct progress *p, const char *code)
{
	return p->color ? code : "";
}

/* " (N not sent yet)" for a wave whose commands wait for their turn (--rate), else "".
 * Returns @out. */
static const char *queued_note(const struct rollout_wave_row *w, char *out, size_t size)
{
	if (w->queued)
		snprintf(out, size, " (%llu not sent yet)", (unsigned long long)w->queued);
	else
		out[0] = '\0';
	return out;
}

static int draw_wave(void *ctx, const struct rollout_wave_row *w)
{
	struct draw_ctx *d = ctx;
	struct progress *p = d->p;
	char line[200], bake[48] = "", queued[40];
	queued_note(w, queued, sizeof(queued));
	if (!strcmp(w->state, "baking") && w->bake_until > d->now) {
		char left[32];
		snprintf(bake, sizeof(bake), ", bake %s left",
			 rollout_format_duration((uint64_t)(w->bake_until - d->now + 0.999), left,
						 sizeof(left)));
	}
	snprintf(line, sizeof(line),
		 "wave %lld/%lld %-9s %4llu devices: %s%llu done%s, %s%llu failed%s, %s%llu "
		 "pending%s%s%s",
		 (long long)w->wave + 1, (long long)d->r->n_waves, w->state,
		 (unsigned long long)w->c.size, col(p, "\033[32m"),
		 (unsigned long long)w->c.succeeded, col(p, "\033[0m"),
		 w->c.failed ? col(p, "\033[31m") : "", (unsigned long long)w->c.failed,
		 w->c.failed ? col(p, "\033[0m") : "", w->c.pending ? col(p, "\033[33m") : "",
		 (unsigned long long)w->c.pending, w->c.pending ? col(p, "\033[0m") : "", queued,
		 bake);
	if (p->tty) {
		printf("\033[2K%s\n", line);
		d->lines++;
	} else if (w->wave < ROLLOUT_MAX_WAVES && strcmp(p->last[w->wave], line) &&
		   strcmp(w->state, "pending")) {
		/* Plain lines: only when something but the bake countdown changed. */
		char no_bake[200];
		snprintf(no_bake, sizeof(no_bake), "%.*s", (int)(strlen(line) - strlen(bake)),
			 line);
		if (strcmp(p->last[w->wave], no_bake)) {
			printf("%s\n", no_bake);
			snprintf(p->last[w->wave], sizeof(p->last[w->wave]), "%s", no_bake);
		}
	}
	return 0;
}

/* Prints new decisions (not per-device outcomes, but a withdrawal that came too late) and
 * redraws the wave lines. */
static void progress_show(struct progress *p, struct db *db, const struct rollout *r)
{
	if (p->tty && p->drawn)
		printf("\033[%dA", p->drawn);
	sqlite3_stmt *s =
	    rdb_query(db,
		      "SELECT seq, at, kind, coalesce(actor, ''), coalesce(detail, ''),"
		      " coalesce(device_id, '') FROM rollout_events WHERE rollout=?1 AND"
		      " seq>?2 AND (device_id IS NULL OR kind='withdrawal-late') ORDER BY seq",
		      "ti", r->name, p->last_event);
	while (s && sqlite3_step(s) == SQLITE_ROW) {
		p->last_event = sqlite3_column_int64(s, 0);
		time_t t = (time_t)sqlite3_column_double(s, 1);
		struct tm tm;
		char ts[16] = "";
		if (localtime_r(&t, &tm))
			strftime(ts, sizeof(ts), "%H:%M:%S", &tm);
		const char *actor = rdb_text(s, 3), *dev = rdb_text(s, 5);
		printf("%s%s%s %s%s%s%s%s%s: %s\n", p->tty ? "\033[2K" : "", col(p, "\033[1m"), ts,
		       rdb_text(s, 2), *actor ? " by " : "", actor, *dev ? " " : "", dev,
		       col(p, "\033[0m"), rdb_text(s, 4));
	}
	sqlite3_finalize(s);
	struct draw_ctx d = {p, r, rdb_now(), 0};
	if (p->tty) {
		printf("\033[2K%srollout %s: %s%s%s%s\n", col(p, "\033[1m"), r->name, r->state,
		       r->reason[0] ? " - " : "", r->reason, col(p, "\033[0m"));
		d.lines++;
	}
	rollout_waves(db, r->name, draw_wave, &d);
	if (p->tty)
		p->drawn = d.lines;
	fflush(stdout);
}

/* Records what devices report until @until (rdb_now() seconds): steps stay STEP_MS apart. */
static int record_until(struct recorder *rec, double until)
{
	int rc;
	do {
		double left_ms = (until - rdb_now()) * 1000.0;
		rc = recorder_poll(rec, left_ms > 0 ? (long)left_ms + 1 : 0);
	} while (!rc && !host_stop_signal && rdb_now() < until);
	return rc;
}

/*
 * Runs the controller for @name until the rollout needs no controller any more, or
 * (@no_wait) until it needs an operator. Returns the exit status.
 */
/*
 * Devices fetch the release from the broker: a release never (or not completely)
 * published would leave every member pending until its device timeout. Returns 0 when
 * `tern publish` completed @release_id, else prints why @name cannot deploy and returns
 * TERN_E_NOT_FOUND (never published) or TERN_E_STATE (unfinished).
 */
static int check_published(struct db *db, const char *name, const char *release_id)
{
	uint64_t sequence;
	bool complete = false;
	int rc = db_release_get(db, release_id, &sequence, &complete);
	if (rc == TERN_E_NOT_FOUND || (!rc && !complete)) {
		fprintf(stderr,
			"tern: rollout %s: release %s is not %spublished, so devices cannot fetch "
			"it: run 'tern publish' with its release file first (nothing was "
			"deployed)\n",
			name, release_id, rc ? "" : "completely ");
		return rc ? rc : TERN_E_STATE;
	}
	return rc;
}

static int drive(struct db *db, const struct broker_opts *bo, const char *name,
		 const char *key_override, const char *client_id, bool no_wait)
{
	static struct ctl c;
	struct recorder *rec = NULL;
	struct progress p = {0};
	int rc = 0, status = 1;
	memset(&c, 0, sizeof(c));
	c.db = db;
	c.prefix = broker_opt(bo, BF_PREFIX);
	c.judge_all = true;
	if (rollout_load(db, name, &c.r))
		return 1;
	/* An aborted rollout only withdraws and reverts: it deploys nothing more. */
	if (strcmp(c.r.state, "done") && strcmp(c.r.state, "aborted") &&
	    check_published(db, name, c.r.release_id))
		return 1;
	const char *key = key_override ? key_override : c.r.key_file;
	if ((rc = host_load_signer(key, &c.sg))) {
		host_fail(key, rc);
		return 1;
	}
	if (rollout_lease_take(db, name)) {
		tern_signer_free(&c.sg);
		return 1;
	}
	c.leased = true;
	char cid[128];
	snprintf(cid, sizeof(cid), "tern-rollout-%s", name);
	if (recorder_start(&rec, db, bo, client_id ? client_id : cid, true, false))
		goto out;
	c.mq = recorder_mqtt(rec);
	p.tty = isatty(STDOUT_FILENO) != 0;
	p.color = p.tty && !getenv("NO_COLOR");
	if (rdb_int(db, &p.last_event,
		    "SELECT coalesce(max(seq), 0) FROM rollout_events WHERE rollout=?1", "t", name))
		goto out;
	printf("rollout %s: %s, release %s, wave %lld of %lld\n", name, c.r.state, c.r.release_id,
	       (long long)c.r.current_wave + 1, (long long)c.r.n_waves);
	host_catch_stop_signals();
	bool finished = false;
	int idle_said = 0;
	double next_step = 0;
	while (!host_stop_signal) {
		/* Publish anything a previous run committed but the broker never acknowledged.
		 * The first step comes with the first reports (the retained states); then
		 * reports are recorded until the next step is due: a step every STEP_MS, not
		 * one per batch of reports. */
		if ((rc = outbox_flush(&c)) ||
		    (rc = next_step == 0 ? recorder_poll(rec, STEP_MS)
					 : record_until(rec, next_step)) ||
		    (rc = step(&c, &finished)) || (rc = outbox_flush(&c)))
			break;
		next_step = rdb_now() + STEP_MS / 1000.0;
		progress_show(&p, db, &c.r);
		if (finished)
			break;
		bool needs_operator =
		    !strcmp(c.r.state, "paused") || !strcmp(c.r.state, "waiting-approval");
		if (needs_operator && no_wait) {
			/* Leave once the deployed members have settled, so that what they
			 * report is recorded and judged before nobody watches. */
			int64_t open;
			if (rdb_int(db, &open,
				    "SELECT count(*) FROM rollout_members WHERE rollout=?1 AND"
				    " outcome='pending' AND deployed_at IS NOT NULL",
				    "t", name))
				goto out;
			if (!open) {
				status = EXIT_NEEDS_ACTION;
				goto out;
			}
		}
		if (needs_operator && !idle_said++ && !p.tty)
			printf("rollout %s: %s (%s); waiting: 'tern rollout %s %s'\n", name,
			       c.r.state, c.r.reason,
			       !strcmp(c.r.state, "paused") ? "resume" : "approve", name);
		if (!needs_operator)
			idle_said = 0;
	}
	if (rc) {
		if (rc != TERN_E_DB && rc != TERN_E_BROKER && rc != TERN_E_BUSY)
			host_fail("rollout run", rc);
		goto out;
	}
	if (host_stop_signal) {
		printf("rollout %s: controller stopped; run 'tern rollout run %s' to continue\n",
		       name, name);
		status = 1;
		goto out;
	}
	printf("rollout %s: %s%s%s\n", name, c.r.state, c.r.reason[0] ? " - " : "", c.r.reason);
	status = 0;
out:
	recorder_stop(rec);
	if (rc != TERN_E_BUSY)
		rollout_lease_release(db, name);
	tern_signer_free(&c.sg);
	return status;
}

int cmd_rollout_run(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"key", required_argument, NULL, 'k'},
	    {"no-wait", no_argument, NULL, 'n'},
	    {"client-id", required_argument, NULL, 'c'},
	    {"help", no_argument, NULL, 'h'},
	    BROKER_LONG_OPTIONS,
	    {0, 0, 0, 0},
	};
	struct broker_opts bo = {0};
	const char *key = NULL, *client_id = NULL;
	bool no_wait = false;
	struct db *db = NULL;
	int c, status = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (broker_opts_flag(&bo, c, optarg))
			continue;
		if (c == 'k') {
			key = optarg;
		} else if (c == 'n') {
			no_wait = true;
		} else if (c == 'c') {
			client_id = optarg;
		} else if (c == 'h') {
			fputs(run_help, stdout);
			return 0;
		} else {
			return host_usage("rollout run", NULL);
		}
	}
	if (optind + 1 != argc)
		return host_usage("rollout run", "give the rollout's name");
	if (broker_opts_finish(&bo, true)) {
		status = 2;
		goto out;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (db_open(&db, broker_opt(&bo, BF_DB)))
		goto out;
	status = drive(db, &bo, argv[optind], key, client_id, no_wait);
out:
	db_close(db);
	broker_opts_free(&bo);
	return status;
}

/* ---- status */

struct json_waves {
	int n;
	uint64_t withdrawn;
};

static int json_wave(void *ctx, const struct rollout_wave_row *w)
{
	struct json_waves *j = ctx;
	printf("%s{\"wave\":%lld,\"state\":\"%s\",\"size\":%llu,\"succeeded\":%llu,"
	       "\"failed\":%llu,\"pending\":%llu,\"queued\":%llu,\"withdrawn\":%llu}",
	       j->n++ ? "," : "", (long long)w->wave + 1, w->state, (unsigned long long)w->c.size,
	       (unsigned long long)w->c.succeeded, (unsigned long long)w->c.failed,
	       (unsigned long long)w->c.pending, (unsigned long long)w->queued,
	       (unsigned long long)w->withdrawn);
	j->withdrawn += w->withdrawn;
	return 0;
}

static int text_wave(void *ctx, const struct rollout_wave_row *w)
{
	(void)ctx;
	char withdrawn[48] = "", queued[40];
	if (w->withdrawn)
		snprintf(withdrawn, sizeof(withdrawn), ", %llu withdrawn",
			 (unsigned long long)w->withdrawn);
	queued_note(w, queued, sizeof(queued));
	printf("  wave %lld  %-9s size %llu: %llu succeeded, %llu failed, %llu pending%s%s\n",
	       (long long)w->wave + 1, w->state, (unsigned long long)w->c.size,
	       (unsigned long long)w->c.succeeded, (unsigned long long)w->c.failed,
	       (unsigned long long)w->c.pending, queued, withdrawn);
	return 0;
}

static void json_text(const char *s)
{
	if (s && *s)
		host_json_str(stdout, s, strlen(s));
	else
		fputs("null", stdout);
}

static int show_one(struct db *db, const char *name, bool json)
{
	struct rollout r;
	int rc = rollout_load(db, name, &r);
	if (rc)
		return rc;
	char bake[32], timeout[32], maxf[16], mins[16];
	rollout_format_duration(r.bake_s, bake, sizeof(bake));
	rollout_format_duration(r.device_timeout_s, timeout, sizeof(timeout));
	rollout_format_ratio(r.max_fail_ppm, maxf, sizeof(maxf));
	rollout_format_ratio(r.min_success_ppm, mins, sizeof(mins));
	struct rollout_lease l;
	bool driven;
	if ((rc = rollout_lease_get(db, name, &l, &driven)))
		return rc;
	if (json) {
		printf("{\"name\":");
		json_text(r.name);
		printf(",\"release\":");
		json_text(r.release_id);
		printf(",\"version\":");
		json_text(r.version);
		printf(",\"state\":\"%s\",\"reason\":", r.state);
		json_text(r.reason);
		/* Not set is null, where the text and the report say "none". */
		char mins_json[20] = "null", timeout_json[40] = "null";
		if (r.min_success_ppm)
			snprintf(mins_json, sizeof(mins_json), "\"%s\"", mins);
		if (r.device_timeout_s)
			snprintf(timeout_json, sizeof(timeout_json), "\"%s\"", timeout);
		printf(",\"current_wave\":%lld,\"bake\":\"%s\",\"max_failures\":\"%s\","
		       "\"min_success\":%s,\"device_timeout\":%s,\"approve_each_wave\":%s,"
		       "\"activate\":\"%s\",\"rate\":%u,\"revert\":\"%s\"",
		       (long long)r.current_wave + 1, bake, maxf, mins_json, timeout_json,
		       r.approve_each ? "true" : "false", r.activate_together ? "together" : "each",
		       r.rate,
		       r.revert == 0   ? "none"
		       : r.revert == 1 ? "requested"
				       : "finished");
		if (r.revert) {
			/* Reverts sent, and their outcomes so far. */
			int64_t n_sent, n_ok, n_done;
			if ((rc =
				 rdb_int(db, &n_sent,
					 "SELECT count(*) FROM rollout_members WHERE rollout=?1 AND"
					 " (revert_generation IS NOT NULL OR revert_outcome IS NOT"
					 " NULL)",
					 "t", name)) ||
			    (rc =
				 rdb_int(db, &n_ok,
					 "SELECT count(*) FROM rollout_members WHERE rollout=?1 AND"
					 " revert_outcome='reverted'",
					 "t", name)) ||
			    (rc =
				 rdb_int(db, &n_done,
					 "SELECT count(*) FROM rollout_members WHERE rollout=?1 AND"
					 " revert_outcome IS NOT NULL",
					 "t", name)))
				return rc;
			printf(
			    ",\"reverts\":{\"sent\":%lld,\"reverted\":%lld,\"not_reverted\":%lld,"
			    "\"pending\":%lld}",
			    (long long)n_sent, (long long)n_ok, (long long)(n_done - n_ok),
			    (long long)(n_sent - n_done));
		}
		printf(",\"waves\":[");
		struct json_waves j = {0};
		rc = rollout_waves(db, name, json_wave, &j);
		printf("],\"withdrawn\":%llu,\"controller\":", (unsigned long long)j.withdrawn);
		if (driven) {
			printf("{\"pid\":%lld,\"host\":", (long long)l.pid);
			json_text(l.host);
			printf(",\"since\":%.3f,\"heartbeat\":%.3f}", l.started_at, l.heartbeat_at);
		} else {
			printf("null");
		}
		printf("}");
		return rc;
	}
	char rate[48];
	printf("rollout %s: %s%s%s\n  release %s (%s), %s, waves %s, bake %s, max failures %s, "
	       "min success %s, device timeout %s%s, activate %s, %s\n",
	       r.name, r.state, r.reason[0] ? " - " : "", r.reason, r.release_id, r.version,
	       r.targets, r.waves_spec, bake, maxf, r.min_success_ppm ? mins : "none",
	       r.device_timeout_s ? timeout : "none", r.approve_each ? ", approve each wave" : "",
	       r.activate_together ? "together" : "each",
	       rollout_format_rate(r.rate, rate, sizeof(rate)));
	if (driven) {
		char who[320];
		rollout_lease_describe(&l, who, sizeof(who));
		printf("  driven by %s\n", who);
	}
	return rollout_waves(db, name, text_wave, NULL);
}

/* One line per member: wave, device, outcome, reason. */
static int show_members(struct db *db, const char *name)
{
	struct rollout r;
	int rc = rollout_load(db, name, &r);
	if (rc)
		return rc;
	sqlite3_stmt *s = rdb_query(db,
				    "SELECT wave, device_id, outcome, coalesce(reason, CASE WHEN"
				    " outcome='pending' AND generation > 0 AND deployed_at IS NULL"
				    " THEN '(not sent yet)' ELSE '' END),"
				    " coalesce(revert_outcome, CASE WHEN revert_at IS NOT NULL THEN"
				    " 'sent' WHEN revert_generation IS NOT NULL THEN 'not sent yet'"
				    " ELSE '' END) FROM rollout_members WHERE"
				    " rollout=?1 ORDER BY wave, rank",
				    "t", name);
	if (!s)
		return TERN_E_DB;
	while (sqlite3_step(s) == SQLITE_ROW)
		printf("%lld %s %s%s%s%s%s\n", (long long)sqlite3_column_int64(s, 0) + 1,
		       rdb_text(s, 1), rdb_text(s, 2), *rdb_text(s, 3) ? " " : "", rdb_text(s, 3),
		       *rdb_text(s, 4) ? "; revert: " : "", rdb_text(s, 4));
	sqlite3_finalize(s);
	return 0;
}

int cmd_rollout_status(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"members", no_argument, NULL, 'm'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    BROKER_LONG_OPTIONS,
	    {0, 0, 0, 0},
	};
	struct broker_opts bo = {0};
	bool json = false, members = false;
	struct db *db = NULL;
	int c, status = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (broker_opts_flag(&bo, c, optarg))
			continue;
		if (c == 'j') {
			json = true;
		} else if (c == 'm') {
			members = true;
		} else if (c == 'h') {
			fputs(status_help, stdout);
			return 0;
		} else {
			return host_usage("rollout status", NULL);
		}
	}
	if (optind + 1 < argc)
		return host_usage("rollout status", "give at most one rollout name");
	if (broker_opts_finish(&bo, false)) {
		status = 2;
		goto out;
	}
	if (db_open(&db, broker_opt(&bo, BF_DB)))
		goto out;
	if (members && optind == argc) {
		status = host_usage("rollout status", "--members needs a rollout name");
		goto out;
	}
	if (members) {
		status = show_members(db, argv[optind]) ? 1 : 0;
		goto out;
	}
	if (optind < argc) {
		if (show_one(db, argv[optind], json))
			goto out;
		if (json)
			printf("\n");
		status = 0;
		goto out;
	}
	sqlite3_stmt *s = rdb_query(db, "SELECT name FROM rollouts ORDER BY created_at, name", "");
	if (!s)
		goto out;
	int n = 0, rc = 0;
	if (json)
		printf("[");
	while (!rc && sqlite3_step(s) == SQLITE_ROW) {
		if (json && n)
			printf(",");
		n++;
		rc = show_one(db, rdb_text(s, 0), json);
	}
	sqlite3_finalize(s);
	if (json)
		printf("]\n");
	else if (!n)
		printf("no rollouts (tern rollout create ...)\n");
	status = rc ? 1 : 0;
out:
	db_close(db);
	broker_opts_free(&bo);
	return status;
}

/* ---- pause, resume, approve, abort: decisions recorded with who made them */

enum decision { D_PAUSE, D_RESUME, D_APPROVE, D_ABORT, D_PACE };

/* In one transaction: checks the state allows @d (@revert: abort's; @rate: pace's),
 * records it. */
static int decide(struct db *db, const char *name, enum decision d, const char *actor, bool revert,
		  uint32_t rate)
{
	static struct ctl c;
	memset(&c, 0, sizeof(c));
	c.db = db;
	int rc = db_begin(db);
	if (rc)
		return rc;
	c.now = rdb_now();
	if ((rc = rollout_load(db, name, &c.r)))
		goto out_rollback;
	const char *st = c.r.state;
	bool final = !strcmp(st, "done") || !strcmp(st, "aborted");
	char why[256];
	switch (d) {
	case D_PAUSE:
		if (final || !strcmp(st, "paused"))
			goto refuse;
		snprintf(why, sizeof(why), "paused by %s", actor);
		if (!(rc = set_rollout(&c, "paused", why)))
			rc = rdb_event(db, name, c.r.current_wave, NULL, "paused", actor,
				       "operator's decision");
		break;
	case D_RESUME: {
		if (strcmp(st, "paused"))
			goto refuse;
		struct wave_now wn;
		if ((rc = wave_load(&c, c.r.current_wave, &wn)))
			break;
		bool halted = !strcmp(wn.state, "halted");
		/* A pause while waiting for approval must not let the next wave start. */
		int64_t approved = 1;
		if (!halted && c.r.approve_each && c.r.current_wave > 0 &&
		    !strcmp(wn.state, "pending") &&
		    (rc = rdb_int(db, &approved,
				  "SELECT count(*) FROM rollout_events WHERE rollout=?1 AND"
				  " wave=?2 AND kind='approved'",
				  "ti", name, c.r.current_wave)))
			break;
		if (!approved) {
			snprintf(why, sizeof(why), "wave %lld waits for approval",
				 (long long)c.r.current_wave + 1);
			if (!(rc = set_rollout(&c, "waiting-approval", why)))
				rc = rdb_event(db, name, c.r.current_wave, NULL, "resumed", actor,
					       "%s", why);
			break;
		}
		if ((rc = set_rollout(&c, "running", NULL)) ||
		    (rc = rdb_event(db, name, c.r.current_wave, NULL, "resumed", actor, "%s",
				    halted ? "gate overridden by the operator: the wave passes"
					   : "operator's decision")))
			break;
		if (halted && !(rc = set_wave(&c, c.r.current_wave, "passed", NULL)))
			rc = promote(&c, c.r.current_wave, actor);
		break;
	}
	case D_APPROVE:
		if (strcmp(st, "waiting-approval"))
			goto refuse;
		if (!(rc = set_rollout(&c, "running", NULL)))
			rc = rdb_event(db, name, c.r.current_wave, NULL, "approved", actor,
				       "wave %lld approved", (long long)c.r.current_wave + 1);
		break;
	case D_ABORT:
		if (final && !(revert && !strcmp(st, "aborted") && c.r.revert == 0))
			goto refuse;
		snprintf(why, sizeof(why), "aborted by %s%s", actor,
			 revert ? "; devices that took the release are sent back" : "");
		if (!(rc = set_rollout(&c, "aborted", why)))
			rc = rdb_event(db, name, c.r.current_wave, NULL, "aborted", actor, "%s",
				       revert ? "with revert" : "no new deployments");
		/* The wave in flight stops here too: it neither passes nor fails its gate. */
		if (!rc)
			rc = rdb_exec(
			    db,
			    "UPDATE rollout_waves SET state='aborted', gated_at=?2"
			    " WHERE rollout=?1 AND state IN ('deploying','running','baking')",
			    "td", name, c.now);
		if (!rc && revert)
			rc = rdb_exec(db, "UPDATE rollouts SET revert=1 WHERE name=?1", "t", name);
		break;
	case D_PACE: {
		/* A done rollout sends nothing more; an aborted one may still send reverts. */
		if (!strcmp(st, "done"))
			goto refuse;
		char from[48], to[48];
		rollout_format_rate(c.r.rate, from, sizeof(from));
		rollout_format_rate(rate, to, sizeof(to));
		if (!(rc = rdb_exec(db, "UPDATE rollouts SET rate=?2, updated_at=?3 WHERE name=?1",
				    "tid", name, (int64_t)rate, c.now)))
			rc = rdb_event(db, name, c.r.current_wave, NULL, "pace-changed", actor,
				       "from %s to %s", from, to);
		break;
	}
	}
	if (rc)
		goto out_rollback;
	return db_commit(db);
refuse:
	db_rollback(db);
	fprintf(stderr, "tern: rollout %s is %s%s%s%s: nothing to %s\n", name, st,
		c.r.reason[0] ? " (" : "", c.r.reason, c.r.reason[0] ? ")" : "",
		d == D_PAUSE	 ? "pause"
		: d == D_RESUME	 ? "resume"
		: d == D_APPROVE ? "approve"
		: d == D_PACE	 ? "pace"
				 : "abort");
	return TERN_E_STATE;
out_rollback:
	db_rollback(db);
	return rc;
}

/*
 * After an abort is recorded: the controller withdraws the commands not yet taken (and
 * with --revert sends the reverts). A live controller of the rollout does it: this
 * command waits until it has recorded the withdrawal (it steps every STEP_MS). When
 * there is none, or it stops or goes stale meanwhile, this command drives the rollout
 * itself if it has a broker. Returns the exit status.
 */
static int abort_follow_up(struct db *db, const struct broker_opts *bo, const char *name,
			   const char *key, bool revert)
{
	struct rollout_lease l;
	bool held, said = false;
	char who[320];
	for (;;) {
		int64_t done;
		if (rollout_lease_get(db, name, &l, &held) ||
		    rdb_int(db, &done,
			    "SELECT count(*) FROM rollout_events WHERE rollout=?1 AND"
			    " kind='withdraw-done'",
			    "t", name))
			return 1;
		if (!held)
			break;
		rollout_lease_describe(&l, who, sizeof(who));
		if (done) {
			printf("rollout %s: its controller (%s) withdrew the commands devices had "
			       "not taken%s\n",
			       name, who, revert ? "; it drives the revert" : "");
			return 0;
		}
		if (!said)
			printf(
			    "rollout %s: its controller (%s) withdraws the commands devices have "
			    "not taken; waiting for it\n",
			    name, who);
		said = true;
		struct timespec ts = {0, 100 * 1000000L};
		nanosleep(&ts, NULL);
	}
	if (!broker_opt(bo, BF_BROKER)) {
		printf("rollout %s: no broker given; 'tern rollout run %s --broker URL' withdraws "
		       "the commands devices have not taken\n",
		       name, name);
		return 0;
	}
	return drive(db, bo, name, key, NULL, false);
}

static int decision_cmd(int argc, char **argv, enum decision d, const char *cmd)
{
	static const struct option opts[] = {
	    {"by", required_argument, NULL, 'b'},
	    {"revert", no_argument, NULL, 'r'},
	    {"key", required_argument, NULL, 'k'},
	    {"rate", required_argument, NULL, 'R'},
	    {"help", no_argument, NULL, 'h'},
	    BROKER_LONG_OPTIONS,
	    {0, 0, 0, 0},
	};
	struct broker_opts bo = {0};
	const char *by = NULL, *key = NULL;
	bool revert = false, have_rate = false;
	uint32_t rate = 0;
	struct db *db = NULL;
	int c, status = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (broker_opts_flag(&bo, c, optarg))
			continue;
		if (c == 'b') {
			by = optarg;
		} else if (c == 'r' && d == D_ABORT) {
			revert = true;
		} else if (c == 'k' && d == D_ABORT) {
			key = optarg;
		} else if (c == 'R' && d == D_PACE) {
			if (deploy_parse_rate(optarg, &rate))
				return host_usage(cmd, DEPLOY_RATE_HELP);
			have_rate = true;
		} else if (c == 'h') {
			fputs(decide_help, stdout);
			return 0;
		} else {
			return host_usage(cmd, NULL);
		}
	}
	if (optind + 1 != argc)
		return host_usage(cmd, "give the rollout's name");
	if (d == D_PACE && !have_rate)
		return host_usage(cmd,
				  "--rate N is required: desired states a second (0: at once)");
	if (broker_opts_finish(&bo, revert)) {
		status = 2;
		goto out;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (db_open(&db, broker_opt(&bo, BF_DB)))
		goto out;
	const char *name = argv[optind];
	if (decide(db, name, d, rollout_actor(by), revert, rate))
		goto out;
	char paced[80] = "pace set to ";
	if (d == D_PACE)
		rollout_format_rate(rate, paced + strlen(paced), sizeof(paced) - strlen(paced));
	printf("rollout %s: %s by %s\n", name,
	       d == D_PAUSE	? "paused"
	       : d == D_RESUME	? "resumed"
	       : d == D_APPROVE ? "next wave approved"
	       : d == D_PACE	? paced
				: "aborted",
	       rollout_actor(by));
	status = 0;
	if (d == D_ABORT)
		status = abort_follow_up(db, &bo, name, key, revert);
out:
	db_close(db);
	broker_opts_free(&bo);
	return status;
}

int cmd_rollout_pause(int argc, char **argv)
{
	return decision_cmd(argc, argv, D_PAUSE, "rollout pause");
}

int cmd_rollout_resume(int argc, char **argv)
{
	return decision_cmd(argc, argv, D_RESUME, "rollout resume");
}

int cmd_rollout_approve(int argc, char **argv)
{
	return decision_cmd(argc, argv, D_APPROVE, "rollout approve");
}

int cmd_rollout_abort(int argc, char **argv)
{
	return decision_cmd(argc, argv, D_ABORT, "rollout abort");
}

int cmd_rollout_pace(int argc, char **argv)
{
	return decision_cmd(argc, argv, D_PACE, "rollout pace");
}
