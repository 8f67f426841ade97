/* MQTT client wrapper over paho MQTTAsync with our own publish window. */
#include "mqtt.h"

#include "tern/tern_err.h"
#include "tern/tern_paho.h"

#include <MQTTAsync.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct mqtt {
	MQTTAsync client;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	/* Guarded by lock. */
	bool op_done; /* connect or subscribe finished */
	int op_rc;    /* its result: 0 or TERN_E_BROKER */
	char op_err[240];
	char tls_err[160]; /* first OpenSSL error paho reported */
	bool tls;
	unsigned inflight;
	unsigned long long acked;
	unsigned long long issued; /* publishes handed to paho */
	int pub_rc;		   /* first publish failure, sticky */
	bool lost;		   /* not connected now */
	bool lost_news;		   /* dropped since the last mqtt_status() */
	bool back_news;		   /* reconnected since the last mqtt_status() */
	bool keep_session;
	char *filters[MQTT_MAX_FILTERS];
	size_t n_filters;
	mqtt_msg_fn on_msg;
	void *ctx;
	char uri[300];
	char broker[300]; /* as the user gave it, for messages */
};

static void deadline_in(struct timespec *ts, long ms)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

static void finish_op(struct mqtt *m, int rc, const char *why)
{
	pthread_mutex_lock(&m->lock);
	m->op_done = true;
	m->op_rc = rc;
	if (why)
		snprintf(m->op_err, sizeof(m->op_err), "%s", why);
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
}

static void on_connect_ok(void *ctx, MQTTAsync_successData *resp)
{
	(void)resp;
	finish_op(ctx, 0, NULL);
}

/* Names the reason a connect failed, from paho's code or the broker's CONNACK. */
static const char *connect_reason(const MQTTAsync_failureData *resp)
{
	if (!resp)
		return "no response";
	switch (resp->code) {
	case 1:
		return "broker refused: unacceptable protocol version";
	case 2:
		return "broker refused the client id";
	case 3:
		return "broker unavailable";
	case 4:
		return "broker refused: bad username or password";
	case 5:
		return "broker refused: not authorised";
	default:
		break;
	}
	if (resp->message)
		return resp->message;
	return "cannot connect (is the broker running, and the URL right?)";
}

static void on_connect_fail(void *ctx, MQTTAsync_failureData *resp)
{
	struct mqtt *m = ctx;
	char why[200];
	pthread_mutex_lock(&m->lock);
	bool refused = resp && resp->code >= 1 && resp->code <= 5; /* a CONNACK code */
	if (m->tls_err[0])
		snprintf(why, sizeof(why), "TLS: %s", m->tls_err);
	else if (m->tls && !refused)
		snprintf(why, sizeof(why),
			 "%s (is the broker running? with TLS: is --cafile the CA that signed the "
			 "broker's certificate, and does that certificate name this host?)",
			 connect_reason(resp));
	else
		snprintf(why, sizeof(why), "%s", connect_reason(resp));
	pthread_mutex_unlock(&m->lock);
	finish_op(ctx, TERN_E_BROKER, why);
}

/* OpenSSL's reason for a failed handshake, e.g. "certificate verify failed". */
static int on_ssl_error(const char *str, size_t len, void *ctx)
{
	struct mqtt *m = ctx;
	pthread_mutex_lock(&m->lock);
	if (!m->tls_err[0]) {
		/* "error:0A000086:SSL routines::certificate verify failed" -> the last part */
		const char *end = str + len, *p = str;
		for (const char *q = str; q < end; q++)
			if (*q == ':')
				p = q + 1;
		while (end > p && (end[-1] == '\n' || end[-1] == '\r'))
			end--;
		snprintf(m->tls_err, sizeof(m->tls_err), "%.*s", (int)(end - p), p);
	}
	pthread_mutex_unlock(&m->lock);
	return 0;
}

static void on_sub_ok(void *ctx, MQTTAsync_successData *resp)
{
	if (resp && resp->alt.qos == 0x80)
		finish_op(ctx, TERN_E_BROKER, "broker refused the subscription (ACL?)");
	else
		finish_op(ctx, 0, NULL);
}

static void on_sub_fail(void *ctx, MQTTAsync_failureData *resp)
{
	(void)resp;
	finish_op(ctx, TERN_E_BROKER, "broker refused the subscription (ACL?)");
}

static void on_pub_ok(void *ctx, MQTTAsync_successData *resp)
{
	(void)resp;
	struct mqtt *m = ctx;
	pthread_mutex_lock(&m->lock);
	m->inflight--;
	m->acked++;
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
}

static void on_pub_fail(void *ctx, MQTTAsync_failureData *resp)
{
	(void)resp;
	struct mqtt *m = ctx;
	pthread_mutex_lock(&m->lock);
	m->inflight--;
	if (!m->pub_rc)
		m->pub_rc = TERN_E_BROKER;
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
}

static void on_lost(void *ctx, char *cause)
{
	(void)cause;
	struct mqtt *m = ctx;
	pthread_mutex_lock(&m->lock);
	m->lost = true;
	m->lost_news = true;
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
}

/* After paho reconnected by itself: subscribe again (the broker may have lost the
 * session, e.g. restarted without persistence); nothing waits for these SUBACKs. */
static void on_connected(void *ctx, char *cause)
{
	(void)cause;
	struct mqtt *m = ctx;
	pthread_mutex_lock(&m->lock);
	bool was_lost = m->lost;
	m->lost = false;
	if (was_lost)
		m->back_news = true;
	pthread_mutex_unlock(&m->lock);
	if (!was_lost)
		return; /* the first connect: mqtt_subscribe() does it */
	for (size_t i = 0; i < m->n_filters; i++)
		MQTTAsync_subscribe(m->client, m->filters[i], 1, NULL);
}

static int on_arrived(void *ctx, char *topic, int topic_len, MQTTAsync_message *msg)
{
	struct mqtt *m = ctx;
	size_t tlen = topic_len > 0 ? (size_t)topic_len : strlen(topic);
	if (m->on_msg)
		m->on_msg(m->ctx, topic, tlen, msg->payload, (size_t)msg->payloadlen,
			  msg->retained != 0);
	MQTTAsync_freeMessage(&msg);
	MQTTAsync_free(topic);
	return 1;
}

/* Waits for the pending connect or subscribe; returns its result. */
static int wait_op(struct mqtt *m)
{
	struct timespec until;
	deadline_in(&until, MQTT_TIMEOUT_MS);
	pthread_mutex_lock(&m->lock);
	while (!m->op_done) {
		if (pthread_cond_timedwait(&m->cond, &m->lock, &until) == ETIMEDOUT) {
			snprintf(m->op_err, sizeof(m->op_err), "no answer from the broker in %d s",
				 MQTT_TIMEOUT_MS / 1000);
			m->op_rc = TERN_E_BROKER;
			break;
		}
	}
	int rc = m->op_rc;
	m->op_done = false;
	pthread_mutex_unlock(&m->lock);
	return rc;
}

int mqtt_connect_start(struct mqtt **out, const struct broker_opts *o, const struct mqtt_params *p)
{
	const char *client_id = p->client_id;
	const struct mqtt_will *will = p->will;
	mqtt_msg_fn on_msg = p->on_msg;
	void *ctx = p->ctx;
	struct mqtt *m = calloc(1, sizeof(*m));
	if (!m)
		return TERN_E_NOMEM;
	pthread_mutex_init(&m->lock, NULL);
	pthread_cond_init(&m->cond, NULL);
	m->on_msg = on_msg;
	m->ctx = ctx;
	m->keep_session = p->keep_session;
	snprintf(m->uri, sizeof(m->uri), "%s", o->uri);

	tern_paho_quiet();
	MQTTAsync_createOptions co = MQTTAsync_createOptions_initializer;
	co.maxBufferedMessages = MQTT_WINDOW * 2;
	int prc = MQTTAsync_createWithOptions(&m->client, o->uri, client_id,
					      MQTTCLIENT_PERSISTENCE_NONE, NULL, &co);
	if (prc != MQTTASYNC_SUCCESS) {
		fprintf(stderr, "tern: broker %s: cannot create the MQTT client (code %d)\n",
			broker_opt(o, BF_BROKER), prc);
		free(m);
		return TERN_E_BROKER;
	}
	if (on_msg)
		prc = MQTTAsync_setCallbacks(m->client, m, on_lost, on_arrived, NULL);
	else
		prc = MQTTAsync_setConnectionLostCallback(m->client, m, on_lost);

	MQTTAsync_connectOptions cn = MQTTAsync_connectOptions_initializer;
	MQTTAsync_SSLOptions ssl = MQTTAsync_SSLOptions_initializer;
	MQTTAsync_willOptions wo = MQTTAsync_willOptions_initializer;
	cn.keepAliveInterval = 30;
	cn.cleansession = p->keep_session ? 0 : 1;
	if (p->keep_session) {
		cn.automaticReconnect = 1;
		cn.minRetryInterval = 1;
		cn.maxRetryInterval = 30;
		if (prc == MQTTASYNC_SUCCESS)
			prc = MQTTAsync_setConnected(m->client, m, on_connected);
	}
	cn.connectTimeout = MQTT_TIMEOUT_MS / 1000 - 5; /* paho gives up before we do */
	cn.maxInflight = MQTT_WINDOW * 2;
	cn.username = broker_opt(o, BF_USERNAME);
	cn.password = broker_opt(o, BF_PASSWORD);
	cn.onSuccess = on_connect_ok;
	cn.onFailure = on_connect_fail;
	cn.context = m;
	m->tls = o->tls;
	if (o->tls) {
		ssl.trustStore = broker_opt(o, BF_CAFILE);
		ssl.keyStore = broker_opt(o, BF_CERT);
		ssl.privateKey = broker_opt(o, BF_KEY);
		ssl.enableServerCertAuth = 1;
		ssl.verify = 1;
		ssl.ssl_error_cb = on_ssl_error;
		ssl.ssl_error_context = m;
		cn.ssl = &ssl;
	}
	if (will) {
		wo.topicName = will->topic;
		wo.message = will->payload;
		wo.retained = 1;
		wo.qos = 1;
		cn.will = &wo;
	}
	if (prc == MQTTASYNC_SUCCESS)
		prc = MQTTAsync_connect(m->client, &cn);
	snprintf(m->broker, sizeof(m->broker), "%s", broker_opt(o, BF_BROKER));
	if (prc != MQTTASYNC_SUCCESS) {
		fprintf(stderr, "tern: broker %s: cannot connect\n", m->broker);
		mqtt_close(m);
		return TERN_E_BROKER;
	}
	*out = m;
	return 0;
}

int mqtt_connect_finish(struct mqtt **m)
{
	int rc = wait_op(*m);
	if (rc) {
		fprintf(stderr, "tern: broker %s: %s\n", (*m)->broker,
			(*m)->op_err[0] ? (*m)->op_err : "cannot connect");
		mqtt_close(*m);
		*m = NULL;
	}
	return rc;
}

bool mqtt_connect_pending(struct mqtt *m)
{
	pthread_mutex_lock(&m->lock);
	bool pending = !m->op_done;
	pthread_mutex_unlock(&m->lock);
	return pending;
}

int mqtt_connect(struct mqtt **out, const struct broker_opts *o, const struct mqtt_params *p)
{
	int rc = mqtt_connect_start(out, o, p);
	return rc ? rc : mqtt_connect_finish(out);
}

int mqtt_subscribe(struct mqtt *m, const char *filter)
{
	if (m->n_filters == MQTT_MAX_FILTERS)
		return TERN_E_TOO_LARGE;
	m->filters[m->n_filters] = strdup(filter);
	if (!m->filters[m->n_filters])
		return TERN_E_NOMEM;
	m->n_filters++;
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	ro.onSuccess = on_sub_ok;
	ro.onFailure = on_sub_fail;
	ro.context = m;
	if (MQTTAsync_subscribe(m->client, filter, 1, &ro) != MQTTASYNC_SUCCESS)
		return TERN_E_BROKER;
	int rc = wait_op(m);
	if (rc)
		fprintf(stderr, "tern: broker %s: subscribe %s: %s\n", m->uri, filter, m->op_err);
	return rc;
}

/* Waits until fewer than @limit publishes are in flight. Called with the lock held. */
static int wait_window(struct mqtt *m, unsigned limit)
{
	struct timespec until;
	deadline_in(&until, MQTT_TIMEOUT_MS);
	while (m->inflight >= limit && m->inflight > 0 && !m->lost && !m->pub_rc)
		if (pthread_cond_timedwait(&m->cond, &m->lock, &until) == ETIMEDOUT)
			return TERN_E_BROKER;
	return m->lost || m->pub_rc ? TERN_E_BROKER : 0;
}

int mqtt_publish(struct mqtt *m, const char *topic, const void *payload, size_t len, bool retained)
{
	if (len > (size_t)INT32_MAX)
		return TERN_E_TOO_LARGE;
	pthread_mutex_lock(&m->lock);
	int rc = wait_window(m, MQTT_WINDOW);
	if (!rc) {
		m->inflight++;
		m->issued++;
	}
	pthread_mutex_unlock(&m->lock);
	if (rc)
		return rc;
	MQTTAsync_message msg = MQTTAsync_message_initializer;
	msg.payload = (void *)(uintptr_t)payload;
	msg.payloadlen = (int)len;
	msg.qos = 1;
	msg.retained = retained;
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	ro.onSuccess = on_pub_ok;
	ro.onFailure = on_pub_fail;
	ro.context = m;
	if (MQTTAsync_sendMessage(m->client, topic, &msg, &ro) != MQTTASYNC_SUCCESS) {
		pthread_mutex_lock(&m->lock);
		m->inflight--;
		m->issued--;
		pthread_mutex_unlock(&m->lock);
		return TERN_E_BROKER;
	}
	return 0;
}

int mqtt_flush(struct mqtt *m)
{
	pthread_mutex_lock(&m->lock);
	int rc = wait_window(m, 1);
	pthread_mutex_unlock(&m->lock);
	return rc;
}

unsigned long long mqtt_acked(struct mqtt *m)
{
	pthread_mutex_lock(&m->lock);
	unsigned long long n = m->acked;
	pthread_mutex_unlock(&m->lock);
	return n;
}

unsigned long long mqtt_issued(struct mqtt *m)
{
	pthread_mutex_lock(&m->lock);
	unsigned long long n = m->issued;
	pthread_mutex_unlock(&m->lock);
	return n;
}

bool mqtt_status(struct mqtt *m, bool *lost, bool *back)
{
	pthread_mutex_lock(&m->lock);
	*lost = m->lost_news;
	*back = m->back_news;
	m->lost_news = m->back_news = false;
	bool connected = !m->lost;
	pthread_mutex_unlock(&m->lock);
	return connected;
}

void mqtt_close(struct mqtt *m)
{
	if (!m)
		return;
	if (m->client) {
		if (MQTTAsync_isConnected(m->client)) {
			MQTTAsync_disconnectOptions dc = MQTTAsync_disconnectOptions_initializer;
			dc.timeout = 2000;
			MQTTAsync_disconnect(m->client, &dc);
			for (int i = 0; i < 200 && MQTTAsync_isConnected(m->client); i++) {
				struct timespec ts = {0, 10 * 1000 * 1000};
				nanosleep(&ts, NULL);
			}
		}
		MQTTAsync_destroy(&m->client);
	}
	for (size_t i = 0; i < m->n_filters; i++)
		free(m->filters[i]);
	pthread_cond_destroy(&m->cond);
	pthread_mutex_destroy(&m->lock);
	free(m);
}
