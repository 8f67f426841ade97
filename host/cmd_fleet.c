/* `tern devices` (the inventory from the database) and `tern watch` (recording it). */
#include "broker.h"
#include "db.h"
#include "host.h"
#include "host_util.h"
#include "mqtt.h"

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
    "usage: tern devices [--json] [--db FILE]\n"
    "\n"
    "The inventory as last reported to 'tern watch': id, board, version, slot, state,\n"
    "progress, online, last seen, last error. --json prints an array of objects.\n";

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

int cmd_devices(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    BROKER_LONG_OPTIONS,
	    {0, 0, 0, 0},
	};
	struct broker_opts bo = {0};
	bool json = false;
	int c, status = 1;
	struct db *db = NULL;
	struct db_iter *it = NULL;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (broker_opts_flag(&bo, c, optarg))
			continue;
		if (c == 'j') {
			json = true;
		} else if (c == 'h') {
			fputs(devices_help, stdout);
			return 0;
		} else {
			return host_usage("devices", NULL);
		}
	}
	if (optind != argc)
		return host_usage("devices", "unexpected argument");
	if (broker_opts_finish(&bo, false)) {
		status = 2;
		goto out;
	}
	if (db_open(&db, broker_opt(&bo, BF_DB)) || db_devices_begin(db, &it))
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
	status = 0;
out:
	db_devices_end(it);
	db_close(db);
	broker_opts_free(&bo);
	return status;
}

/* ---- watch: paho's thread queues messages; the main thread records them in batches. */

struct queued {
	struct queued *next;
	size_t topic_len, len;
	char *topic;
	uint8_t *payload;
};

struct watch {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct queued *head, **tail;
	bool nomem;
	const char *prefix;
	bool quiet;
	uint64_t n_recorded;
};

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
	stop_signal = sig;
}

static void on_message(void *ctx, const char *topic, size_t topic_len, const void *payload,
		       size_t len, bool retained)
{
	(void)retained;
	struct watch *w = ctx;
	struct queued *q = malloc(sizeof(*q) + topic_len + 1 + len);
	pthread_mutex_lock(&w->lock);
	if (!q) {
		w->nomem = true;
	} else {
		q->next = NULL;
		q->topic = (char *)(q + 1);
		q->payload = (uint8_t *)q->topic + topic_len + 1;
		memcpy(q->topic, topic, topic_len);
		q->topic[topic_len] = '\0';
		q->topic_len = topic_len;
		if (len)
			memcpy(q->payload, payload, len);
		q->len = len;
		*w->tail = q;
		w->tail = &q->next;
	}
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

static void stamp(char *out, size_t size)
{
	time_t t = time(NULL);
	struct tm tm;
	if (!gmtime_r(&t, &tm) || !strftime(out, size, "%H:%M:%S", &tm))
		snprintf(out, size, "-");
}

/* What a handler gets: the message, the device id from its topic, the clock. */
struct incoming {
	struct watch *w;
	struct db *db;
	const char *id; /* from the topic, which the broker's ACL guards */
	const uint8_t *payload;
	size_t len;
	uint64_t now;
	const char *ts; /* for the printed line */
};

/*
 * A handler decodes and records one kind of message and prints its line. Returns 0,
 * TERN_E_DB (stop: the database failed), or another code: the message is refused and
 * recorded as malformed.
 */
typedef int (*record_fn)(const struct incoming *in, bool *db_failed);

static int record_state(const struct incoming *in, bool *db_failed)
{
	struct tern_state_msg s;
	int rc = tern_state_decode(&s, in->payload, in->len);
	if (!rc && strcmp(s.device_id, in->id))
		rc = TERN_E_WRONG_DEVICE;
	if (rc)
		return rc;
	if ((rc = db_record_state(in->db, &s, in->payload, in->len, in->now))) {
		*db_failed = true;
		return rc;
	}
	const struct tern_slot_info *sl = &s.slots[s.active_slot];
	if (!in->w->quiet)
		printf("%s %s state %s, slot %c: %s %s%s%s%s%s\n", in->ts, in->id,
		       tern_dev_state_name(s.state), s.active_slot ? 'B' : 'A',
		       or_dash(sl->release_id), or_dash(sl->version),
		       s.target[0] ? ", target " : "", s.target,
		       s.last_status ? ", last error " : "",
		       s.last_status ? tern_status_name(s.last_status) : "");
	return 0;
}

static int record_event(const struct incoming *in, bool *db_failed)
{
	struct tern_event_msg e;
	int rc = tern_event_decode(&e, in->payload, in->len);
	if (!rc && strcmp(e.device_id, in->id))
		rc = TERN_E_WRONG_DEVICE;
	if (rc)
		return rc;
	if ((rc = db_record_event(in->db, &e, in->payload, in->len, in->now))) {
		*db_failed = true;
		return rc;
	}
	if (!in->w->quiet)
		printf("%s %s event %s %s -> %s%s%s%s%s%s%s\n", in->ts, in->id,
		       tern_event_kind_name(e.kind), tern_dev_state_name(e.from),
		       tern_dev_state_name(e.to), e.release_id[0] ? " release " : "", e.release_id,
		       e.status ? " status " : "", e.status ? tern_status_name(e.status) : "",
		       e.detail[0] ? ": " : "", e.detail);
	return 0;
}

static bool payload_is(const struct incoming *in, const char *text)
{
	return in->len == strlen(text) && !memcmp(in->payload, text, in->len);
}

static int record_online(const struct incoming *in, bool *db_failed)
{
	bool online = payload_is(in, TERN_ONLINE_PAYLOAD);
	if (!online && !payload_is(in, TERN_OFFLINE_PAYLOAD))
		return TERN_E_MALFORMED;
	int rc = db_record_online(in->db, in->id, online, in->now);
	if (rc) {
		*db_failed = true;
		return rc;
	}
	if (!in->w->quiet)
		printf("%s %s %s\n", in->ts, in->id, online ? "online" : "offline");
	return 0;
}

/* Device topic -> handler. Desired states are the host's own: not recorded here. */
static const record_fn handlers[TERN_DEV__COUNT] = {
    [TERN_DEV_STATE] = record_state,
    [TERN_DEV_EVENTS] = record_event,
    [TERN_DEV_ONLINE] = record_online,
};

/* Decodes and records one message; prints its line. Returns 0 or TERN_E_DB. */
static int record_one(struct watch *w, struct db *db, const struct queued *q, uint64_t now)
{
	char id[TERN_DEVICE_ID_MAX + 1], ts[16];
	enum tern_dev_topic kind;
	if (tern_topic_parse_dev(w->prefix, q->topic, q->topic_len, id, sizeof(id), &kind))
		return 0; /* not ours */
	if (q->len == 0 || !handlers[kind])
		return 0; /* a cleared retained message, or not a device report */
	stamp(ts, sizeof(ts));
	struct incoming in = {w, db, id, q->payload, q->len, now, ts};
	bool db_failed = false;
	int rc = handlers[kind](&in, &db_failed);
	w->n_recorded++;
	if (!rc || db_failed)
		return rc;
	if (!w->quiet)
		printf("%s %s refused a %s message: %s\n", ts, id, tern_dev_topic_name(kind),
		       tern_errname(rc));
	return db_record_bad(db, id, tern_dev_topic_name(kind), rc, q->payload, q->len, now);
}

/* Records everything queued in one transaction. */
static int drain(struct watch *w, struct db *db, struct queued *list)
{
	int rc = db_begin(db);
	uint64_t now = (uint64_t)time(NULL);
	for (struct queued *q = list; q && !rc; q = q->next)
		rc = record_one(w, db, q, now);
	if (!rc)
		rc = db_commit(db);
	else
		db_rollback(db);
	while (list) {
		struct queued *next = list->next;
		free(list);
		list = next;
	}
	fflush(stdout);
	return rc;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
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
	static struct watch w = {.lock = PTHREAD_MUTEX_INITIALIZER,
				 .cond = PTHREAD_COND_INITIALIZER};
	struct broker_opts bo = {0};
	uint64_t duration = 0;
	const char *client_id = "tern-watch";
	int c, rc, status = 1;
	struct db *db = NULL;
	struct mqtt *mq = NULL;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (broker_opts_flag(&bo, c, optarg))
			continue;
		if (c == 'd') {
			if (host_parse_u64(optarg, 1u << 30, &duration) || duration == 0)
				return host_usage("watch", "--duration takes seconds (1 or more)");
		} else if (c == 'q') {
			w.quiet = true;
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
	w.prefix = broker_opt(&bo, BF_PREFIX);
	w.tail = &w.head;
	struct sigaction sa = {0};
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (db_open(&db, broker_opt(&bo, BF_DB)))
		goto out;
	char filter[TERN_TOPIC_MAX];
	struct mqtt_params mp = {
	    .client_id = client_id, .on_msg = on_message, .ctx = &w, .keep_session = true};
	if (mqtt_connect(&mq, &bo, &mp))
		goto out;
	static const enum tern_dev_topic kinds[] = {TERN_DEV_STATE, TERN_DEV_EVENTS,
						    TERN_DEV_ONLINE};
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		if (!tern_topic_dev_filter(w.prefix, kinds[i], filter, sizeof(filter)) ||
		    mqtt_subscribe(mq, filter))
			goto out;
	}
	fprintf(stderr, "tern: watching %s/dev/+/{state,events,online} on %s\n", w.prefix,
		broker_opt(&bo, BF_BROKER));
	double end = duration ? now_s() + (double)duration : 0;
	rc = 0;
	while (!stop_signal && !rc && !(end > 0 && now_s() >= end)) {
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += 100 * 1000 * 1000;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		pthread_mutex_lock(&w.lock);
		while (!w.head && !w.nomem && !stop_signal)
			if (pthread_cond_timedwait(&w.cond, &w.lock, &until) == ETIMEDOUT)
				break;
		struct queued *list = w.head;
		w.head = NULL;
		w.tail = &w.head;
		bool nomem = w.nomem;
		pthread_mutex_unlock(&w.lock);
		if (nomem)
			rc = TERN_E_NOMEM;
		else if (list)
			rc = drain(&w, db, list);
		bool lost, back;
		mqtt_status(mq, &lost, &back);
		if (lost)
			fprintf(stderr, "tern: broker %s: connection lost; reconnecting\n",
				broker_opt(&bo, BF_BROKER));
		if (back)
			fprintf(stderr, "tern: broker %s: connected again\n",
				broker_opt(&bo, BF_BROKER));
	}
	/* Stop delivery, then record whatever arrived meanwhile. */
	mqtt_close(mq);
	mq = NULL;
	if (!rc && w.head)
		rc = drain(&w, db, w.head);
	w.head = NULL;
	if (rc && rc != TERN_E_BROKER && rc != TERN_E_DB)
		host_fail("watch", rc);
	fprintf(stderr, "tern: watch: %llu message%s recorded\n", (unsigned long long)w.n_recorded,
		w.n_recorded == 1 ? "" : "s");
	status = rc ? 1 : 0;
out:
	mqtt_close(mq);
	db_close(db);
	broker_opts_free(&bo);
	return status;
}
