/*
 * A small MQTT client over paho's MQTTAsync for the host commands. Publishes are QoS 1
 * and kept in our own window of un-acknowledged messages (MQTT_WINDOW): paho's own
 * queue releases queued publishes only about once a second when its in-flight window is
 * full (DEPENDENCIES.md), so mqtt_publish() waits for a PUBACK instead of queueing.
 * Messages arrive on paho's thread through the callback given to mqtt_connect().
 */
#ifndef TERN_HOST_MQTT_H
#define TERN_HOST_MQTT_H

#include "broker.h"

#include <stdbool.h>
#include <stddef.h>

#define MQTT_WINDOW	 16    /* un-acknowledged QoS 1 publishes at most */
#define MQTT_TIMEOUT_MS	 15000 /* connect, subscribe, one PUBACK */
#define MQTT_MAX_FILTERS 8     /* subscriptions kept for subscribing again */

struct mqtt;

/*
 * Called on paho's thread for each message; @topic and @payload are valid only during
 * the call. Must not call back into the client.
 */
typedef void (*mqtt_msg_fn)(void *ctx, const char *topic, size_t topic_len, const void *payload,
			    size_t len, bool retained);

/* Optional last will: published retained by the broker if we vanish. */
struct mqtt_will {
	const char *topic;
	const char *payload;
};

struct mqtt_params {
	const char *client_id;
	const struct mqtt_will *will; /* optional */
	mqtt_msg_fn on_msg;	      /* optional: NULL for a publish-only client */
	void *ctx;
	/*
	 * Keep the session: clean session off, so the broker keeps our subscriptions and
	 * queues QoS 1 messages while we are away (even between runs, under the same
	 * client id), and reconnect by ourselves when the connection drops, subscribing
	 * again in case the broker lost the session.
	 */
	bool keep_session;
};

/*
 * Connects to the broker in @o (URL, credentials, TLS files) as described by @p
 * (MQTT 3.1.1). On success *@out is the caller's to close with mqtt_close(). On failure
 * prints one line naming the broker and the reason and returns TERN_E_BROKER or
 * TERN_E_NOMEM.
 */
int mqtt_connect(struct mqtt **out, const struct broker_opts *o, const struct mqtt_params *p);

/*
 * mqtt_connect() in two halves, for a caller with work to do meanwhile. paho's receive
 * thread, started by a process's first connect, finds no socket yet and sleeps 100 ms
 * before it looks again, so a connect takes about 0.1 s however near the broker is.
 * mqtt_connect_start() returns once the connect is under way (*@out is then the
 * caller's), or fails as mqtt_connect() does; mqtt_connect_pending() is true until it
 * completes; mqtt_connect_finish() waits for it, and on failure prints the line, closes
 * the client, sets *@m to NULL and returns the error.
 */
int mqtt_connect_start(struct mqtt **out, const struct broker_opts *o, const struct mqtt_params *p);
bool mqtt_connect_pending(struct mqtt *m);
int mqtt_connect_finish(struct mqtt **m);

/*
 * Publishes @len bytes at QoS 1, retained or not, waiting first while MQTT_WINDOW
 * publishes are unacknowledged. Returns 0 once handed to paho, or TERN_E_BROKER
 * (connection lost, broker refused an earlier publish, or no PUBACK in time).
 */
int mqtt_publish(struct mqtt *m, const char *topic, const void *payload, size_t len, bool retained);

/* Waits until every publish is acknowledged. Returns 0 or TERN_E_BROKER. */
int mqtt_flush(struct mqtt *m);

/*
 * PUBACKs received so far, and publishes handed to paho so far. A broker acknowledges
 * QoS 1 publishes in the order it received them (MQTT 3.1.1 section 4.6), so when
 * mqtt_acked() reaches the value mqtt_issued() had after a publish, that publish and
 * every one before it are acknowledged.
 */
unsigned long long mqtt_acked(struct mqtt *m);
unsigned long long mqtt_issued(struct mqtt *m);

/* Subscribes to @filter at QoS 1 and waits for the SUBACK. 0 or TERN_E_BROKER. */
int mqtt_subscribe(struct mqtt *m, const char *filter);

/*
 * Connection state changes since the last call: sets @lost when the connection dropped,
 * @back when it came back (keep_session clients reconnect by themselves). Returns true
 * while connected.
 */
bool mqtt_status(struct mqtt *m, bool *lost, bool *back);

/* Disconnects (waiting briefly for in-flight work) and frees @m; NULL is fine. */
void mqtt_close(struct mqtt *m);

#endif
