/*
 * Recording what devices report (state, events, online) into the host database, as
 * `tern watch` does: a kept MQTT session (client id), QoS 1, messages queued by paho's
 * thread and recorded by the caller's thread one transaction per batch. Shared by
 * `tern watch` and the rollout controller, so both keep the same audit trail.
 */
#ifndef TERN_HOST_RECORDER_H
#define TERN_HOST_RECORDER_H

#include "broker.h"
#include "db.h"
#include "mqtt.h"

#include <stdbool.h>
#include <stdint.h>

struct recorder;

/*
 * Connects as @client_id and subscribes to PREFIX/dev/+/state, events and online; with
 * @keep_session the broker keeps the session (events sent while no recorder runs come
 * to the next), without it only what the broker retains comes (each device's state,
 * with its last event, and online). With @print, prints a line per message recorded.
 * @db is borrowed and must outlive the recorder. On success the caller stops it with
 * recorder_stop().
 */
int recorder_start(struct recorder **out, struct db *db, const struct broker_opts *bo,
		   const char *client_id, bool keep_session, bool print);

/*
 * Waits up to @wait_ms for messages and records everything queued in one transaction;
 * reports a dropped or restored connection on stderr. Returns 0, TERN_E_DB or
 * TERN_E_NOMEM.
 */
int recorder_poll(struct recorder *r, long wait_ms);

/* The recorder's MQTT client, for publishing on the same connection. Borrowed. */
struct mqtt *recorder_mqtt(struct recorder *r);

/* Messages recorded so far. */
uint64_t recorder_count(const struct recorder *r);

/* Disconnects, records what arrived meanwhile, frees @r (NULL is fine). 0 or error. */
int recorder_stop(struct recorder *r);

#endif
