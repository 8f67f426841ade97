/* The device agent's MQTT transport over paho MQTTAsync (tern_mqttdev.h, docs/mqtt.md). */
#include "tern/tern_mqttdev.h"

#include "tern/tern_err.h"
#include "tern/tern_kvtext.h"
#include "tern/tern_msg.h"
#include "tern/tern_paho.h"
#include "tern/tern_release.h"
#include "tern/tern_topic.h"

#include <MQTTAsync.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* What paho's thread hands to the worker. */
enum item_kind { IT_MSG, IT_CONNECTED, IT_LOST, IT_CONNECT_FAILED };

struct item {
	struct item *next;
	enum item_kind kind;
	unsigned epoch; /* connection epoch it belongs to */
	char *topic;	/* into data[] */
	size_t topic_len;
	const uint8_t *payload; /* into data[] */
	size_t len;
	_Alignas(8) char data[]; /* payload, then topic */
};

/* The event counter is written to the record at least every this many events. */
#define EVENT_SEQ_STRIDE 64

/* What is being fetched. */
enum phase { PH_IDLE, PH_MANIFEST, PH_INDEX, PH_WINDOW };

struct tern_mqttdev {
	struct tern_mqttdev_config cfg;
	struct tern_mqttdev_board b;
	MQTTAsync client;
	unsigned ob_pending;  /* calls queued in cfg.outbox and not made yet (its lock) */
	pthread_mutex_t lock; /* guards the inbox and epoch */
	struct item *head, *tail;
	unsigned epoch; /* bumped at every stop: stale callbacks are dropped */

	/* Owned by the worker (tern_mqttdev_step's thread). */
	bool connected, halted, connecting;
	uint64_t reconnect_at; /* 0: none */
	uint32_t rng;
	/* Durable record. */
	uint64_t gen;	    /* accepted generation */
	uint64_t attempted; /* generation whose release was offered (accepted) */
	uint64_t done;	    /* generation settled */
	uint64_t evseq;
	char slot_rel[2][TERN_RELEASE_ID_MAX + 1]; /* release id per firmware slot */
	uint8_t desired[TERN_SIGNED_DESIRED_MAX];
	size_t desired_len;
	struct tern_desired d;
	bool have_desired;
	bool dirty;
	/* The last event that tells an outcome, as published: in every state sent (and in
	 * the record), so a recorder that lost the event has it from the retained state. */
	uint8_t last_ev[TERN_EVENT_MAX];
	size_t last_ev_len;
	/* Fetching. */
	enum phase ph;
	char sub[TERN_TOPIC_MAX]; /* the fetch subscription (window filter or topic) */
	bool sub_on;		  /* sub is subscribed (a window may be fetched by exact topics) */
	bool state_due;		  /* the retained state changed: sent at the end of the step */
	/* The manifest's and indexes' subscriptions of this fetch, kept until it ends and
	 * then dropped with its last window in one UNSUBSCRIBE (each retained message comes
	 * once at subscribe time; an UNSUBSCRIBE each cost a packet and its ack). */
	char kept[TERN_AGENT_MAX_COMPONENTS + 2][TERN_TOPIC_MAX];
	unsigned n_kept;
	bool index_ahead; /* the first index was asked for with the manifest (fetch_manifest) */
	char rel[TERN_RELEASE_ID_MAX + 1];
	char comp_name[TERN_AGENT_MAX_COMPONENTS][TERN_NAME_MAX + 1];
	unsigned n_comp;
	uint32_t chunk_size;
	unsigned cur_comp;
	uint64_t cur_window;
	uint64_t deadline;   /* no progress by then: subscribe again */
	unsigned attempts;   /* bad fetches of the current item */
	uint64_t retry_at;   /* 0: none; then fetch the bad chunks (or the index) again */
	uint64_t bad_mask;   /* bad chunks of the current window, bit = chunk % window */
	uint64_t exact_mask; /* chunks of the current window subscribed by their own topic */
	uint64_t next_chunk_at;
	uint64_t since_progress;  /* chunks verified since the last progress report */
	enum tern_state reported; /* state last reported */
	bool reported_valid;
	enum tern_state restored; /* state last reported, from the record (before a reboot) */
	bool restored_valid;
	uint64_t now;
	struct tern_mqttdev_stats st;
	char t_desired[TERN_TOPIC_MAX], t_state[TERN_TOPIC_MAX], t_events[TERN_TOPIC_MAX],
	    t_online[TERN_TOPIC_MAX];
};

/* ---- paho's thread: queue and notify, nothing else */

/*
 * Queues what paho handed us. A message is copied and paho's copy freed here, on its
 * thread: freeing it later from a worker contended for paho's heap lock with the
 * receive thread (measured: a quarter of the fleet's time in futex waits).
 */
static void push(struct tern_mqttdev *d, enum item_kind kind, const char *topic, size_t tlen,
		 const void *payload, size_t len)
{
	struct item *it = malloc(sizeof(*it) + len + tlen + 1);
	if (!it)
		return;
	memset(it, 0, sizeof(*it));
	it->kind = kind;
	if (len)
		memcpy(it->data, payload, len);
	it->payload = (const uint8_t *)it->data;
	it->len = len;
	it->topic = it->data + len;
	if (tlen)
		memcpy(it->topic, topic, tlen);
	it->topic[tlen] = '\0';
	it->topic_len = tlen;
	pthread_mutex_lock(&d->lock);
	it->epoch = d->epoch;
	if (d->tail)
		d->tail->next = it;
	else
		d->head = it;
	d->tail = it;
	pthread_mutex_unlock(&d->lock);
	if (d->cfg.notify)
		d->cfg.notify(d->cfg.notify_arg);
}

static int on_arrived(void *ctx, char *topic, int topic_len, MQTTAsync_message *msg)
{
	size_t tlen = topic_len > 0 ? (size_t)topic_len : strlen(topic);
	push(ctx, IT_MSG, topic, tlen, msg->payload,
	     msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0);
	MQTTAsync_freeMessage(&msg);
	MQTTAsync_free(topic);
	return 1;
}

static void on_lost(void *ctx, char *cause)
{
	(void)cause;
	push(ctx, IT_LOST, NULL, 0, NULL, 0);
}

static void on_connected(void *ctx, char *cause)
{
	(void)cause;
	push(ctx, IT_CONNECTED, NULL, 0, NULL, 0);
}

/* paho calls the connected callback for its own reconnects, not always for ours. */
static void on_connect_ok(void *ctx, MQTTAsync_successData *resp)
{
	(void)resp;
	push(ctx, IT_CONNECTED, NULL, 0, NULL, 0);
}

static void on_connect_fail(void *ctx, MQTTAsync_failureData *resp)
{
	(void)resp;
	push(ctx, IT_CONNECT_FAILED, NULL, 0, NULL, 0);
}

static void free_item(struct item *it)
{
	free(it);
}

/* ---- helpers */

static uint32_t rnd(struct tern_mqttdev *d)
{
	uint32_t x = d->rng;
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	d->rng = x;
	return x;
}

/* Capped exponential backoff with jitter: a random time in [b/2, b]. */
static uint64_t backoff_ms(struct tern_mqttdev *d, unsigned attempt)
{
	uint64_t b = d->cfg.retry_min_ms ? d->cfg.retry_min_ms : 1;
	for (unsigned i = 1; i < attempt && b < d->cfg.retry_max_ms; i++)
		b *= 2;
	if (b > d->cfg.retry_max_ms)
		b = d->cfg.retry_max_ms;
	return b / 2 + rnd(d) % (b / 2 + 1);
}

/* ---- sending: at once, or through the outbox (tern_mqtt_outbox_create) */

enum op_kind { OP_PUBLISH, OP_SUBSCRIBE, OP_UNSUBSCRIBE };

/* A paho call waiting in the outbox, with its own copy of the topics and payload. */
struct op {
	struct op *next;
	struct tern_mqttdev *dev;
	MQTTAsync client; /* the device's client when queued (destroyed only after a flush) */
	enum op_kind kind;
	bool retained;
	int n;
	char **topics;	     /* n, into data[] */
	const void *payload; /* into data[] */
	size_t len;
	_Alignas(8) char data[];
};

struct tern_mqtt_outbox {
	pthread_mutex_t lock;
	pthread_cond_t more; /* something was queued, or stop */
	pthread_cond_t done; /* a device's last queued call was made */
	struct op *head, *tail;
	bool stop;
	pthread_t thread;
};

/* The paho call itself (QoS 1 throughout). A publish while disconnected is buffered. */
static void op_run(MQTTAsync client, enum op_kind kind, char *const *topics, int n,
		   const void *payload, size_t len, bool retained)
{
	if (kind == OP_PUBLISH) {
		MQTTAsync_message m = MQTTAsync_message_initializer;
		m.payload = (void *)(uintptr_t)payload;
		m.payloadlen = (int)len;
		m.qos = 1;
		m.retained = retained;
		MQTTAsync_sendMessage(client, topics[0], &m, NULL);
	} else if (kind == OP_SUBSCRIBE) { /* one topic or several: one SUBSCRIBE packet */
		int qos[TERN_WINDOW_CHUNKS];
		for (int i = 0; i < n; i++)
			qos[i] = 1;
		MQTTAsync_subscribeMany(client, n, topics, qos, NULL);
	} else {
		MQTTAsync_unsubscribeMany(client, n, topics, NULL);
	}
}

/* Makes the call now, or queues it in the outbox (made now too if memory ran out). */
static void send_op(struct tern_mqttdev *d, enum op_kind kind, char *const *topics, int n,
		    const void *payload, size_t len, bool retained)
{
	struct tern_mqtt_outbox *ob = d->cfg.outbox;
	if (!d->client || n < 1 || n > TERN_WINDOW_CHUNKS)
		return;
	size_t size = sizeof(struct op) + (size_t)n * sizeof(char *) + len;
	for (int i = 0; i < n; i++)
		size += strlen(topics[i]) + 1;
	struct op *o = ob ? malloc(size) : NULL;
	if (!o) {
		op_run(d->client, kind, topics, n, payload, len, retained);
		return;
	}
	memset(o, 0, sizeof(*o));
	o->dev = d;
	o->client = d->client;
	o->kind = kind;
	o->retained = retained;
	o->n = n;
	o->topics = (char **)(void *)o->data;
	char *p = o->data + (size_t)n * sizeof(char *);
	if (len)
		memcpy(p, payload, len);
	o->payload = p;
	o->len = len;
	p += len;
	for (int i = 0; i < n; i++) {
		size_t tl = strlen(topics[i]) + 1;
		memcpy(p, topics[i], tl);
		o->topics[i] = p;
		p += tl;
	}
	pthread_mutex_lock(&ob->lock);
	if (ob->tail)
		ob->tail->next = o;
	else
		ob->head = o;
	ob->tail = o;
	d->ob_pending++;
	pthread_cond_signal(&ob->more);
	pthread_mutex_unlock(&ob->lock);
}

/* Waits until every call this device queued has been made (before a disconnect or a
 * destroy of its client: they must reach paho first, in order). */
static void outbox_flush(struct tern_mqttdev *d)
{
	struct tern_mqtt_outbox *ob = d->cfg.outbox;
	if (!ob)
		return;
	pthread_mutex_lock(&ob->lock);
	while (d->ob_pending)
		pthread_cond_wait(&ob->done, &ob->lock);
	pthread_mutex_unlock(&ob->lock);
}

static void *outbox_main(void *arg)
{
	struct tern_mqtt_outbox *ob = arg;
	prctl(PR_SET_NAME, "tern_outbox", 0, 0, 0);
	pthread_mutex_lock(&ob->lock);
	for (;;) {
		while (!ob->head && !ob->stop)
			pthread_cond_wait(&ob->more, &ob->lock);
		struct op *o = ob->head;
		if (!o)
			break; /* stopped, and nothing is left */
		ob->head = o->next;
		if (!ob->head)
			ob->tail = NULL;
		pthread_mutex_unlock(&ob->lock);
		op_run(o->client, o->kind, o->topics, o->n, o->payload, o->len, o->retained);
		pthread_mutex_lock(&ob->lock);
		if (--o->dev->ob_pending == 0)
			pthread_cond_broadcast(&ob->done);
		free(o);
	}
	pthread_mutex_unlock(&ob->lock);
	return NULL;
}

int tern_mqtt_outbox_create(struct tern_mqtt_outbox **out)
{
	struct tern_mqtt_outbox *ob = calloc(1, sizeof(*ob));
	if (!ob)
		return TERN_E_NOMEM;
	pthread_mutex_init(&ob->lock, NULL);
	pthread_cond_init(&ob->more, NULL);
	pthread_cond_init(&ob->done, NULL);
	if (pthread_create(&ob->thread, NULL, outbox_main, ob) != 0) {
		pthread_cond_destroy(&ob->done);
		pthread_cond_destroy(&ob->more);
		pthread_mutex_destroy(&ob->lock);
		free(ob);
		return TERN_E_NOMEM;
	}
	*out = ob;
	return 0;
}

void tern_mqtt_outbox_destroy(struct tern_mqtt_outbox *ob)
{
	if (!ob)
		return;
	pthread_mutex_lock(&ob->lock);
	ob->stop = true;
	pthread_cond_signal(&ob->more);
	pthread_mutex_unlock(&ob->lock);
	pthread_join(ob->thread, NULL);
	pthread_cond_destroy(&ob->done);
	pthread_cond_destroy(&ob->more);
	pthread_mutex_destroy(&ob->lock);
	free(ob);
}

static void publish(struct tern_mqttdev *d, const char *topic, const void *buf, size_t len,
		    bool retained)
{
	char *t = (char *)(uintptr_t)topic;
	send_op(d, OP_PUBLISH, &t, 1, buf, len, retained); /* buffered while disconnected */
}

static void subscribe(struct tern_mqttdev *d, const char *filter)
{
	char *t = (char *)(uintptr_t)filter;
	if (d->connected)
		send_op(d, OP_SUBSCRIBE, &t, 1, NULL, 0, false);
}

static void unsubscribe(struct tern_mqttdev *d, const char *filter)
{
	char *t = (char *)(uintptr_t)filter;
	if (d->connected && filter[0])
		send_op(d, OP_UNSUBSCRIBE, &t, 1, NULL, 0, false);
}

/* Subscribes to (or unsubscribes from) the chunks of the current window in @mask, in one
 * packet: resuming asks only for what is missing. */
static void chunk_topics(struct tern_mqttdev *d, uint64_t mask, bool on)
{
	char topics[TERN_WINDOW_CHUNKS][TERN_TOPIC_MAX];
	char *ptrs[TERN_WINDOW_CHUNKS];
	int n = 0;
	if (!d->connected || !mask)
		return;
	for (unsigned i = 0; i < TERN_WINDOW_CHUNKS; i++) {
		if ((mask >> i & 1u) &&
		    tern_topic_chunk(d->cfg.prefix, d->rel, d->comp_name[d->cur_comp],
				     d->cur_window * TERN_WINDOW_CHUNKS + i, topics[n],
				     TERN_TOPIC_MAX)) {
			ptrs[n] = topics[n];
			n++;
		}
	}
	if (n)
		send_op(d, on ? OP_SUBSCRIBE : OP_UNSUBSCRIBE, ptrs, n, NULL, 0, false);
}

static bool topic_is(const struct item *it, const char *topic)
{
	return strlen(topic) == it->topic_len && !memcmp(it->topic, topic, it->topic_len);
}

/* ---- the durable record: key=value lines, the desired state in hex */

static void hex_encode(const uint8_t *in, size_t n, char *out)
{
	static const char dg[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = dg[in[i] >> 4];
		out[2 * i + 1] = dg[in[i] & 15];
	}
	out[2 * n] = '\0';
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Decodes @hx (an even number of hex digits, at most 2 * @size) into @out. */
static int hex_decode(const char *hx, uint8_t *out, size_t size, size_t *len)
{
	size_t n = strlen(hx);
	if (n % 2 || n / 2 > size)
		return TERN_E_MALFORMED;
	for (size_t i = 0; i < n / 2; i++) {
		int hi = hexval(hx[2 * i]), lo = hexval(hx[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return TERN_E_MALFORMED;
		out[i] = (uint8_t)(hi * 16 + lo);
	}
	*len = n / 2;
	return 0;
}

static uint64_t rec_u64(const char *text, const char *key)
{
	char v[32];
	if (!tern_kv_get(text, key, v, sizeof(v)))
		return 0;
	char *end;
	unsigned long long x = strtoull(v, &end, 10);
	return *end ? 0 : x;
}

/* The longest record: keys, 4 numbers of up to 20 digits, "-1", the two slots' release
 * ids, the desired state and the last event in hex. */
_Static_assert(sizeof("generation=\nattempted=\ndone=\nevents=\nslot0=\nslot1=\ndesired=\n"
		      "reported=\nlastevent=\n") +
		       4 * 20 + 2 + 2 * TERN_RELEASE_ID_MAX + 2 * TERN_SIGNED_DESIRED_MAX +
		       2 * TERN_EVENT_MAX <=
		   TERN_MQTTDEV_RECORD_MAX,
	       "the longest record fits");

static int record_store(struct tern_mqttdev *d)
{
	char text[TERN_MQTTDEV_RECORD_MAX], hx[2 * TERN_SIGNED_DESIRED_MAX + 1],
	    hev[2 * TERN_EVENT_MAX + 1];
	hex_encode(d->desired, d->desired_len, hx);
	hex_encode(d->last_ev, d->last_ev_len, hev);
	int n = snprintf(text, sizeof(text),
			 "generation=%llu\nattempted=%llu\ndone=%llu\nevents=%llu\nslot0=%s\n"
			 "slot1=%s\ndesired=%s\nreported=%d\nlastevent=%s\n",
			 (unsigned long long)d->gen, (unsigned long long)d->attempted,
			 (unsigned long long)d->done, (unsigned long long)d->evseq, d->slot_rel[0],
			 d->slot_rel[1], hx, d->reported_valid ? (int)d->reported : -1, hev);
	if (n < 0 || (size_t)n >= sizeof(text))
		return TERN_E_TOO_LARGE;
	d->dirty = false;
	return d->b.store(d->b.ctx, (const uint8_t *)text, (size_t)n);
}

static int record_load(struct tern_mqttdev *d)
{
	char text[TERN_MQTTDEV_RECORD_MAX + 1], hx[2 * TERN_SIGNED_DESIRED_MAX + 1];
	size_t len = 0;
	int rc = d->b.load(d->b.ctx, (uint8_t *)text, sizeof(text) - 1, &len);
	if (rc)
		return rc;
	text[len] = '\0';
	d->gen = rec_u64(text, "generation");
	d->attempted = rec_u64(text, "attempted");
	d->done = rec_u64(text, "done");
	/* The counter is stored with every transition and every EVENT_SEQ_STRIDE events
	 * (errors and refusals in between): starting a stride above what was stored never
	 * repeats a number. */
	d->evseq = rec_u64(text, "events") + EVENT_SEQ_STRIDE;
	if (!tern_kv_get(text, "slot0", d->slot_rel[0], sizeof(d->slot_rel[0])))
		d->slot_rel[0][0] = '\0';
	if (!tern_kv_get(text, "slot1", d->slot_rel[1], sizeof(d->slot_rel[1])))
		d->slot_rel[1][0] = '\0';
	char rep[8];
	d->restored_valid = false;
	if (tern_kv_get(text, "reported", rep, sizeof(rep)) && rep[0] >= '0' &&
	    rep[0] <= '0' + TERN_ST_FAILED && !rep[1]) {
		d->restored = (enum tern_state)(rep[0] - '0');
		d->restored_valid = true;
	}
	d->have_desired = false;
	d->desired_len = 0;
	if (tern_kv_get(text, "desired", hx, sizeof(hx)) && hx[0]) {
		size_t n;
		if ((rc = hex_decode(hx, d->desired, sizeof(d->desired), &n)))
			return rc;
		d->desired_len = n;
		/* Our own flash is trusted, but the bytes still must open as ours. */
		if (d->gen && tern_desired_open(&d->d, d->desired, n, d->b.keyring,
						d->cfg.device_id, d->gen - 1) == 0)
			d->have_desired = true;
	}
	/* The last event (none in a record written before it was kept): one that does not
	 * decode as ours is dropped, not sent. */
	char hev[2 * TERN_EVENT_MAX + 1];
	struct tern_event_msg e;
	d->last_ev_len = 0;
	if (tern_kv_get(text, "lastevent", hev, sizeof(hev)) && hev[0] &&
	    (hex_decode(hev, d->last_ev, sizeof(d->last_ev), &d->last_ev_len) ||
	     tern_event_decode(&e, d->last_ev, d->last_ev_len) ||
	     strcmp(e.device_id, d->cfg.device_id)))
		d->last_ev_len = 0;
	return 0;
}

/* ---- reports */

static void send_state(struct tern_mqttdev *d)
{
	struct tern_status s;
	d->state_due = false;
	struct tern_state_msg m;
	uint8_t buf[TERN_STATE_MAX];
	const struct tern_agent *ag = d->b.agent;
	tern_agent_status(ag, &s);
	memset(&m, 0, sizeof(m));
	snprintf(m.device_id, sizeof(m.device_id), "%s", d->cfg.device_id);
	snprintf(m.board, sizeof(m.board), "%s", d->b.board_id);
	m.state = (enum tern_dev_state)s.state;
	m.active_slot = s.running[TERN_PAIR_FW] & 1u;
	for (unsigned i = 0; i < TERN_SLOTS; i++) {
		const struct tern_slot_meta *sm = &s.slots[tern_slot_area(TERN_PAIR_FW, i)];
		struct tern_slot_info *si = &m.slots[i];
		if (sm->state == TERN_SLOT_EMPTY || !sm->version[0])
			continue;
		if (d->slot_rel[i][0])
			snprintf(si->release_id, sizeof(si->release_id), "%s", d->slot_rel[i]);
		else
			snprintf(si->release_id, sizeof(si->release_id), "%s-%s-%llu",
				 d->b.board_id, sm->version, (unsigned long long)sm->sequence);
		if (!tern_topic_id_valid(si->release_id, TERN_RELEASE_ID_MAX))
			snprintf(si->release_id, sizeof(si->release_id), "unknown");
		snprintf(si->version, sizeof(si->version), "%s", sm->version);
		si->sequence = sm->sequence;
		si->good = sm->state == TERN_SLOT_GOOD;
	}
	if (s.state == TERN_ST_DOWNLOADING || s.state == TERN_ST_VERIFYING ||
	    s.state == TERN_ST_STAGED || s.state == TERN_ST_TRIAL) {
		if (ag->job.release_id[0])
			snprintf(m.target, sizeof(m.target), "%s", ag->job.release_id);
		else if (d->have_desired)
			snprintf(m.target, sizeof(m.target), "%s", d->d.release_id);
	}
	m.done = s.n_verified;
	m.total = s.n_chunks;
	m.last_status = tern_status_from_err(s.reason);
	m.generation = d->gen;
	m.time = (uint64_t)time(NULL);
	m.floor = s.security_floor;
	memcpy(m.last_event, d->last_ev, d->last_ev_len);
	m.last_event_len = d->last_ev_len;
	size_t n = tern_state_encode(&m, buf, sizeof(buf));
	if (n)
		publish(d, d->t_state, buf, n, true);
}

/*
 * The retained state is sent once per step, after its events: a step that goes from
 * downloading through staged to trial (or a progress report followed by staged) sends
 * only the last state, since a retained message replaces the one before anyway. Sent at
 * the end of tern_mqttdev_step() and tern_mqttdev_agent_changed(), before a reboot (a
 * board that really reboots does not come back) and before the connection is dropped.
 */
static void publish_state(struct tern_mqttdev *d)
{
	d->state_due = true;
}

static void flush_state(struct tern_mqttdev *d)
{
	if (d->state_due)
		send_state(d);
}

/* One event. @rc: 0 or the TERN_E_* it is about. */
static void event(struct tern_mqttdev *d, enum tern_event_kind kind, enum tern_state from,
		  enum tern_state to, int rc, const char *release, uint64_t generation,
		  const char *detail)
{
	struct tern_event_msg e;
	uint8_t buf[TERN_EVENT_MAX];
	memset(&e, 0, sizeof(e));
	snprintf(e.device_id, sizeof(e.device_id), "%s", d->cfg.device_id);
	e.seq = ++d->evseq;
	e.time = (uint64_t)time(NULL);
	e.kind = kind;
	e.from = (enum tern_dev_state)from;
	e.to = (enum tern_dev_state)to;
	if (release && tern_topic_id_valid(release, TERN_RELEASE_ID_MAX))
		snprintf(e.release_id, sizeof(e.release_id), "%s", release);
	e.status = tern_status_from_err(rc);
	if (detail)
		snprintf(e.detail, sizeof(e.detail), "%s", detail);
	e.generation = generation;
	size_t n = tern_event_encode(&e, buf, sizeof(buf));
	if (n)
		publish(d, d->t_events, buf, n, false);
	if (n && (kind == TERN_EV_TRANSITION ||
		  (kind == TERN_EV_REFUSED && rc != TERN_E_OLD_GENERATION))) {
		/* It tells an outcome: kept for the states from now on (a refusal of a copy of
		 * a command already accepted tells nothing, and would hide what did). */
		memcpy(d->last_ev, buf, n);
		d->last_ev_len = n;
		d->dirty = true;
		publish_state(d);
	}
	if (d->evseq % EVENT_SEQ_STRIDE == 0)
		d->dirty = true;
}

/* Reports a change of the agent's state (event about @release + retained state). */
static void sync_state_about(struct tern_mqttdev *d, const char *release, const char *detail)
{
	enum tern_state now = d->b.agent->state;
	if (d->reported_valid && now == d->reported)
		return;
	if (d->reported_valid)
		event(d, TERN_EV_TRANSITION, d->reported, now, d->b.agent->reason, release, d->gen,
		      detail);
	d->reported = now;
	d->reported_valid = true;
	d->dirty = true; /* the state reported is in the record: a transition is told once */
	publish_state(d);
}

/* The same about the desired state's release. */
static void sync_state(struct tern_mqttdev *d, const char *detail)
{
	sync_state_about(d, d->have_desired ? d->d.release_id : NULL, detail);
}

/* The release a reboot's outcome is about: the trial slot's (confirmed: the slot that
 * runs; rolled back: the other one), which another transport may have written, else
 * the desired state's. */
static const char *trial_release(const struct tern_mqttdev *d)
{
	struct tern_status s;
	tern_agent_status(d->b.agent, &s);
	unsigned slot = s.running[TERN_PAIR_FW] & 1u;
	if (d->b.agent->state == TERN_ST_ROLLED_BACK)
		slot = 1u - slot;
	if (d->slot_rel[slot][0])
		return d->slot_rel[slot];
	return d->have_desired ? d->d.release_id : NULL;
}

/* ---- fetching */

/* Leaves the current item (manifest, index or window). A manifest's or an index's
 * subscription is kept (@keep) for fetch_stop(); a window's is dropped now. */
static void item_stop(struct tern_mqttdev *d, bool keep)
{
	bool kept = false;
	if (d->sub_on && keep && (d->ph == PH_MANIFEST || d->ph == PH_INDEX) &&
	    d->n_kept < sizeof(d->kept) / sizeof(d->kept[0]) && d->connected) {
		memcpy(d->kept[d->n_kept++], d->sub, sizeof(d->sub));
		kept = true;
	}
	if (d->sub_on && !kept)
		unsubscribe(d, d->sub);
	if (d->ph == PH_WINDOW)
		chunk_topics(d, d->exact_mask | d->bad_mask, false);
	d->sub[0] = '\0';
	d->sub_on = false;
	d->ph = PH_IDLE;
	d->bad_mask = 0;
	d->exact_mask = 0;
	d->retry_at = 0;
	d->attempts = 0;
}

/* Ends the fetch: its subscriptions go, the kept ones with the current one in one packet. */
static void fetch_stop(struct tern_mqttdev *d)
{
	if (d->n_kept && d->connected) {
		char *ptrs[sizeof(d->kept) / sizeof(d->kept[0]) + 1];
		int n = 0;
		for (unsigned i = 0; i < d->n_kept; i++)
			ptrs[n++] = d->kept[i];
		if (d->sub_on && d->sub[0])
			ptrs[n++] = d->sub;
		send_op(d, OP_UNSUBSCRIBE, ptrs, n, NULL, 0, false);
		d->sub_on = false;
	}
	d->n_kept = 0;
	item_stop(d, false);
}

static void settle(struct tern_mqttdev *d)
{
	if (d->have_desired && d->done != d->gen) {
		d->done = d->gen;
		d->dirty = true;
	}
}

/* Power went: stop everything until the board restarts us. */
static void power_lost(struct tern_mqttdev *d)
{
	tern_mqttdev_stop(d);
	if (d->b.power_lost)
		d->b.power_lost(d->b.ctx);
}

/* An agent call failed with @rc: true when the device lost power (caller returns). */
static bool lost_power(struct tern_mqttdev *d, int rc)
{
	if (rc != TERN_E_POWER_CUT)
		return false;
	power_lost(d);
	return true;
}

static void fetch_manifest(struct tern_mqttdev *d, const char *release)
{
	fetch_stop(d);
	snprintf(d->rel, sizeof(d->rel), "%s", release);
	d->n_comp = 0;
	if (!tern_topic_manifest(d->cfg.prefix, d->rel, d->sub, sizeof(d->sub)))
		return;
	d->ph = PH_MANIFEST;
	d->deadline = d->now + d->cfg.fetch_timeout_ms;
	d->sub_on = true;
	/* The indexes in the same SUBSCRIBE (PREFIX/rel/R/+/index, after the manifest: a
	 * broker sends the retained messages of a SUBSCRIBE's filters in their order): the
	 * first index is there as soon as the manifest is accepted, one round trip less
	 * before the first chunk. An index is small (32 bytes a chunk); the filter goes when
	 * the fetch ends. The other components' indexes arrive early and are asked for again
	 * when their turn comes. */
	char *both[2] = {d->sub, d->kept[0]};
	if (d->connected &&
	    tern_topic_index_filter(d->cfg.prefix, d->rel, d->kept[0], sizeof(d->kept[0]))) {
		d->n_kept = 1;
		d->index_ahead = true;
		send_op(d, OP_SUBSCRIBE, both, 2, NULL, 0, false);
	} else {
		subscribe(d, d->sub);
	}
}

/*
 * (Re)subscribes to what the current window still lacks: the window's filter when none of
 * its chunks is verified yet, else each missing chunk by its own topic (one SUBSCRIBE), so
 * chunks verified before a reconnect, a reboot or a timeout are not sent again. Bad chunks
 * waiting for their backoff are left out (fetch_retry() asks for them). False when the
 * device lost power reading its markers.
 */
static bool window_subscribe(struct tern_mqttdev *d)
{
	struct tern_agent *ag = d->b.agent;
	uint64_t first = d->cur_window * TERN_WINDOW_CHUNKS;
	uint64_t n_chunks = ag->job.comp[d->cur_comp].n_chunks;
	uint64_t all = 0, missing = 0;
	for (unsigned i = 0; i < TERN_WINDOW_CHUNKS && first + i < n_chunks; i++) {
		bool verified = false;
		int rc = tern_agent_chunk_verified(ag, d->cur_comp, first + i, &verified);
		if (lost_power(d, rc))
			return false;
		all |= 1ull << i;
		if (!verified)
			missing |= 1ull << i; /* a marker that cannot be read: asked for again */
	}
	if (missing == all) {
		subscribe(d, d->sub);
		d->sub_on = true;
		return true;
	}
	if (d->sub_on)
		unsubscribe(d, d->sub);
	d->sub_on = false;
	if (d->retry_at)
		missing &= ~d->bad_mask;
	chunk_topics(d, missing, true);
	d->exact_mask |= missing;
	return true;
}

static void reconcile(struct tern_mqttdev *d);

/* The next thing the agent needs: an index, a window, or nothing (finish). */
static void fetch_next(struct tern_mqttdev *d)
{
	struct tern_agent *ag = d->b.agent;
	unsigned comp;
	bool is_index;
	uint64_t off;
	if (tern_agent_next_needed(ag, &comp, &is_index, &off) != 0) {
		fetch_stop(d);
		int rc = tern_agent_finish(ag);
		if (lost_power(d, rc))
			return;
		if (rc == 0) {
			d->st.installs++;
			sync_state(d, "every chunk verified; staged");
		} else {
			event(d, TERN_EV_ERROR, ag->state, ag->state, rc, d->rel, d->gen,
			      "finishing the download failed");
		}
		reconcile(d);
		return;
	}
	if (comp >= d->n_comp)
		return;
	if (is_index) {
		if (d->ph == PH_INDEX && d->cur_comp == comp)
			return;
		item_stop(d, true);
		d->cur_comp = comp;
		if (!tern_topic_index(d->cfg.prefix, d->rel, d->comp_name[comp], d->sub,
				      sizeof(d->sub)))
			return;
		d->ph = PH_INDEX;
		d->deadline = d->now + d->cfg.fetch_timeout_ms;
		if (d->index_ahead) {
			d->index_ahead = false; /* on its way, right behind the manifest */
			d->sub_on = false;
			return;
		}
		d->sub_on = true;
	} else {
		d->index_ahead = false;
		uint64_t w = off / d->chunk_size / TERN_WINDOW_CHUNKS;
		if (d->ph == PH_WINDOW && d->cur_comp == comp && d->cur_window == w)
			return;
		item_stop(d, true);
		d->cur_comp = comp;
		d->cur_window = w;
		if (!tern_topic_window_filter(d->cfg.prefix, d->rel, d->comp_name[comp], w, d->sub,
					      sizeof(d->sub)))
			return;
		d->ph = PH_WINDOW;
		d->deadline = d->now + d->cfg.fetch_timeout_ms;
		window_subscribe(d);
		return;
	}
	d->deadline = d->now + d->cfg.fetch_timeout_ms;
	subscribe(d, d->sub);
}

/* A bad index or chunk: report, and fetch it again later, or give up. */
static void fetch_failed(struct tern_mqttdev *d, int rc, const char *what)
{
	struct tern_agent *ag = d->b.agent;
	char detail[TERN_EVENT_DETAIL_MAX + 1];
	d->attempts++;
	if (d->attempts >= d->cfg.max_attempts) {
		snprintf(detail, sizeof(detail), "%s: %s; gave up after %u attempts", what,
			 tern_errname(rc), d->attempts);
		event(d, TERN_EV_ERROR, ag->state, ag->state, rc, d->rel, d->gen, detail);
		fetch_stop(d);
		int crc = tern_agent_cancel(ag, rc);
		if (lost_power(d, crc))
			return;
		sync_state(d, "download abandoned");
		settle(d);
		return;
	}
	uint64_t wait = backoff_ms(d, d->attempts);
	snprintf(detail, sizeof(detail), "%s: %s; fetching it again in %llu ms (attempt %u of %u)",
		 what, tern_errname(rc), (unsigned long long)wait, d->attempts + 1,
		 d->cfg.max_attempts);
	event(d, TERN_EV_ERROR, ag->state, ag->state, rc, d->rel, d->gen, detail);
	d->retry_at = d->now + wait;
}

static void on_manifest(struct tern_mqttdev *d, const struct item *it)
{
	struct tern_agent *ag = d->b.agent;
	const uint8_t *p = it->payload;
	size_t len = it->len;
	if (len == 0)
		return; /* not published (yet) */
	struct tern_release_head *rh = malloc(sizeof(*rh));
	if (!rh)
		return;
	enum tern_state before = ag->state;
	int rc = tern_release_parse_unverified(rh, p, len);
	if (rc == 0 && rh->head_len != len)
		rc = TERN_E_TRAILING;
	if (rc == 0 && (strcmp(rh->manifest.release_id, d->rel) ||
			rh->manifest.n_components > TERN_AGENT_MAX_COMPONENTS))
		rc = TERN_E_MALFORMED; /* another release under this topic */
	if (rc == 0 && d->b.busy && d->b.busy(d->b.ctx)) {
		/* Another transport took the agent meanwhile: fetch again once it is free. */
		free(rh);
		fetch_stop(d);
		return;
	}
	/* A revert may go back to an older release (a resumed one is known by its journal). */
	bool revert = d->have_desired && d->d.action == TERN_ACTION_REVERT &&
		      !strcmp(d->d.release_id, d->rel);
	if (rc == 0)
		rc = revert ? tern_agent_offer_revert(ag, p, len) : tern_agent_offer(ag, p, len);
	if (lost_power(d, rc)) {
		free(rh);
		return;
	}
	if (rc)
		fetch_stop(d); /* the manifest and the index filter go */
	else
		item_stop(d, true); /* kept until the fetch ends */
	if (rc) {
		d->st.refused++;
		event(d, TERN_EV_REFUSED, ag->state, ag->state, rc, d->rel, d->gen,
		      revert ? "revert refused" : "release refused");
		free(rh);
		settle(d);
		publish_state(d);
		return;
	}
	d->n_comp = (unsigned)rh->manifest.n_components;
	d->chunk_size = rh->manifest.chunk_size;
	for (unsigned i = 0; i < d->n_comp; i++)
		snprintf(d->comp_name[i], sizeof(d->comp_name[i]), "%s",
			 rh->manifest.components[i].name);
	free(rh);
	/* Accepted: a download (new or resumed), or staged at once from the inactive slots. */
	if (ag->state == TERN_ST_DOWNLOADING || ag->state == TERN_ST_STAGED) {
		if (before == ag->state) {
			d->st.resumes += ag->state == TERN_ST_DOWNLOADING;
		} else {
			if (ag->state == TERN_ST_STAGED)
				d->st.kept++;
			else
				d->st.fresh_offers++;
			d->attempted = d->gen;
			for (unsigned i = 0; i < ag->job.n_comp; i++)
				if (ag->job.comp[i].pair == TERN_PAIR_FW)
					snprintf(d->slot_rel[ag->job.comp[i].slot & 1u],
						 sizeof(d->slot_rel[0]), "%s", d->rel);
			d->dirty = true;
		}
	}
	sync_state(d, NULL);
	if (ag->state == TERN_ST_DOWNLOADING) {
		fetch_next(d);
	} else {
		fetch_stop(d); /* nothing to fetch (staged from the inactive slot) */
		reconcile(d);
	}
}

static void on_index(struct tern_mqttdev *d, const struct item *it)
{
	struct tern_agent *ag = d->b.agent;
	size_t len = it->len;
	if (len == 0)
		return;
	d->st.indexes_fetched++;
	int rc = tern_agent_feed_index(ag, d->cur_comp, 0, it->payload, len);
	if (lost_power(d, rc))
		return;
	d->deadline = d->now + d->cfg.fetch_timeout_ms;
	if (rc) {
		char what[64];
		snprintf(what, sizeof(what), "index of %s", d->comp_name[d->cur_comp]);
		fetch_failed(d, rc, what);
		return;
	}
	d->attempts = 0;
	fetch_next(d);
}

static void on_chunk(struct tern_mqttdev *d, const struct item *it)
{
	struct tern_agent *ag = d->b.agent;
	uint64_t n;
	char topic[TERN_TOPIC_MAX];
	size_t len = it->len;
	if (it->topic_len >= sizeof(topic) || len == 0)
		return;
	memcpy(topic, it->topic, it->topic_len);
	topic[it->topic_len] = '\0';
	if (tern_topic_parse_chunk(d->cfg.prefix, d->rel, d->comp_name[d->cur_comp], topic,
				   it->topic_len, &n) ||
	    n / TERN_WINDOW_CHUNKS != d->cur_window)
		return; /* late, from a window we left */
	d->st.chunks_fetched++;
	bool verified = false;
	int vrc = tern_agent_chunk_verified(ag, d->cur_comp, n, &verified);
	if (lost_power(d, vrc))
		return;
	if (verified) {
		d->st.chunks_again++; /* had it already: nothing to write */
		return;
	}
	uint64_t before = ag->job.comp[d->cur_comp].n_verified;
	int rc = tern_agent_feed(ag, d->cur_comp, n * d->chunk_size, it->payload, len);
	if (lost_power(d, rc))
		return;
	d->deadline = d->now + d->cfg.fetch_timeout_ms;
	unsigned bit = (unsigned)(n % TERN_WINDOW_CHUNKS);
	if (rc == TERN_E_DIGEST) {
		d->st.chunks_bad++;
		d->bad_mask |= 1ull << bit;
		char what[80];
		snprintf(what, sizeof(what), "chunk %llu of %s", (unsigned long long)n,
			 d->comp_name[d->cur_comp]);
		fetch_failed(d, rc, what);
		return;
	}
	if (rc) {
		event(d, TERN_EV_ERROR, ag->state, ag->state, rc, d->rel, d->gen,
		      "a chunk could not be written");
		return;
	}
	if (d->bad_mask >> bit & 1u) {
		d->bad_mask &= ~(1ull << bit);
		char t[TERN_TOPIC_MAX];
		if (tern_topic_chunk(d->cfg.prefix, d->rel, d->comp_name[d->cur_comp], n, t,
				     sizeof(t)))
			unsubscribe(d, t);
		if (!d->bad_mask) {
			d->attempts = 0;
			d->retry_at = 0;
		}
	}
	d->since_progress += ag->job.comp[d->cur_comp].n_verified - before;
	if (d->since_progress >= TERN_WINDOW_CHUNKS) {
		d->since_progress = 0;
		publish_state(d);
	}
	fetch_next(d);
}

/* Time to fetch again what was bad (or what never came). */
static void fetch_retry(struct tern_mqttdev *d)
{
	d->retry_at = 0;
	d->deadline = d->now + d->cfg.fetch_timeout_ms;
	if (d->ph == PH_WINDOW && d->bad_mask) {
		chunk_topics(d, d->bad_mask, true); /* those chunks alone, retained */
		return;
	}
	if (d->ph == PH_WINDOW) {
		window_subscribe(d); /* what is still missing, retained, again */
	} else {
		subscribe(d, d->sub); /* subscribing again sends the retained message again */
		d->sub_on = true;
	}
}

static const char *reboot_outcome(enum tern_state after)
{
	return after == TERN_ST_CONFIRMED     ? "trial passed its health check; confirmed"
	       : after == TERN_ST_ROLLED_BACK ? "trial failed; back on the previous image"
					      : "rebooted";
}

static void reboot(struct tern_mqttdev *d)
{
	struct tern_agent *ag = d->b.agent;
	d->st.reboots++;
	sync_state(d, "activated; rebooting into the trial");
	flush_state(d);
	record_store(d); /* a board that really reboots does not come back to store it */
	int rc = d->b.reboot(d->b.ctx);
	if (rc) {
		power_lost(d);
		return;
	}
	d->reported_valid = true;
	sync_state(d, reboot_outcome(ag->state));
}

/* What the accepted desired state asks, against what the agent is doing. */
static void reconcile(struct tern_mqttdev *d)
{
	struct tern_agent *ag = d->b.agent;
	if (!d->have_desired || d->halted)
		return;
	if (d->b.busy && d->b.busy(d->b.ctx))
		return; /* another transport installs: tern_mqttdev_agent_changed() resumes */
	const struct tern_desired *w = &d->d;
	struct tern_status s;
	tern_agent_status(ag, &s);
	if (ag->state == TERN_ST_DOWNLOADING) {
		if (d->ph != PH_IDLE)
			return;
		/* Our job, resumed (the manifest gives the component names), or another. */
		if (!strcmp(ag->job.release_id, w->release_id) || d->done == d->gen) {
			fetch_manifest(d, ag->job.release_id);
			return;
		}
		int rc = tern_agent_cancel(ag, TERN_E_CANCELED);
		if (lost_power(d, rc))
			return;
		sync_state(d, "download replaced by a newer desired state");
	}
	if (d->done == d->gen)
		return;
	const struct tern_slot_meta *run = &s.slots[tern_slot_area(TERN_PAIR_FW, s.running[0])];
	if (ag->state == TERN_ST_STAGED) {
		bool ours = false;
		for (unsigned i = 0; i < 2; i++)
			if (s.slots[tern_slot_area(TERN_PAIR_FW, i)].state == TERN_SLOT_STAGED &&
			    s.slots[tern_slot_area(TERN_PAIR_FW, i)].sequence == w->sequence)
				ours = true;
		if (ours &&
		    (w->action == TERN_ACTION_ACTIVATE || w->activate == TERN_ACTIVATE_NOW)) {
			int rc = tern_agent_activate(ag);
			if (lost_power(d, rc))
				return;
			if (rc) {
				event(d, TERN_EV_ERROR, ag->state, ag->state, rc, w->release_id,
				      d->gen, "activate failed");
				settle(d);
				return;
			}
			settle(d);
			record_store(d);
			reboot(d);
			return;
		}
		if (ours) {
			settle(d); /* staged; waits for an activate */
			return;
		}
	}
	if (run->sequence == w->sequence && !s.running_trial) {
		settle(d); /* runs it already */
		return;
	}
	if (w->action == TERN_ACTION_ACTIVATE) {
		d->st.refused++;
		event(d, TERN_EV_REFUSED, ag->state, ag->state, TERN_E_STATE, w->release_id, d->gen,
		      "nothing staged to activate");
		settle(d);
		return;
	}
	if (d->attempted == d->gen &&
	    (ag->state == TERN_ST_FAILED || ag->state == TERN_ST_ROLLED_BACK ||
	     ag->state == TERN_ST_CONFIRMED)) {
		settle(d); /* tried once for this generation: the outcome stands */
		return;
	}
	if (d->ph == PH_IDLE)
		fetch_manifest(d, w->release_id);
}

static void on_desired(struct tern_mqttdev *d, const struct item *it)
{
	const uint8_t *p = it->payload;
	size_t len = it->len;
	if (len == 0)
		return; /* cleared */
	if (d->have_desired && len == d->desired_len && !memcmp(p, d->desired, len))
		return; /* the one we hold (redelivered retained copy) */
	struct tern_desired nd;
	int rc = len > sizeof(d->desired)
		     ? TERN_E_TOO_LARGE
		     : tern_desired_open(&nd, p, len, d->b.keyring, d->cfg.device_id, d->gen);
	struct tern_agent *ag = d->b.agent;
	if (rc) {
		/* Decoded fields of a refused message are not trusted: for people only. */
		struct tern_desired peek;
		struct tern_sign1 s1;
		uint64_t g = 0;
		const char *rel = NULL;
		if (tern_cose_sign1_parse(&s1, p, len) == 0 &&
		    tern_desired_decode(&peek, s1.payload, s1.payload_len) == 0) {
			g = peek.generation;
			rel = peek.release_id;
		}
		char detail[TERN_EVENT_DETAIL_MAX + 1];
		snprintf(detail, sizeof(detail), "desired state refused: %s", tern_errname(rc));
		d->st.refused++;
		event(d, TERN_EV_REFUSED, ag->state, ag->state, rc, rel, g, detail);
		return;
	}
	memcpy(d->desired, p, len);
	d->desired_len = len;
	d->d = nd;
	d->gen = nd.generation;
	d->have_desired = true;
	d->dirty = true;
	record_store(d);
	publish_state(d);
	/* A new command replaces a fetch of another release. */
	if (d->ph != PH_IDLE && strcmp(d->rel, nd.release_id))
		fetch_stop(d);
	reconcile(d);
}

static void on_message(struct tern_mqttdev *d, const struct item *it)
{
	if (topic_is(it, d->t_desired))
		on_desired(d, it);
	else if (d->ph == PH_MANIFEST && topic_is(it, d->sub))
		on_manifest(d, it);
	else if (d->ph == PH_MANIFEST)
		d->index_ahead = false; /* an index before its manifest (published while we
					   waited): it is asked for again once it is wanted */
	else if (d->ph == PH_INDEX && topic_is(it, d->sub))
		on_index(d, it);
	else if (d->ph == PH_WINDOW)
		on_chunk(d, it);
}

static void on_up(struct tern_mqttdev *d)
{
	d->connected = true;
	d->connecting = false;
	d->st.connects++;
	publish(d, d->t_online, TERN_ONLINE_PAYLOAD, strlen(TERN_ONLINE_PAYLOAD), true);
	if (d->reported_valid && d->reported != d->b.agent->state) /* what the reboot did */
		sync_state_about(d, trial_release(d), reboot_outcome(d->b.agent->state));
	else
		publish_state(d);
	subscribe(d, d->t_desired);
	d->n_kept = 0; /* a clean session: the broker kept none */
	d->index_ahead = false;
	if (d->ph != PH_IDLE) {
		/* The broker may have lost our session: the fetch subscription again. */
		d->deadline = d->now + d->cfg.fetch_timeout_ms;
		if (d->ph == PH_WINDOW) {
			d->exact_mask = 0; /* a clean session: the broker kept none */
			if (!window_subscribe(d))
				return;
		} else {
			subscribe(d, d->sub);
			d->sub_on = true;
		}
	}
	reconcile(d);
}

/* ---- connection */

static int client_new(struct tern_mqttdev *d);

static int do_connect(struct tern_mqttdev *d)
{
	if (!d->client && client_new(d))
		return TERN_E_BROKER;
	MQTTAsync_connectOptions cn = MQTTAsync_connectOptions_initializer;
	MQTTAsync_SSLOptions ssl = MQTTAsync_SSLOptions_initializer;
	MQTTAsync_willOptions wo = MQTTAsync_willOptions_initializer;
	cn.keepAliveInterval = d->cfg.keepalive_s ? (int)d->cfg.keepalive_s : 20;
	cn.cleansession = 1;
	cn.automaticReconnect = 1;
	cn.minRetryInterval = 1;
	cn.maxRetryInterval = 4;
	cn.connectTimeout = 10;
	cn.maxInflight = 32;
	cn.username = d->cfg.username;
	cn.password = d->cfg.password;
	cn.onSuccess = on_connect_ok;
	cn.onFailure = on_connect_fail;
	cn.context = d;
	if (!strncmp(d->cfg.uri, "ssl://", 6)) {
		ssl.trustStore = d->cfg.cafile;
		ssl.keyStore = d->cfg.cert;
		ssl.privateKey = d->cfg.cert_key;
		ssl.enableServerCertAuth = 1;
		ssl.verify = 1;
		cn.ssl = &ssl;
	}
	wo.topicName = d->t_online;
	wo.message = TERN_OFFLINE_PAYLOAD;
	wo.retained = 1;
	wo.qos = 1;
	cn.will = &wo;
	d->connecting = true;
	return MQTTAsync_connect(d->client, &cn) == MQTTASYNC_SUCCESS ? 0 : TERN_E_BROKER;
}

int tern_mqttdev_uri(const char *url, char *out, size_t size)
{
	const char *rest;
	const char *scheme;
	int port;
	if (!strncmp(url, "mqtt://", 7) || !strncmp(url, "tcp://", 6)) {
		scheme = "tcp";
		port = 1883;
		rest = strstr(url, "://") + 3;
	} else if (!strncmp(url, "mqtts://", 8) || !strncmp(url, "ssl://", 6)) {
		scheme = "ssl";
		port = 8883;
		rest = strstr(url, "://") + 3;
	} else {
		return TERN_E_INVAL;
	}
	if (!*rest || strchr(rest, '/'))
		return TERN_E_INVAL;
	int n = strchr(rest, ':') ? snprintf(out, size, "%s://%s", scheme, rest)
				  : snprintf(out, size, "%s://%s:%d", scheme, rest, port);
	return n < 0 || (size_t)n >= size ? TERN_E_TOO_LARGE : 0;
}

/* A fresh paho client. After an explicit disconnect of a client that paho had
 * reconnected by itself, a new connect on it never completed (paho 1.3.11): a drop or a
 * power cut therefore destroys the client and makes a new one. */
static int client_new(struct tern_mqttdev *d)
{
	MQTTAsync_createOptions co = MQTTAsync_createOptions_initializer;
	co.sendWhileDisconnected = 1;
	co.maxBufferedMessages = 64;
	if (MQTTAsync_createWithOptions(
		&d->client, d->cfg.uri, d->cfg.client_id ? d->cfg.client_id : d->cfg.device_id,
		MQTTCLIENT_PERSISTENCE_NONE, NULL, &co) != MQTTASYNC_SUCCESS) {
		d->client = NULL;
		return TERN_E_BROKER;
	}
	if (MQTTAsync_setCallbacks(d->client, d, on_lost, on_arrived, NULL) != MQTTASYNC_SUCCESS ||
	    MQTTAsync_setConnected(d->client, d, on_connected) != MQTTASYNC_SUCCESS) {
		MQTTAsync_destroy(&d->client);
		d->client = NULL;
		return TERN_E_BROKER;
	}
	return 0;
}

int tern_mqttdev_create(struct tern_mqttdev **out, const struct tern_mqttdev_config *cfg,
			const struct tern_mqttdev_board *board)
{
	if (!tern_topic_id_valid(cfg->device_id, TERN_DEVICE_ID_MAX) ||
	    !tern_topic_prefix_valid(cfg->prefix) || !board->agent || !board->load ||
	    !board->store || !board->reboot)
		return TERN_E_INVAL;
	tern_paho_quiet();
	struct tern_mqttdev *d = calloc(1, sizeof(*d));
	if (!d)
		return TERN_E_NOMEM;
	d->cfg = *cfg;
	d->b = *board;
	if (!d->cfg.retry_min_ms)
		d->cfg.retry_min_ms = 500;
	if (d->cfg.retry_max_ms < d->cfg.retry_min_ms)
		d->cfg.retry_max_ms = d->cfg.retry_min_ms * 32;
	if (!d->cfg.max_attempts)
		d->cfg.max_attempts = 8;
	if (!d->cfg.fetch_timeout_ms)
		d->cfg.fetch_timeout_ms = 10000;
	d->rng = cfg->seed * 2654435761u + 0x9e3779b9u;
	if (!d->rng)
		d->rng = 1;
	pthread_mutex_init(&d->lock, NULL);
	if (!tern_topic_dev(cfg->prefix, cfg->device_id, TERN_DEV_DESIRED, d->t_desired,
			    sizeof(d->t_desired)) ||
	    !tern_topic_dev(cfg->prefix, cfg->device_id, TERN_DEV_STATE, d->t_state,
			    sizeof(d->t_state)) ||
	    !tern_topic_dev(cfg->prefix, cfg->device_id, TERN_DEV_EVENTS, d->t_events,
			    sizeof(d->t_events)) ||
	    !tern_topic_dev(cfg->prefix, cfg->device_id, TERN_DEV_ONLINE, d->t_online,
			    sizeof(d->t_online))) {
		free(d);
		return TERN_E_INVAL;
	}
	if (client_new(d)) {
		pthread_mutex_destroy(&d->lock);
		free(d);
		return TERN_E_BROKER;
	}
	*out = d;
	return 0;
}

int tern_mqttdev_start(struct tern_mqttdev *d)
{
	int rc = record_load(d);
	if (rc)
		return rc;
	d->halted = false;
	d->reported_valid = false;
	d->ph = PH_IDLE;
	d->sub[0] = '\0';
	d->sub_on = false;
	d->n_kept = 0;
	d->exact_mask = 0;
	/* A board whose reboot ends the process (boards/linux) starts again in a new one:
	 * the state reported before it comes from the record, so the first report after
	 * connecting carries the reboot's outcome as a transition (staged -> confirmed). */
	d->reported = d->restored_valid ? d->restored : d->b.agent->state;
	d->reported_valid = true;
	return do_connect(d);
}

static void drain(struct tern_mqttdev *d)
{
	pthread_mutex_lock(&d->lock);
	struct item *it = d->head;
	d->head = d->tail = NULL;
	d->epoch++;
	pthread_mutex_unlock(&d->lock);
	while (it) {
		struct item *next = it->next;
		free_item(it);
		it = next;
	}
}

/* Drops the connection; a DISCONNECT suppresses the will, so we say offline first. The
 * client is replaced by a new one (see client_new()). */
static void drop_connection(struct tern_mqttdev *d)
{
	flush_state(d);
	if (d->client) {
		if (MQTTAsync_isConnected(d->client)) {
			publish(d, d->t_online, TERN_OFFLINE_PAYLOAD, strlen(TERN_OFFLINE_PAYLOAD),
				true);
			outbox_flush(d);
			MQTTAsync_disconnectOptions dc = MQTTAsync_disconnectOptions_initializer;
			dc.timeout = 100;
			MQTTAsync_disconnect(d->client, &dc);
			for (int i = 0; i < 20 && MQTTAsync_isConnected(d->client); i++) {
				struct timespec ts = {0, 5 * 1000 * 1000};
				nanosleep(&ts, NULL);
			}
		}
		outbox_flush(d);
		MQTTAsync_destroy(&d->client);
		d->client = NULL;
	}
	d->connected = false;
	d->connecting = false;
}

void tern_mqttdev_net_drop(struct tern_mqttdev *d, uint64_t now_ms, unsigned off_ms)
{
	if (d->halted)
		return;
	drop_connection(d);
	drain(d);
	d->reconnect_at = now_ms + off_ms;
}

void tern_mqttdev_stop(struct tern_mqttdev *d)
{
	drop_connection(d);
	drain(d);
	d->ph = PH_IDLE;
	d->sub[0] = '\0';
	d->sub_on = false;
	d->n_kept = 0;
	d->bad_mask = 0;
	d->exact_mask = 0;
	d->retry_at = 0;
	d->reconnect_at = 0;
	d->halted = true;
}

int tern_mqttdev_restart(struct tern_mqttdev *d)
{
	drain(d);
	return tern_mqttdev_start(d);
}

void tern_mqttdev_step(struct tern_mqttdev *d, uint64_t now_ms, uint64_t *next_ms)
{
	d->now = now_ms;
	uint64_t next = now_ms + 1000;
	if (d->halted) {
		*next_ms = next;
		return;
	}
	/* Everything queued, in one take (one lock, not two per message). */
	pthread_mutex_lock(&d->lock);
	struct item *list = d->head;
	d->head = d->tail = NULL;
	pthread_mutex_unlock(&d->lock);
	while (list) {
		struct item *it = list;
		bool hold = it->kind == IT_MSG && d->ph == PH_WINDOW && d->cfg.chunk_delay_ms &&
			    now_ms < d->next_chunk_at && !topic_is(it, d->t_desired);
		if (hold) {
			/* Slow link: the rest waits, in front of what arrived meanwhile. */
			struct item *last = list;
			while (last->next)
				last = last->next;
			pthread_mutex_lock(&d->lock);
			last->next = d->head;
			if (!d->head)
				d->tail = last;
			d->head = list;
			pthread_mutex_unlock(&d->lock);
			list = NULL;
			if (d->next_chunk_at < next)
				next = d->next_chunk_at;
			break;
		}
		list = it->next;
		if (it->epoch == d->epoch && !d->halted) { /* epoch: only this thread changes it */
			switch (it->kind) {
			case IT_MSG:
				if (d->ph == PH_WINDOW && d->cfg.chunk_delay_ms &&
				    !topic_is(it, d->t_desired))
					d->next_chunk_at = now_ms + d->cfg.chunk_delay_ms;
				on_message(d, it);
				break;
			case IT_CONNECTED:
				if (!d->connected)
					on_up(d); /* once, whichever callback told us */
				break;
			case IT_LOST:
				d->connected = false;
				break;
			case IT_CONNECT_FAILED:
				d->connected = false;
				d->connecting = false;
				d->reconnect_at = now_ms + 500 + rnd(d) % 1500;
				break;
			}
		}
		free_item(it);
	}
	while (list) { /* halted meanwhile: the rest is stale */
		struct item *it = list;
		list = it->next;
		free_item(it);
	}
	if (!d->halted) {
		if (d->reconnect_at && now_ms >= d->reconnect_at && !d->connected &&
		    !d->connecting) {
			d->reconnect_at = 0;
			if (do_connect(d))
				d->reconnect_at = now_ms + 1000;
		}
		if (d->connected && d->ph != PH_IDLE) {
			if (d->retry_at && now_ms >= d->retry_at)
				fetch_retry(d);
			else if (!d->retry_at && now_ms >= d->deadline)
				fetch_retry(d); /* nothing for a while: ask again */
		}
		flush_state(d);
		if (d->dirty)
			record_store(d);
		if (d->reconnect_at && d->reconnect_at < next)
			next = d->reconnect_at;
		if (d->ph != PH_IDLE) {
			uint64_t t = d->retry_at ? d->retry_at : d->deadline;
			if (t < next)
				next = t;
		}
	}
	*next_ms = next > now_ms ? next : now_ms + 1;
}

void tern_mqttdev_agent_changed(struct tern_mqttdev *d, uint64_t now_ms, const char *detail)
{
	struct tern_agent *ag = d->b.agent;
	d->now = now_ms;
	if (d->halted)
		return;
	bool installing = ag->state == TERN_ST_DOWNLOADING || ag->state == TERN_ST_VERIFYING ||
			  ag->state == TERN_ST_STAGED;
	if (installing && d->ph == PH_IDLE && ag->job.release_id[0]) {
		/* Not our download: the slot it writes holds that release now. */
		for (unsigned i = 0; i < ag->job.n_comp; i++)
			if (ag->job.comp[i].pair == TERN_PAIR_FW &&
			    strcmp(d->slot_rel[ag->job.comp[i].slot & 1u], ag->job.release_id)) {
				snprintf(d->slot_rel[ag->job.comp[i].slot & 1u],
					 sizeof(d->slot_rel[0]), "%s", ag->job.release_id);
				d->dirty = true;
			}
	}
	if (d->reported_valid && d->reported != ag->state)
		sync_state_about(d, ag->job.release_id[0] ? ag->job.release_id : NULL, detail);
	else
		publish_state(d); /* progress */
	d->reported_valid = true;
	reconcile(d);
	flush_state(d);
}

void tern_mqttdev_stats(struct tern_mqttdev *d, struct tern_mqttdev_stats *st)
{
	*st = d->st;
	st->connected = d->connected;
	st->halted = d->halted;
	st->generation = d->gen;
	st->settled = !d->have_desired || d->done == d->gen;
}

void tern_mqttdev_destroy(struct tern_mqttdev *d)
{
	if (!d)
		return;
	if (d->client) {
		if (!d->halted)
			flush_state(d);
		outbox_flush(d);
		if (MQTTAsync_isConnected(d->client)) {
			MQTTAsync_disconnectOptions dc = MQTTAsync_disconnectOptions_initializer;
			dc.timeout = 500;
			MQTTAsync_disconnect(d->client, &dc);
			for (int i = 0; i < 50 && MQTTAsync_isConnected(d->client); i++) {
				struct timespec ts = {0, 10 * 1000 * 1000};
				nanosleep(&ts, NULL);
			}
		}
		MQTTAsync_destroy(&d->client);
	}
	drain(d);
	pthread_mutex_destroy(&d->lock);
	free(d);
}
