/*
 * The device agent's MQTT transport (docs/mqtt.md, "The device side"), shared by every
 * board that runs paho (boards/sim's fleet simulator, boards/linux). It only moves bytes
 * between the broker and the board's agent: it verifies desired states, fetches the
 * manifest, the chunk indexes and the chunks one window at a time, feeds the agent,
 * retries with capped backoff and jitter, and reports state and events.
 *
 * Threading: paho's callbacks only queue what arrives (a copy; paho's is freed on its
 * thread) and call the owner's notify hook; all agent and flash work happens in
 * tern_mqttdev_step(), which the owner calls from one thread per device (a board's main
 * loop, or a fleet worker owning many devices). Nothing is global: many devices per
 * process (paho's trace level, which is, is set once: tern/tern_paho.h).
 */
#ifndef TERN_MQTTDEV_H
#define TERN_MQTTDEV_H

#include "tern/tern_agent.h"
#include "tern/tern_cose.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TERN_MQTTDEV_RECORD_MAX 2048 /* the transport's durable record (bytes) */

/* What the board provides. Every hook is called from tern_mqttdev_step()'s thread. */
struct tern_mqttdev_board {
	struct tern_agent *agent; /* started (tern_agent_start) before the transport runs */
	const struct tern_keyring *keyring;
	const char *board_id;
	/* The transport's small durable record (accepted desired state, outcome, event
	 * counter). load: *len = 0 when there is none yet. Both return 0 or TERN_E_*. */
	int (*load)(void *ctx, uint8_t *buf, size_t size, size_t *len);
	int (*store)(void *ctx, const uint8_t *buf, size_t len);
	/* Reboots into the armed trial: bootloader, agent start, health check, confirm or
	 * roll back (and reboot again). Returns when the agent runs again: 0, or an error
	 * (the device is then off). A board that really reboots does not return. */
	int (*reboot)(void *ctx);
	/* Power was lost (TERN_E_POWER_CUT from the flash): the transport has stopped and
	 * waits for tern_mqttdev_restart(). May be NULL. */
	void (*power_lost)(void *ctx);
	/* Another transport of the same device (USB) has an install in flight: the
	 * transport leaves the agent alone - it does not offer, cancel or activate, and a
	 * desired state waits - until tern_mqttdev_agent_changed() finds it free. May be
	 * NULL (the transport is the only one). */
	bool (*busy)(void *ctx);
	void *ctx;
};

struct tern_mqttdev_config {
	const char *uri;	     /* paho form: tcp://host:port or ssl://host:port */
	const char *username;	     /* optional */
	const char *password;	     /* optional */
	const char *cafile;	     /* optional, ssl:// */
	const char *cert, *cert_key; /* optional client certificate, ssl:// */
	const char *prefix;	     /* topic prefix */
	const char *device_id;
	const char *client_id; /* MQTT client id; NULL: the device id */
	unsigned keepalive_s;  /* MQTT keepalive in seconds; 0: 20 */
	unsigned retry_min_ms; /* backoff after a bad chunk or index: min, doubling to max */
	unsigned retry_max_ms;
	unsigned max_attempts;	   /* bad fetches of one item before giving up */
	unsigned fetch_timeout_ms; /* no progress for this long: subscribe again */
	unsigned chunk_delay_ms;   /* simulated slow link: at most one chunk per delay */
	uint32_t seed;		   /* jitter */
	/* Called on paho's thread when there is work for tern_mqttdev_step(). */
	void (*notify)(void *arg);
	void *notify_arg;
	/* Optional, borrowed: the device's publishes and (un)subscriptions are handed to
	 * this sender and made by its thread, in order, so tern_mqttdev_step() never waits
	 * for paho's lock (see tern_mqtt_outbox_create). NULL: made at once by the caller. */
	struct tern_mqtt_outbox *outbox;
};

/* Counters for tests and the fleet summary. */
struct tern_mqttdev_stats {
	uint64_t chunks_fetched;  /* chunk messages fed to the agent (duplicates included) */
	uint64_t chunks_bad;	  /* refused against the index */
	uint64_t chunks_again;	  /* of chunks_fetched: arrived again after they were verified */
	uint64_t indexes_fetched; /* index messages fed */
	uint64_t installs;	  /* downloads that reached STAGED */
	uint64_t fresh_offers;	  /* offers that started a download from zero */
	uint64_t resumes;	  /* downloads continued from the agent's record */
	uint64_t kept;		  /* offers staged at once: the inactive slots held the release */
	uint64_t refused;	  /* desired states or releases refused */
	uint64_t connects;	  /* successful connects */
	uint64_t reboots;
	bool connected;
	bool halted;	     /* stopped after a power cut or by tern_mqttdev_stop() */
	bool settled;	     /* the accepted desired state is done (or there is none) */
	uint64_t generation; /* last accepted */
};

struct tern_mqttdev;

/*
 * Creates the transport for one device (paho client, not connected). @cfg strings and
 * @board are borrowed and must outlive it. Returns 0, TERN_E_NOMEM, TERN_E_INVAL or
 * TERN_E_BROKER (paho refused the URI or id). The caller frees with tern_mqttdev_destroy().
 */
int tern_mqttdev_create(struct tern_mqttdev **out, const struct tern_mqttdev_config *cfg,
			const struct tern_mqttdev_board *board);

/*
 * Loads the durable record and connects (asynchronously: the result arrives through
 * notify and step). Last will: "offline" retained on dev/ID/online. Returns 0 or
 * TERN_E_BROKER / a record error.
 */
int tern_mqttdev_start(struct tern_mqttdev *d);

/*
 * Does the pending work: connection changes, arrived messages, timers. @now_ms is a
 * monotonic clock. Sets *@next_ms to when it wants to run again at the latest (it may
 * be woken earlier by notify). Never blocks on the network.
 */
void tern_mqttdev_step(struct tern_mqttdev *d, uint64_t now_ms, uint64_t *next_ms);

/*
 * Drops the connection as a network failure would (the broker sees us vanish; we
 * publish "offline" first, as the will would) and connects again after @off_ms.
 */
void tern_mqttdev_net_drop(struct tern_mqttdev *d, uint64_t now_ms, unsigned off_ms);

/* Stops everything (power off): drops the connection, discards what arrived. */
void tern_mqttdev_stop(struct tern_mqttdev *d);

/* After power came back and the board booted again: reloads and connects. */
int tern_mqttdev_restart(struct tern_mqttdev *d);

/*
 * The agent was changed by someone else (another transport of the device, on the
 * caller's thread or under the caller's lock): reports it - a transition event with
 * @detail and the agent's release when its state changed, else the retained state
 * again (progress) - and then acts on the accepted desired state if the agent is free.
 */
void tern_mqttdev_agent_changed(struct tern_mqttdev *d, uint64_t now_ms, const char *detail);

void tern_mqttdev_stats(struct tern_mqttdev *d, struct tern_mqttdev_stats *st);

/* Disconnects and frees; NULL is fine. */
void tern_mqttdev_destroy(struct tern_mqttdev *d);

/*
 * A sender shared by the devices of one process. Every paho call that sends takes the
 * library's one lock, which its receive thread holds while it reads a packet: with many
 * clients per process and a busy broker, a device's thread calling paho waited for
 * seconds while messages piled up (measured: the fleet's workers stalled for 2 s at a
 * time, 240 MiB queued). With an outbox those calls are queued (a copy of the topics and
 * payload) and made by the outbox's own thread, one device's in the order it made them;
 * the device's thread goes on with its work. Disconnecting or destroying a device first
 * waits until its queued calls are made. Returns 0 or TERN_E_NOMEM (thread or memory).
 * The caller destroys it after every device that uses it.
 */
struct tern_mqtt_outbox;
int tern_mqtt_outbox_create(struct tern_mqtt_outbox **out);
void tern_mqtt_outbox_destroy(struct tern_mqtt_outbox *ob); /* runs what is queued; NULL ok */

/* Converts mqtt://host[:port] / mqtts://... (or tcp://, ssl://) into paho's form. */
int tern_mqttdev_uri(const char *url, char *out, size_t size);

#endif
