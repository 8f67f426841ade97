/*
 * The host database (SQLite, WAL): releases published, publish progress, devices and
 * their states, every event (the audit trail), and the desired-state generations.
 * Schema in docs/mqtt.md. WAL lets `tern watch` record while `tern deploy` and
 * `tern devices` run; every writer waits up to DB_BUSY_MS for the others.
 */
#ifndef TERN_HOST_DB_H
#define TERN_HOST_DB_H

#include "tern/tern_manifest.h"
#include "tern/tern_msg.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DB_BUSY_MS 10000

struct db;

/*
 * Opens (creating when missing) the database at @path and brings its schema up to
 * date. On success the caller closes *@out with db_close(). Prints one line and returns
 * TERN_E_DB on failure.
 */
int db_open(struct db **out, const char *path);
void db_close(struct db *db);

/* Transactions. db_begin() takes the write lock at once (BEGIN IMMEDIATE). */
int db_begin(struct db *db);
int db_commit(struct db *db);
void db_rollback(struct db *db);

/* A release as published: its manifest and where. */
struct db_release {
	const struct tern_manifest *m;
	const char *manifest_sha256; /* hex of the signed manifest bytes */
	const char *file;
	const char *broker;
	const char *prefix;
	bool complete;
};
int db_release_put(struct db *db, const struct db_release *r);

/* Looks up a published release: its sequence. TERN_E_NOT_FOUND when unknown. */
int db_release_get(struct db *db, const char *release_id, uint64_t *sequence, bool *complete);

/*
 * Publish progress: windows of @component fully acknowledged by the broker, for this
 * exact signed manifest on this broker and prefix (0 when none).
 */
int db_progress_get(struct db *db, const char *manifest_sha256, const char *broker,
		    const char *prefix, const char *component, uint64_t *windows_done);
int db_progress_set(struct db *db, const char *manifest_sha256, const char *broker,
		    const char *prefix, const char *component, uint64_t windows_done);
int db_progress_clear(struct db *db, const char *manifest_sha256, const char *broker,
		      const char *prefix);

/*
 * The last generation issued to @device_id: the highest recorded in `desired`, or the
 * one the device last reported accepting if that is higher (a lost or restored database
 * must not issue numbers the device would refuse as replays). 0 when none. Call inside
 * db_begin().
 */
int db_generation_last(struct db *db, const char *device_id, uint64_t *generation);
/* Records a signed desired state as issued. */
int db_desired_put(struct db *db, const struct tern_desired *d, const uint8_t *signed_msg,
		   size_t len);

/* Calls @fn for every known device id, in order. */
int db_device_ids(struct db *db, int (*fn)(void *ctx, const char *id), void *ctx);

/* Recording what devices report (`tern watch`). @now is the host's clock. */
/* Reports of an id replaced over USB that were made before the replacement (retained
 * messages the broker keeps for the old id) go into the history only: the id is not
 * listed again (*@unlisted, may be NULL, says so for a state). */
int db_record_state(struct db *db, const struct tern_state_msg *s, const uint8_t *raw, size_t len,
		    uint64_t now, bool *unlisted);
/* An event already recorded (the same device, counter, device time and kind: a QoS 1
 * redelivery, or the copy in a state) is not recorded again; *@added (may be NULL) says
 * whether this one was. */
int db_record_event(struct db *db, const struct tern_event_msg *e, const uint8_t *raw, size_t len,
		    uint64_t now, bool *added);
int db_record_online(struct db *db, const char *device_id, bool online, uint64_t now);
/*
 * A device commissioned on the bench (`tern usb provision`): its inventory row with what
 * it reported over USB, so `tern devices` lists it before it first connects, a
 * "provisioned" event in the audit trail, and @generation as the last provisioning
 * generation of the id (kept if higher already). When the device had another id
 * (@replaces, "" or NULL when none), that id's inventory row goes (its history and
 * provisioning generation stay) with a "replaced" event naming the new id. Strings are
 * borrowed.
 */
struct db_provisioned {
	const char *id, *serial, *board, *version, *state;
	int64_t active_slot;
	uint64_t generation;
	const char *replaces;
};
int db_record_provisioned(struct db *db, const struct db_provisioned *p, uint64_t now);
/*
 * The last provisioning generation the inventory gave @device_id: @known false and 0
 * when it never provisioned that id.
 */
int db_provision_gen_get(struct db *db, const char *device_id, uint64_t *generation, bool *known);
/* A message that did not decode: kept in the audit trail with the reason. */
int db_record_bad(struct db *db, const char *device_id, const char *topic_kind, int rc,
		  const uint8_t *raw, size_t len, uint64_t now);

/* One row of the inventory. Strings are valid until the next db_devices_next(). */
struct db_device {
	const char *id, *board, *version, *release_id, *state, *target, *last_error;
	int64_t active_slot, done, total, generation, last_seen;
	int online; /* 1, 0, or -1 when never heard */
};
struct db_iter;
int db_devices_begin(struct db *db, struct db_iter **it);
/* 1 with @row filled, 0 at the end, or TERN_E_DB. */
int db_devices_next(struct db_iter *it, struct db_device *row);
void db_devices_end(struct db_iter *it);

/* The file `tern publish` recorded for @release_id ("" when none). */
int db_release_file(struct db *db, const char *release_id, char *file, size_t size);

/* The signed desired state issued to @device_id as @generation. TERN_E_NOT_FOUND if none. */
int db_desired_get(struct db *db, const char *device_id, uint64_t generation, uint8_t *buf,
		   size_t size, size_t *len);

/* The SQLite handle, for modules with their own statements (rollouts). Borrowed. */
struct sqlite3;
struct sqlite3 *db_sqlite(struct db *db);
/* Prints "database PATH: @what: <SQLite's reason>" and returns TERN_E_DB. */
int db_fail(struct db *db, const char *what);

/* Counts rows of a table (tests and `tern watch` summaries). */
int db_count(struct db *db, const char *table, uint64_t *n);

#endif
