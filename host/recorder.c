/* Recording device reports into the host database: shared by `tern watch` and the
 * rollout controller. paho's thread queues messages; the caller's thread records them
 * in batches (one transaction per wake-up). */
#include "recorder.h"

#include "tern/tern_err.h"
#include "tern/tern_msg.h"
#include "tern/tern_topic.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *or_dash(const char *s)
{
	return s && *s ? s : "-";
}

struct queued {
	struct queued *next;
	size_t topic_len, len;
	char *topic;
	uint8_t *payload;
};

struct recorder {
	struct db *db;
	struct mqtt *mq;
	const char *broker;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct queued *head, **tail;
	bool nomem;
	const char *prefix;
	bool quiet;
	uint64_t n_recorded;
};

static void on_message(void *ctx, const char *topic, size_t topic_len, const void *payload,
		       size_t len, bool retained)
{
	(void)retained;
	struct recorder *w = ctx;
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
	struct recorder *w;
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

static void print_event(const struct incoming *in, const struct tern_event_msg *e, const char *note)
{
	if (!in->w->quiet)
		printf("%s %s event %s %s -> %s%s%s%s%s%s%s%s\n", in->ts, in->id,
		       tern_event_kind_name(e->kind), tern_dev_state_name(e->from),
		       tern_dev_state_name(e->to), e->release_id[0] ? " release " : "",
		       e->release_id, e->status ? " status " : "",
		       e->status ? tern_status_name(e->status) : "", e->detail[0] ? ": " : "",
		       e->detail, note);
}

/*
 * A state carries the device's last event that tells an outcome (TERN_SK_LAST_EVENT):
 * recorded here too, once, since paho acknowledges an event before it is recorded and
 * a recorder killed in between would never see it again, while the state is retained
 * and comes again when the recorder subscribes.
 */
static int record_state(const struct incoming *in, bool *db_failed)
{
	struct tern_state_msg s;
	struct tern_event_msg e;
	bool added = false, unlisted = false;
	int rc = tern_state_decode(&s, in->payload, in->len);
	if (!rc && strcmp(s.device_id, in->id))
		rc = TERN_E_WRONG_DEVICE;
	if (rc)
		return rc;
	if ((rc = db_record_state(in->db, &s, in->payload, in->len, in->now, &unlisted)) ||
	    (s.last_event_len && !tern_event_decode(&e, s.last_event, s.last_event_len) &&
	     (rc = db_record_event(in->db, &e, s.last_event, s.last_event_len, in->now, &added)))) {
		*db_failed = true;
		return rc;
	}
	if (added)
		print_event(in, &e, " (from its state: the event itself was not recorded)");
	const struct tern_slot_info *sl = &s.slots[s.active_slot];
	if (!in->w->quiet)
		printf("%s %s state %s, slot %c: %s %s%s%s%s%s%s\n", in->ts, in->id,
		       tern_dev_state_name(s.state), s.active_slot ? 'B' : 'A',
		       or_dash(sl->release_id), or_dash(sl->version),
		       s.target[0] ? ", target " : "", s.target,
		       s.last_status ? ", last error " : "",
		       s.last_status ? tern_status_name(s.last_status) : "",
		       unlisted ? " (sent before the id was replaced over USB: history only)" : "");
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
	bool added;
	if ((rc = db_record_event(in->db, &e, in->payload, in->len, in->now, &added))) {
		*db_failed = true;
		return rc;
	}
	if (added) /* not a redelivery, nor known from a state */
		print_event(in, &e, "");
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
static int record_one(struct recorder *w, struct db *db, const struct queued *q, uint64_t now)
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

/*
 * Test hook: exit as if killed when a batch holds an event of the kind, or into the
 * state, named by $TERN_TEST_RECORDER_EXIT_ON ("refused", "rolled-back"), before
 * recording it - after paho acknowledged it, so the broker will not deliver it again.
 */
static void crash_hook(const struct recorder *w, const struct queued *list)
{
	const char *kind = getenv("TERN_TEST_RECORDER_EXIT_ON");
	char id[TERN_DEVICE_ID_MAX + 1];
	enum tern_dev_topic t;
	struct tern_event_msg e;
	for (const struct queued *q = kind ? list : NULL; q; q = q->next)
		if (!tern_topic_parse_dev(w->prefix, q->topic, q->topic_len, id, sizeof(id), &t) &&
		    t == TERN_DEV_EVENTS && !tern_event_decode(&e, q->payload, q->len) &&
		    (!strcmp(tern_event_kind_name(e.kind), kind) ||
		     !strcmp(tern_dev_state_name(e.to), kind)))
			_exit(3);
}

/* Records everything queued in one transaction. */
static int drain(struct recorder *w, struct db *db, struct queued *list)
{
	crash_hook(w, list);
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

int recorder_start(struct recorder **out, struct db *db, const struct broker_opts *bo,
		   const char *client_id, bool keep_session, bool print)
{
	struct recorder *w = calloc(1, sizeof(*w));
	char filter[TERN_TOPIC_MAX];
	if (!w)
		return TERN_E_NOMEM;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	w->tail = &w->head;
	w->db = db;
	w->prefix = broker_opt(bo, BF_PREFIX);
	w->broker = broker_opt(bo, BF_BROKER);
	w->quiet = !print;
	struct mqtt_params mp = {
	    .client_id = client_id, .on_msg = on_message, .ctx = w, .keep_session = keep_session};
	int rc = mqtt_connect(&w->mq, bo, &mp);
	static const enum tern_dev_topic kinds[] = {TERN_DEV_STATE, TERN_DEV_EVENTS,
						    TERN_DEV_ONLINE};
	for (size_t i = 0; !rc && i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		if (!tern_topic_dev_filter(w->prefix, kinds[i], filter, sizeof(filter)))
			rc = TERN_E_INVAL;
		else
			rc = mqtt_subscribe(w->mq, filter);
	}
	if (rc) {
		recorder_stop(w);
		return rc;
	}
	*out = w;
	return 0;
}

struct mqtt *recorder_mqtt(struct recorder *w)
{
	return w->mq;
}

uint64_t recorder_count(const struct recorder *w)
{
	return w->n_recorded;
}

int recorder_poll(struct recorder *w, long wait_ms)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += wait_ms / 1000;
	until.tv_nsec += (wait_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&w->lock);
	while (!w->head && !w->nomem && wait_ms > 0)
		if (pthread_cond_timedwait(&w->cond, &w->lock, &until) == ETIMEDOUT)
			break;
	struct queued *list = w->head;
	w->head = NULL;
	w->tail = &w->head;
	bool nomem = w->nomem;
	pthread_mutex_unlock(&w->lock);
	int rc = 0;
	if (nomem)
		rc = TERN_E_NOMEM;
	else if (list)
		rc = drain(w, w->db, list);
	bool lost, back;
	mqtt_status(w->mq, &lost, &back);
	if (lost)
		fprintf(stderr, "tern: broker %s: connection lost; reconnecting\n", w->broker);
	if (back)
		fprintf(stderr, "tern: broker %s: connected again\n", w->broker);
	return rc;
}

int recorder_stop(struct recorder *w)
{
	int rc = 0;
	if (!w)
		return 0;
	/* Stop delivery, then record whatever arrived meanwhile. */
	mqtt_close(w->mq);
	w->mq = NULL;
	if (w->head && !w->nomem)
		rc = drain(w, w->db, w->head);
	else if (w->nomem)
		rc = TERN_E_NOMEM;
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->lock);
	free(w);
	return rc;
}
