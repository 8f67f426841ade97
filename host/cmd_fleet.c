/* `tern devices` (the inventory from the database) and `tern watch` (recording it). */
#include "broker.h"
#include "db.h"
#include "host.h"
#include "host_util.h"
#include "mqtt.h"
#include "recorder.h"

#include "tern/tern_err.h"
#include "tern/tern_msg.h"
#include "tern/tern_topic.h"

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char devices_help[] =
    "usage: tern devices [--json] [--db FILE] [--refresh --broker URL]\n"
    "\n"
    "The inventory as last reported to 'tern watch': id, board, version, slot, state,\n"
    "progress, online, last seen, last error. --json prints an array of objects.\n"
    "--refresh first records what the broker retains of every device (its state, with\n"
    "its last event, and whether it is online), for when no 'tern watch' runs.\n"
    "\n" BROKER_HELP;

static const char watch_help[] =
    "usage: tern watch [--duration SECONDS] [--quiet] [--client-id ID] --broker URL\n"
    "\n"
    "Subscribes to every device's state, events and online topics, records all of it in\n"
    "the host database (the inventory and the audit trail) and prints a line per\n"
    "message. Runs until interrupted (Ctrl-C, SIGTERM) or for --duration seconds.\n"
    "The broker keeps the session of client id ID (default tern-watch): events sent\n"
    "while no watch runs are delivered to the next one, and a dropped connection is\n"
    "made again by itself. Give each concurrent watch its own --client-id.\n"
    "\n" BROKER_HELP;

static void json_str_or_null(const char *s)
{
	if (s)
		host_json_str(stdout, s, strlen(s));
	else
		fputs("null", stdout);
}

static const char *or_dash(const char *s)
{
	return s && *s ? s : "-";
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Reports quiet this long: the broker has sent what it retains. */
#define REFRESH_QUIET_S 0.3
#define REFRESH_MAX_S	10.0

/*
 * `tern devices --refresh`: records what the broker retains of every device (state with
 * its last event, online) into @db, as a watch would, under a client id of its own and
 * no kept session (a running watch keeps its own). Returns 0 or the exit status 1.
 */
static int refresh(struct db *db, const struct broker_opts *bo)
{
	struct recorder *rec = NULL;
	char client_id[48];
	snprintf(client_id, sizeof(client_id), "tern-devices-%ld", (long)getpid());
	int rc = recorder_start(&rec, db, bo, client_id, false, false);
	if (rc) {
		fprintf(stderr, "tern devices: --refresh: broker %s: %s\n",
			broker_opt(bo, BF_BROKER), tern_strerror(rc));
		return 1;
	}
	double start = now_s(), last = start;
	uint64_t seen = 0;
	while (!rc && now_s() - last < REFRESH_QUIET_S && now_s() - start < REFRESH_MAX_S) {
		rc = recorder_poll(rec, 100);
		if (recorder_count(rec) != seen) {
			seen = recorder_count(rec);
			last = now_s();
		}
	}
	int rc_stop = recorder_stop(rec);
	if (rc || rc_stop) {
		host_fail("devices: --refresh", rc ? rc : rc_stop);
		return 1;
	}
	fprintf(stderr, "tern devices: %llu report(s) retained by %s recorded\n",
		(unsigned long long)seen, broker_opt(bo, BF_BROKER));
	return 0;
}

int cmd_devices(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"json", no_argument, NULL, 'j'},
	    {"refresh", no_argument, NULL, 'r'},
	    {"help", no_argument, NULL, 'h'},
	    BROKER_LONG_OPTIONS,
	    {0, 0, 0, 0},
	};
	struct broker_opts bo = {0};
	bool json = false, fresh = false;
	int c, status = 1;
	struct db *db = NULL;
	struct db_iter *it = NULL;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (broker_opts_flag(&bo, c, optarg))
			continue;
		if (c == 'j') {
			json = true;
		} else if (c == 'r') {
			fresh = true;
		} else if (c == 'h') {
			fputs(devices_help, stdout);
			return 0;
		} else {
			return host_usage("devices", NULL);
		}
	}
	if (optind != argc)
		return host_usage("devices", "unexpected argument");
	if (broker_opts_finish(&bo, fresh)) {
		status = 2;
		goto out;
	}
	if (db_open(&db, broker_opt(&bo, BF_DB)) || (fresh && refresh(db, &bo)) ||
	    db_devices_begin(db, &it))
		goto out;
	struct db_device d;
	int rc, n = 0;
	if (json)
		fputs("[", stdout);
	else
		printf("%-20s %-10s %-10s %-4s %-12s %-11s %-7s %-20s %s\n", "ID", "BOARD",
		       "VERSION", "SLOT", "STATE", "PROGRESS", "ONLINE", "LAST SEEN", "LAST ERROR");
	while ((rc = db_devices_next(it, &d)) == 1) {
		char seen[32] = "-", progress[32] = "-";
		time_t t = (time_t)d.last_seen;
		struct tm tm;
		if (d.last_seen && gmtime_r(&t, &tm))
			strftime(seen, sizeof(seen), "%Y-%m-%dT%H:%M:%SZ", &tm);
		if (d.total)
			snprintf(progress, sizeof(progress), "%lld/%lld", (long long)d.done,
				 (long long)d.total);
		const char *online = d.online < 0 ? NULL : d.online ? "true" : "false";
		if (!json) {
			n++;
			printf("%-20s %-10s %-10s %-4s %-12s %-11s %-7s %-20s %s\n", d.id,
			       or_dash(d.board), or_dash(d.version),
			       d.state ? (d.active_slot ? "B" : "A") : "-", or_dash(d.state),
			       progress, online ? (d.online ? "yes" : "no") : "-", seen,
			       or_dash(d.last_error));
			continue;
		}
		printf("%s\n{\"id\":", n++ ? "," : "");
		json_str_or_null(d.id);
		printf(",\"board\":");
		json_str_or_null(d.board);
		printf(",\"version\":");
		json_str_or_null(d.version);
		printf(",\"release\":");
		json_str_or_null(d.release_id);
		printf(",\"slot\":%s,\"state\":",
		       d.state ? (d.active_slot ? "\"B\"" : "\"A\"") : "null");
		json_str_or_null(d.state);
		printf(",\"target\":");
		json_str_or_null(d.target);
		printf(",\"progress\":{\"done\":%lld,\"total\":%lld},\"online\":%s,\"last_seen\":",
		       (long long)d.done, (long long)d.total, online ? online : "null");
		json_str_or_null(d.last_seen ? seen : NULL);
		printf(",\"generation\":%lld,\"last_error\":", (long long)d.generation);
		json_str_or_null(d.last_error);
		fputs("}", stdout);
	}
	if (json)
		fputs(n ? "\n]\n" : "]\n", stdout);
	if (rc < 0) {
		host_fail("devices", rc);
		goto out;
	}
	if (!json && n == 0) /* an empty table alone looks like a wrong folder or a bug */
		fprintf(stderr,
			"tern devices: no devices in %s yet: 'tern watch' records them as they "
			"report\n",
			broker_opt(&bo, BF_DB));
	status = 0;
out:
	db_devices_end(it);
	db_close(db);
	broker_opts_free(&bo);
	return status;
}

int cmd_watch(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"duration", required_argument, NULL, 'd'},
	    {"quiet", no_argument, NULL, 'q'},
	    {"client-id", required_argument, NULL, 'c'},
	    {"help", no_argument, NULL, 'h'},
	    BROKER_LONG_OPTIONS,
	    {0, 0, 0, 0},
	};
	struct broker_opts bo = {0};
	uint64_t duration = 0;
	const char *client_id = "tern-watch";
	bool quiet = false;
	int c, rc, status = 1;
	struct db *db = NULL;
	struct recorder *rec = NULL;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (broker_opts_flag(&bo, c, optarg))
			continue;
		if (c == 'd') {
			if (host_parse_u64(optarg, 1u << 30, &duration) || duration == 0)
				return host_usage("watch", "--duration takes seconds (1 or more)");
		} else if (c == 'q') {
			quiet = true;
		} else if (c == 'c') {
			client_id = optarg;
		} else if (c == 'h') {
			fputs(watch_help, stdout);
			return 0;
		} else {
			return host_usage("watch", NULL);
		}
	}
	if (optind != argc)
		return host_usage("watch", "unexpected argument");
	if (broker_opts_finish(&bo, true)) {
		status = 2;
		goto out;
	}
	host_catch_stop_signals();
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (db_open(&db, broker_opt(&bo, BF_DB)))
		goto out;
	if (recorder_start(&rec, db, &bo, client_id, true, !quiet))
		goto out;
	fprintf(stderr, "tern: watching %s/dev/+/{state,events,online} on %s\n",
		broker_opt(&bo, BF_PREFIX), broker_opt(&bo, BF_BROKER));
	double end = duration ? now_s() + (double)duration : 0;
	rc = 0;
	while (!host_stop_signal && !rc && !(end > 0 && now_s() >= end))
		rc = recorder_poll(rec, 100);
	uint64_t n = recorder_count(rec);
	int stop_rc = recorder_stop(rec);
	rec = NULL;
	if (!rc)
		rc = stop_rc;
	if (rc && rc != TERN_E_BROKER && rc != TERN_E_DB)
		host_fail("watch", rc);
	fprintf(stderr, "tern: watch: %llu message%s recorded\n", (unsigned long long)n,
		n == 1 ? "" : "s");
	status = rc ? 1 : 0;
out:
	recorder_stop(rec);
	db_close(db);
	broker_opts_free(&bo);
	return status;
}
