/* The host database: SQLite in WAL mode, prepared statements kept for the session. */
#include "db.h"

#include "tern/tern_err.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCHEMA_VERSION "3"

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS releases("
    " id TEXT PRIMARY KEY, version TEXT NOT NULL, sequence INTEGER NOT NULL,"
    " security_counter INTEGER NOT NULL, boards TEXT NOT NULL, chunk_size INTEGER NOT NULL,"
    " manifest_sha256 TEXT NOT NULL, file TEXT, broker TEXT, prefix TEXT,"
    " complete INTEGER NOT NULL DEFAULT 0, published_at INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS publish_progress("
    " manifest_sha256 TEXT NOT NULL, broker TEXT NOT NULL, prefix TEXT NOT NULL,"
    " component TEXT NOT NULL, windows_done INTEGER NOT NULL, updated_at INTEGER NOT NULL,"
    " PRIMARY KEY(manifest_sha256, broker, prefix, component));"
    "CREATE TABLE IF NOT EXISTS devices("
    " id TEXT PRIMARY KEY, board TEXT, version TEXT, release_id TEXT, state TEXT, target TEXT,"
    " active_slot INTEGER, done INTEGER, total INTEGER, last_status TEXT, generation INTEGER,"
    " floor INTEGER, online INTEGER, first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL,"
    " state_cbor BLOB);"
    "CREATE TABLE IF NOT EXISTS device_states("
    " seq INTEGER PRIMARY KEY, device_id TEXT NOT NULL, received_at INTEGER NOT NULL,"
    " state TEXT NOT NULL, payload BLOB NOT NULL);"
    "CREATE TABLE IF NOT EXISTS events("
    " seq INTEGER PRIMARY KEY, device_id TEXT NOT NULL, received_at INTEGER NOT NULL,"
    " kind TEXT NOT NULL, device_seq INTEGER, device_time INTEGER, from_state TEXT,"
    " to_state TEXT, release_id TEXT, status TEXT, detail TEXT, generation INTEGER,"
    " payload BLOB);"
    "CREATE INDEX IF NOT EXISTS events_by_device ON events(device_id, seq);"
    /* QoS 1 is at least once: a device's event redelivered after a reconnect is one row. */
    "CREATE UNIQUE INDEX IF NOT EXISTS events_once ON events(device_id, device_seq, device_time,"
    " kind);"
    "CREATE TABLE IF NOT EXISTS desired("
    " device_id TEXT NOT NULL, generation INTEGER NOT NULL, release_id TEXT NOT NULL,"
    " sequence INTEGER NOT NULL, action TEXT NOT NULL, activate TEXT NOT NULL,"
    " issued_at INTEGER NOT NULL, message BLOB NOT NULL, PRIMARY KEY(device_id, generation));"
    /* Staged rollouts (docs/rollout.md). */
    "CREATE TABLE IF NOT EXISTS rollouts("
    " name TEXT PRIMARY KEY, release_id TEXT NOT NULL, version TEXT, sequence INTEGER NOT NULL,"
    " notes TEXT, key_file TEXT, targets TEXT NOT NULL, waves_spec TEXT NOT NULL,"
    " bake_s INTEGER NOT NULL, max_fail_ppm INTEGER NOT NULL, min_success_ppm INTEGER NOT NULL,"
    " device_timeout_s INTEGER NOT NULL, approve_each INTEGER NOT NULL, activate TEXT NOT NULL,"
    " state TEXT NOT NULL, reason TEXT, current_wave INTEGER NOT NULL DEFAULT 0,"
    " revert INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL, updated_at REAL NOT NULL,"
    " rate INTEGER NOT NULL DEFAULT 0);" /* desired states a second in a wave (schema 3) */
    "CREATE TABLE IF NOT EXISTS rollout_waves("
    " rollout TEXT NOT NULL, wave INTEGER NOT NULL, size INTEGER NOT NULL, state TEXT NOT NULL,"
    " started_at REAL, reported_at REAL, bake_until REAL, activated_at REAL, gated_at REAL,"
    " PRIMARY KEY(rollout, wave));"
    "CREATE TABLE IF NOT EXISTS rollout_members("
    " rollout TEXT NOT NULL, device_id TEXT NOT NULL, wave INTEGER NOT NULL, rank INTEGER NOT NULL,"
    " prev_release TEXT, prev_sequence INTEGER, generation INTEGER, deployed_at REAL,"
    " outcome TEXT NOT NULL DEFAULT 'waiting', reason TEXT, outcome_at REAL,"
    " activate_generation INTEGER, revert_generation INTEGER, revert_at REAL,"
    " revert_outcome TEXT, PRIMARY KEY(rollout, device_id));"
    "CREATE INDEX IF NOT EXISTS rollout_members_by_wave ON rollout_members(rollout, wave, rank);"
    /* Desired states committed but not yet acknowledged by the broker. */
    "CREATE TABLE IF NOT EXISTS rollout_outbox("
    " rollout TEXT NOT NULL, device_id TEXT NOT NULL, generation INTEGER NOT NULL,"
    " PRIMARY KEY(device_id, generation));"
    "CREATE TABLE IF NOT EXISTS rollout_events("
    " seq INTEGER PRIMARY KEY, rollout TEXT NOT NULL, at REAL NOT NULL, wave INTEGER,"
    " device_id TEXT, kind TEXT NOT NULL, actor TEXT, detail TEXT);"
    "CREATE INDEX IF NOT EXISTS rollout_events_by_rollout ON rollout_events(rollout, seq);"
    /* Commands an abort took back from the broker before devices started them. */
    "CREATE TABLE IF NOT EXISTS rollout_withdrawals("
    " rollout TEXT NOT NULL, device_id TEXT NOT NULL, wave INTEGER NOT NULL,"
    " generation INTEGER NOT NULL, was TEXT NOT NULL, at REAL NOT NULL,"
    " taken_at REAL," /* the device had booted the release after all (schema 2) */
    " PRIMARY KEY(rollout, device_id));"
    /* One controller per rollout. */
    "CREATE TABLE IF NOT EXISTS rollout_leases("
    " rollout TEXT PRIMARY KEY, pid INTEGER NOT NULL, host TEXT NOT NULL,"
    " started_at REAL NOT NULL, heartbeat_at REAL NOT NULL, pid_start INTEGER);"
    /* The last provisioning generation given to each device id (`tern usb provision`). */
    "CREATE TABLE IF NOT EXISTS provisioning("
    " device_id TEXT PRIMARY KEY, generation INTEGER NOT NULL, serial TEXT,"
    " provisioned_at INTEGER NOT NULL);"
    "INSERT OR IGNORE INTO meta(key, value) VALUES('schema_version', '" SCHEMA_VERSION "');";

enum stmt_id {
	S_RELEASE_PUT,
	S_RELEASE_GET,
	S_PROGRESS_GET,
	S_PROGRESS_SET,
	S_PROGRESS_CLEAR,
	S_GEN_LAST,
	S_DESIRED_PUT,
	S_DEVICE_IDS,
	S_DEVICE_SEEN,
	S_STATE_UPDATE,
	S_STATE_HISTORY,
	S_EVENT_PUT,
	S_ONLINE_UPDATE,
	S_DEVICES,
	S_PROVISIONED,
	S_RELEASE_FILE,
	S_DESIRED_GET,
	S_PROVISION_GEN_GET,
	S_PROVISION_GEN_PUT,
	S_DEVICE_REPLACED,
	S_REPLACED_BEFORE,
	S__COUNT
};

static const char *const stmt_sql[S__COUNT] = {
    [S_RELEASE_PUT] =
	"INSERT INTO releases(id, version, sequence, security_counter, boards, chunk_size,"
	" manifest_sha256, file, broker, prefix, complete, published_at)"
	" VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, strftime('%s','now'))"
	" ON CONFLICT(id) DO UPDATE SET version=?2, sequence=?3, security_counter=?4,"
	" boards=?5, chunk_size=?6, manifest_sha256=?7, file=?8, broker=?9, prefix=?10,"
	" complete=CASE WHEN manifest_sha256=?7 THEN max(complete, ?11) ELSE ?11 END,"
	" published_at=strftime('%s','now')",
    [S_RELEASE_GET] = "SELECT sequence, complete FROM releases WHERE id=?1",
    [S_PROGRESS_GET] = "SELECT windows_done FROM publish_progress WHERE manifest_sha256=?1"
		       " AND broker=?2 AND prefix=?3 AND component=?4",
    [S_PROGRESS_SET] =
	"INSERT INTO publish_progress(manifest_sha256, broker, prefix, component,"
	" windows_done, updated_at) VALUES(?1, ?2, ?3, ?4, ?5, strftime('%s','now'))"
	" ON CONFLICT DO UPDATE SET windows_done=?5, updated_at=strftime('%s','now')",
    [S_PROGRESS_CLEAR] = "DELETE FROM publish_progress WHERE manifest_sha256=?1 AND broker=?2"
			 " AND prefix=?3",
    [S_GEN_LAST] =
	"SELECT max(coalesce((SELECT max(generation) FROM desired WHERE device_id=?1), 0),"
	" coalesce((SELECT generation FROM devices WHERE id=?1), 0))",
    [S_DESIRED_PUT] = "INSERT INTO desired(device_id, generation, release_id, sequence, action,"
		      " activate, issued_at, message) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [S_DEVICE_IDS] = "SELECT id FROM devices ORDER BY id",
    [S_DEVICE_SEEN] = "INSERT INTO devices(id, first_seen, last_seen) VALUES(?1, ?2, ?2)"
		      " ON CONFLICT(id) DO UPDATE SET last_seen=max(last_seen, ?2)",
    [S_STATE_UPDATE] =
	"UPDATE devices SET board=?2, version=?3, release_id=?4, state=?5, target=?6,"
	" active_slot=?7, done=?8, total=?9, last_status=?10, generation=?11, floor=?12,"
	" state_cbor=?13 WHERE id=?1",
    [S_STATE_HISTORY] = "INSERT INTO device_states(device_id, received_at, state, payload)"
			" VALUES(?1, ?2, ?3, ?4)",
    [S_EVENT_PUT] =
	"INSERT OR IGNORE INTO events(device_id, received_at, kind, device_seq, device_time,"
	" from_state, to_state, release_id, status, detail, generation, payload)"
	" VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    [S_ONLINE_UPDATE] = "UPDATE devices SET online=?2 WHERE id=?1",
    [S_PROVISIONED] = "UPDATE devices SET board=?2, version=?3, state=?4, active_slot=?5"
		      " WHERE id=?1",
    [S_DEVICES] = "SELECT id, board, version, release_id, state, target, last_status,"
		  " active_slot, done, total, generation, last_seen, online FROM devices"
		  " ORDER BY id",
    [S_RELEASE_FILE] = "SELECT file FROM releases WHERE id=?1",
    [S_DESIRED_GET] = "SELECT message FROM desired WHERE device_id=?1 AND generation=?2",
    [S_PROVISION_GEN_GET] = "SELECT generation FROM provisioning WHERE device_id=?1",
    [S_REPLACED_BEFORE] =
	"SELECT CASE WHEN EXISTS(SELECT 1 FROM devices WHERE id=?1) THEN 0 ELSE EXISTS(SELECT 1"
	" FROM events WHERE device_id=?1 AND kind='replaced' AND received_at >= ?2) END",
    /* Never backwards: a number once given is never given again. */
    [S_PROVISION_GEN_PUT] =
	"INSERT INTO provisioning(device_id, generation, serial, provisioned_at)"
	" VALUES(?1, ?2, ?3, ?4) ON CONFLICT(device_id) DO UPDATE SET"
	" generation=max(generation, ?2), serial=?3, provisioned_at=?4",
    /* Only the inventory row: events, states and the provisioning generation stay. */
    [S_DEVICE_REPLACED] = "DELETE FROM devices WHERE id=?1",
};

struct db {
	sqlite3 *h;
	sqlite3_stmt *st[S__COUNT];
	char path[512];
};

struct db_iter {
	sqlite3_stmt *st;
};

/* Prints the database's own reason once and returns TERN_E_DB. */
static int fail(struct db *db, const char *what)
{
	fprintf(stderr, "tern: database %s: %s: %s\n", db->path, what, sqlite3_errmsg(db->h));
	return TERN_E_DB;
}

/* The prepared statement @id, reset and with its bindings cleared. */
static sqlite3_stmt *stmt(struct db *db, enum stmt_id id)
{
	if (!db->st[id] && sqlite3_prepare_v3(db->h, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
					      &db->st[id], NULL) != SQLITE_OK)
		return NULL;
	sqlite3_reset(db->st[id]);
	sqlite3_clear_bindings(db->st[id]);
	return db->st[id];
}

/* Runs a statement that returns no rows. */
static int run(struct db *db, sqlite3_stmt *s, const char *what)
{
	if (!s)
		return fail(db, what);
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : fail(db, what);
}

static void bind_text(sqlite3_stmt *s, int i, const char *v)
{
	if (v && *v)
		sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(s, i);
}

static void bind_u64(sqlite3_stmt *s, int i, uint64_t v)
{
	sqlite3_bind_int64(s, i, v > INT64_MAX ? INT64_MAX : (sqlite3_int64)v);
}

static void bind_blob(sqlite3_stmt *s, int i, const void *p, size_t len)
{
	sqlite3_bind_blob64(s, i, p, len, SQLITE_TRANSIENT);
}

/* Adds @column (@decl) to @table unless it is there: 0 or TERN_E_DB. */
static int add_column(struct db *db, const char *table, const char *column, const char *decl)
{
	sqlite3_stmt *s = NULL;
	int rc = TERN_E_DB;
	if (sqlite3_prepare_v2(db->h, "SELECT count(*) FROM pragma_table_info(?1) WHERE name=?2",
			       -1, &s, NULL) != SQLITE_OK)
		goto out;
	sqlite3_bind_text(s, 1, table, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, column, -1, SQLITE_STATIC);
	if (sqlite3_step(s) != SQLITE_ROW)
		goto out;
	char sql[256];
	snprintf(sql, sizeof(sql), "ALTER TABLE %s ADD COLUMN %s %s;", table, column, decl);
	if (sqlite3_column_int(s, 0) > 0 || sqlite3_exec(db->h, sql, NULL, NULL, NULL) == SQLITE_OK)
		rc = 0;
out:
	sqlite3_finalize(s);
	return rc;
}

/*
 * Brings a database made by an older tern up to SCHEMA_VERSION, inside db_open()'s
 * transaction (the tables of the current schema exist already; columns added later are
 * added here). Schema 1 -> 2: rollout_withdrawals.taken_at. 2 -> 3: rollouts.rate (0 for
 * a rollout planned before: its waves went out all at once, and still do).
 */
static int migrate(struct db *db)
{
	if (add_column(db, "rollout_withdrawals", "taken_at", "REAL") ||
	    add_column(db, "rollouts", "rate", "INTEGER NOT NULL DEFAULT 0") ||
	    sqlite3_exec(db->h,
			 "UPDATE meta SET value='" SCHEMA_VERSION "' WHERE key='schema_version' AND"
			 " CAST(value AS INTEGER) < " SCHEMA_VERSION ";",
			 NULL, NULL, NULL) != SQLITE_OK)
		return fail(db, "upgrade the schema");
	return 0;
}

int db_open(struct db **out, const char *path)
{
	struct db *db = calloc(1, sizeof(*db));
	if (!db)
		return TERN_E_NOMEM;
	snprintf(db->path, sizeof(db->path), "%s", path);
	int rc = 0;
	if (sqlite3_open_v2(path, &db->h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
	    SQLITE_OK) {
		rc = db->h ? fail(db, "open") : TERN_E_NOMEM;
		goto out_close;
	}
	sqlite3_busy_timeout(db->h, DB_BUSY_MS);
	if (sqlite3_exec(db->h, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", NULL, NULL,
			 NULL) != SQLITE_OK ||
	    sqlite3_exec(db->h, "BEGIN IMMEDIATE;", NULL, NULL, NULL) != SQLITE_OK) {
		rc = fail(db, "open");
		goto out_close;
	}
	if (sqlite3_exec(db->h, schema, NULL, NULL, NULL) != SQLITE_OK || (rc = migrate(db)) != 0) {
		rc = rc ? rc : fail(db, "create schema");
		sqlite3_exec(db->h, "ROLLBACK;", NULL, NULL, NULL);
		goto out_close;
	}
	if (sqlite3_exec(db->h, "COMMIT;", NULL, NULL, NULL) != SQLITE_OK) {
		rc = fail(db, "create schema");
		goto out_close;
	}
	*out = db;
	return 0;
out_close:
	db_close(db);
	return rc;
}

void db_close(struct db *db)
{
	if (!db)
		return;
	for (int i = 0; i < S__COUNT; i++)
		sqlite3_finalize(db->st[i]);
	sqlite3_close(db->h);
	free(db);
}

int db_begin(struct db *db)
{
	return sqlite3_exec(db->h, "BEGIN IMMEDIATE;", NULL, NULL, NULL) == SQLITE_OK
		   ? 0
		   : fail(db, "begin");
}

int db_commit(struct db *db)
{
	return sqlite3_exec(db->h, "COMMIT;", NULL, NULL, NULL) == SQLITE_OK ? 0
									     : fail(db, "commit");
}

void db_rollback(struct db *db)
{
	sqlite3_exec(db->h, "ROLLBACK;", NULL, NULL, NULL);
}

int db_release_put(struct db *db, const struct db_release *r)
{
	char boards[TERN_MAX_BOARDS * (TERN_NAME_MAX + 1) + 1] = "";
	size_t pos = 0;
	for (size_t i = 0; i < r->m->n_boards; i++) {
		int n = snprintf(boards + pos, sizeof(boards) - pos, "%s%s", i ? "," : "",
				 r->m->boards[i]);
		if (n > 0)
			pos += (size_t)n;
	}
	sqlite3_stmt *s = stmt(db, S_RELEASE_PUT);
	if (s) {
		bind_text(s, 1, r->m->release_id);
		bind_text(s, 2, r->m->version);
		bind_u64(s, 3, r->m->sequence);
		bind_u64(s, 4, r->m->security_counter);
		bind_text(s, 5, boards);
		bind_u64(s, 6, r->m->chunk_size);
		bind_text(s, 7, r->manifest_sha256);
		bind_text(s, 8, r->file);
		bind_text(s, 9, r->broker);
		bind_text(s, 10, r->prefix);
		sqlite3_bind_int(s, 11, r->complete);
	}
	return run(db, s, "record release");
}

int db_release_get(struct db *db, const char *release_id, uint64_t *sequence, bool *complete)
{
	sqlite3_stmt *s = stmt(db, S_RELEASE_GET);
	if (!s)
		return fail(db, "find release");
	bind_text(s, 1, release_id);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*sequence = (uint64_t)sqlite3_column_int64(s, 0);
		*complete = sqlite3_column_int(s, 1) != 0;
		rc = 0;
	} else {
		rc = rc == SQLITE_DONE ? TERN_E_NOT_FOUND : fail(db, "find release");
	}
	sqlite3_reset(s);
	return rc;
}

static void bind_progress_key(sqlite3_stmt *s, const char *sha, const char *broker,
			      const char *prefix)
{
	bind_text(s, 1, sha);
	bind_text(s, 2, broker);
	bind_text(s, 3, prefix);
}

int db_progress_get(struct db *db, const char *manifest_sha256, const char *broker,
		    const char *prefix, const char *component, uint64_t *windows_done)
{
	sqlite3_stmt *s = stmt(db, S_PROGRESS_GET);
	if (!s)
		return fail(db, "read progress");
	bind_progress_key(s, manifest_sha256, broker, prefix);
	bind_text(s, 4, component);
	int rc = sqlite3_step(s);
	*windows_done = 0;
	if (rc == SQLITE_ROW)
		*windows_done = (uint64_t)sqlite3_column_int64(s, 0);
	rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : fail(db, "read progress");
	sqlite3_reset(s);
	return rc;
}

int db_progress_set(struct db *db, const char *manifest_sha256, const char *broker,
		    const char *prefix, const char *component, uint64_t windows_done)
{
	sqlite3_stmt *s = stmt(db, S_PROGRESS_SET);
	if (s) {
		bind_progress_key(s, manifest_sha256, broker, prefix);
		bind_text(s, 4, component);
		bind_u64(s, 5, windows_done);
	}
	return run(db, s, "record progress");
}

int db_progress_clear(struct db *db, const char *manifest_sha256, const char *broker,
		      const char *prefix)
{
	sqlite3_stmt *s = stmt(db, S_PROGRESS_CLEAR);
	if (s)
		bind_progress_key(s, manifest_sha256, broker, prefix);
	return run(db, s, "clear progress");
}

int db_generation_last(struct db *db, const char *device_id, uint64_t *generation)
{
	sqlite3_stmt *s = stmt(db, S_GEN_LAST);
	if (!s)
		return fail(db, "read generation");
	bind_text(s, 1, device_id);
	int rc = sqlite3_step(s);
	*generation = 0;
	if (rc == SQLITE_ROW)
		*generation = (uint64_t)sqlite3_column_int64(s, 0); /* NULL reads as 0 */
	rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : fail(db, "read generation");
	sqlite3_reset(s);
	return rc;
}

int db_desired_put(struct db *db, const struct tern_desired *d, const uint8_t *signed_msg,
		   size_t len)
{
	sqlite3_stmt *s = stmt(db, S_DESIRED_PUT);
	if (s) {
		bind_text(s, 1, d->device_id);
		bind_u64(s, 2, d->generation);
		bind_text(s, 3, d->release_id);
		bind_u64(s, 4, d->sequence);
		bind_text(s, 5, tern_action_name(d->action));
		bind_text(s, 6, tern_activate_name(d->activate));
		bind_u64(s, 7, d->issued);
		bind_blob(s, 8, signed_msg, len);
	}
	return run(db, s, "record desired state");
}

int db_device_ids(struct db *db, int (*fn)(void *ctx, const char *id), void *ctx)
{
	sqlite3_stmt *s = stmt(db, S_DEVICE_IDS);
	if (!s)
		return fail(db, "list devices");
	int rc, cb_rc = 0;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW && !cb_rc)
		cb_rc = fn(ctx, (const char *)sqlite3_column_text(s, 0));
	if (!cb_rc && rc != SQLITE_DONE)
		cb_rc = fail(db, "list devices");
	sqlite3_reset(s);
	return cb_rc;
}

static int device_seen(struct db *db, const char *id, uint64_t now)
{
	sqlite3_stmt *s = stmt(db, S_DEVICE_SEEN);
	if (s) {
		bind_text(s, 1, id);
		bind_u64(s, 2, now);
	}
	return run(db, s, "record device");
}

/*
 * Whether a report from @id should list it (again) in `devices`: not when the id was
 * replaced (`tern usb provision` gave its board another id; the row went) and the report
 * was made before that (@device_time, the device's clock; 0 when the report has none).
 * That is a retained message the broker still keeps for the old id: it goes into the
 * history only. A board provisioned with the id again is listed by the provisioning.
 */
static int listed(struct db *db, const char *id, uint64_t device_time, bool *list)
{
	sqlite3_stmt *s = stmt(db, S_REPLACED_BEFORE);
	if (!s)
		return fail(db, "read replaced devices");
	bind_text(s, 1, id);
	bind_u64(s, 2, device_time);
	int rc = sqlite3_step(s);
	*list = !(rc == SQLITE_ROW && sqlite3_column_int(s, 0));
	rc = rc == SQLITE_ROW ? 0 : fail(db, "read replaced devices");
	sqlite3_reset(s);
	return rc;
}

int db_record_state(struct db *db, const struct tern_state_msg *m, const uint8_t *raw, size_t len,
		    uint64_t now, bool *unlisted)
{
	bool list;
	int rc = listed(db, m->device_id, m->time, &list);
	if (unlisted)
		*unlisted = !rc && !list;
	if (rc || (list && (rc = device_seen(db, m->device_id, now))))
		return rc;
	if (!list)
		goto history;
	const struct tern_slot_info *active = &m->slots[m->active_slot];
	sqlite3_stmt *s = stmt(db, S_STATE_UPDATE);
	if (s) {
		bind_text(s, 1, m->device_id);
		bind_text(s, 2, m->board);
		bind_text(s, 3, active->version);
		bind_text(s, 4, active->release_id);
		bind_text(s, 5, tern_dev_state_name(m->state));
		bind_text(s, 6, m->target);
		sqlite3_bind_int64(s, 7, m->active_slot);
		bind_u64(s, 8, m->done);
		bind_u64(s, 9, m->total);
		bind_text(s, 10, m->last_status ? tern_status_name(m->last_status) : NULL);
		bind_u64(s, 11, m->generation);
		sqlite3_bind_int64(s, 12, m->floor);
		bind_blob(s, 13, raw, len);
	}
	if ((rc = run(db, s, "record state")))
		return rc;
history:
	s = stmt(db, S_STATE_HISTORY);
	if (s) {
		bind_text(s, 1, m->device_id);
		bind_u64(s, 2, now);
		bind_text(s, 3, tern_dev_state_name(m->state));
		bind_blob(s, 4, raw, len);
	}
	return run(db, s, "record state");
}

/* Inserts one row into events; NULL or 0 fields are stored as NULL. */
static int event_row(struct db *db, const char *device_id, uint64_t now, bool from_device,
		     const char *kind, const struct tern_event_msg *e, const char *status,
		     const char *detail, const uint8_t *raw, size_t len)
{
	bool list = true;
	int rc = from_device ? listed(db, device_id, e ? e->time : 0, &list) : 0;
	if (rc || (list && (rc = device_seen(db, device_id, now))))
		return rc;
	sqlite3_stmt *s = stmt(db, S_EVENT_PUT);
	if (s) {
		bind_text(s, 1, device_id);
		bind_u64(s, 2, now);
		bind_text(s, 3, kind);
		if (e) {
			bind_u64(s, 4, e->seq);
			bind_u64(s, 5, e->time);
			bind_text(s, 6, tern_dev_state_name(e->from));
			bind_text(s, 7, tern_dev_state_name(e->to));
			bind_text(s, 8, e->release_id);
			if (e->generation)
				bind_u64(s, 11, e->generation);
		}
		bind_text(s, 9, status);
		bind_text(s, 10, detail);
		if (raw)
			bind_blob(s, 12, raw, len);
	}
	return run(db, s, "record event");
}

int db_record_event(struct db *db, const struct tern_event_msg *e, const uint8_t *raw, size_t len,
		    uint64_t now, bool *added)
{
	int rc = event_row(db, e->device_id, now, true, tern_event_kind_name(e->kind), e,
			   tern_status_name(e->status), e->detail, raw, len);
	if (added)
		*added = !rc && sqlite3_changes(db->h) > 0;
	return rc;
}

int db_record_online(struct db *db, const char *device_id, bool online, uint64_t now)
{
	int rc = event_row(db, device_id, now, true, online ? "online" : "offline", NULL, NULL,
			   NULL, NULL, 0);
	if (rc)
		return rc;
	sqlite3_stmt *s = stmt(db, S_ONLINE_UPDATE);
	if (s) {
		bind_text(s, 1, device_id);
		sqlite3_bind_int(s, 2, online);
	}
	return run(db, s, "record online");
}

int db_provision_gen_get(struct db *db, const char *device_id, uint64_t *generation, bool *known)
{
	sqlite3_stmt *s = stmt(db, S_PROVISION_GEN_GET);
	if (!s)
		return fail(db, "read provisioning generation");
	bind_text(s, 1, device_id);
	int rc = sqlite3_step(s);
	*generation = 0;
	*known = rc == SQLITE_ROW;
	if (rc == SQLITE_ROW)
		*generation = (uint64_t)sqlite3_column_int64(s, 0);
	rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : fail(db, "read provisioning generation");
	sqlite3_reset(s);
	return rc;
}

int db_record_provisioned(struct db *db, const struct db_provisioned *p, uint64_t now)
{
	char detail[192]; /* the longest id and serial fit */
	snprintf(detail, sizeof(detail), "provisioned over USB (serial %s, generation %llu)",
		 p->serial, (unsigned long long)p->generation);
	int rc = event_row(db, p->id, now, false, "provisioned", NULL, NULL, detail, NULL, 0);
	if (rc)
		return rc;
	sqlite3_stmt *s = stmt(db, S_PROVISION_GEN_PUT);
	if (s) {
		bind_text(s, 1, p->id);
		bind_u64(s, 2, p->generation);
		bind_text(s, 3, p->serial);
		bind_u64(s, 4, now);
	}
	rc = run(db, s, "record provisioning generation");
	if (rc)
		return rc;
	s = stmt(db, S_PROVISIONED);
	if (s) {
		bind_text(s, 1, p->id);
		bind_text(s, 2, p->board);
		bind_text(s, 3, p->version);
		bind_text(s, 4, p->state);
		sqlite3_bind_int64(s, 5, p->active_slot);
	}
	rc = run(db, s, "record provisioned device");
	if (rc || !p->replaces || !p->replaces[0] || !strcmp(p->replaces, p->id))
		return rc;
	/* The same device under a new id: the old id's row would stay in `tern devices`
	 * (and in `--all` targets) for ever, sharing the serial. */
	snprintf(detail, sizeof(detail), "re-provisioned over USB as %s (serial %s)", p->id,
		 p->serial);
	if ((rc = event_row(db, p->replaces, now, false, "replaced", NULL, NULL, detail, NULL, 0)))
		return rc;
	s = stmt(db, S_DEVICE_REPLACED);
	if (s)
		bind_text(s, 1, p->replaces);
	return run(db, s, "remove the replaced device");
}

int db_record_bad(struct db *db, const char *device_id, const char *topic_kind, int rc,
		  const uint8_t *raw, size_t len, uint64_t now)
{
	char detail[96];
	snprintf(detail, sizeof(detail), "undecodable %s message", topic_kind);
	return event_row(db, device_id, now, true, "malformed", NULL, tern_errname(rc), detail, raw,
			 len);
}

int db_devices_begin(struct db *db, struct db_iter **it)
{
	*it = calloc(1, sizeof(**it));
	if (!*it)
		return TERN_E_NOMEM;
	if (sqlite3_prepare_v2(db->h, stmt_sql[S_DEVICES], -1, &(*it)->st, NULL) != SQLITE_OK) {
		free(*it);
		*it = NULL;
		return fail(db, "list devices");
	}
	return 0;
}

static const char *col_text(sqlite3_stmt *s, int i)
{
	return (const char *)sqlite3_column_text(s, i);
}

int db_devices_next(struct db_iter *it, struct db_device *row)
{
	int rc = sqlite3_step(it->st);
	if (rc == SQLITE_DONE)
		return 0;
	if (rc != SQLITE_ROW)
		return TERN_E_DB;
	sqlite3_stmt *s = it->st;
	row->id = col_text(s, 0);
	row->board = col_text(s, 1);
	row->version = col_text(s, 2);
	row->release_id = col_text(s, 3);
	row->state = col_text(s, 4);
	row->target = col_text(s, 5);
	row->last_error = col_text(s, 6);
	row->active_slot = sqlite3_column_int64(s, 7);
	row->done = sqlite3_column_int64(s, 8);
	row->total = sqlite3_column_int64(s, 9);
	row->generation = sqlite3_column_int64(s, 10);
	row->last_seen = sqlite3_column_int64(s, 11);
	row->online = sqlite3_column_type(s, 12) == SQLITE_NULL ? -1 : sqlite3_column_int(s, 12);
	return 1;
}

void db_devices_end(struct db_iter *it)
{
	if (!it)
		return;
	sqlite3_finalize(it->st);
	free(it);
}

int db_count(struct db *db, const char *table, uint64_t *n)
{
	static const char *const allowed[] = {"releases", "devices", "device_states", "events",
					      "desired"};
	char sql[64];
	bool ok = false;
	for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
		ok = ok || !strcmp(table, allowed[i]);
	if (!ok)
		return TERN_E_INVAL;
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", table);
	sqlite3_stmt *s;
	if (sqlite3_prepare_v2(db->h, sql, -1, &s, NULL) != SQLITE_OK)
		return fail(db, "count");
	int rc = sqlite3_step(s) == SQLITE_ROW ? 0 : fail(db, "count");
	if (!rc)
		*n = (uint64_t)sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return rc;
}

sqlite3 *db_sqlite(struct db *db)
{
	return db->h;
}

int db_fail(struct db *db, const char *what)
{
	return fail(db, what);
}

int db_release_file(struct db *db, const char *release_id, char *file, size_t size)
{
	sqlite3_stmt *s = stmt(db, S_RELEASE_FILE);
	if (!s)
		return fail(db, "find release");
	bind_text(s, 1, release_id);
	int rc = sqlite3_step(s);
	file[0] = '\0';
	if (rc == SQLITE_ROW && sqlite3_column_text(s, 0))
		snprintf(file, size, "%s", (const char *)sqlite3_column_text(s, 0));
	rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : fail(db, "find release");
	sqlite3_reset(s);
	return rc;
}

int db_desired_get(struct db *db, const char *device_id, uint64_t generation, uint8_t *buf,
		   size_t size, size_t *len)
{
	sqlite3_stmt *s = stmt(db, S_DESIRED_GET);
	if (!s)
		return fail(db, "read desired state");
	bind_text(s, 1, device_id);
	bind_u64(s, 2, generation);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		size_t n = (size_t)sqlite3_column_bytes(s, 0);
		rc = n <= size ? 0 : TERN_E_TOO_LARGE;
		if (!rc) {
			memcpy(buf, sqlite3_column_blob(s, 0), n);
			*len = n;
		}
	} else {
		rc = rc == SQLITE_DONE ? TERN_E_NOT_FOUND : fail(db, "read desired state");
	}
	sqlite3_reset(s);
	return rc;
}
