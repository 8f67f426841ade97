/*
 * Small helpers for the rollout tables (schema in host/db.c, docs/rollout.md): one-shot
 * statements with typed arguments, and the rollout's own audit trail (rollout_events).
 */
#ifndef TERN_HOST_ROLLOUT_DB_H
#define TERN_HOST_ROLLOUT_DB_H

#include "db.h"

#include <sqlite3.h>
#include <stdint.h>

/*
 * Arguments are described by @types, one letter each: 't' const char * (NULL or "" is
 * SQL NULL), 'i' int64_t, 'd' double. rdb_exec() runs a statement that returns no rows:
 * 0 or TERN_E_DB (printed). rdb_query() prepares and binds; the caller steps and calls
 * sqlite3_finalize(); NULL on failure (printed).
 */
int rdb_exec(struct db *db, const char *sql, const char *types, ...);
sqlite3_stmt *rdb_query(struct db *db, const char *sql, const char *types, ...);

/* One int64 from a query (0 when no row). Returns 0 or TERN_E_DB. */
int rdb_int(struct db *db, int64_t *out, const char *sql, const char *types, ...);

/* The host's clock in seconds since 1970, with fractions. */
double rdb_now(void);

/*
 * Records a decision or an observation in rollout_events with the host's time: @wave is
 * 0-based or -1, @device and @actor may be NULL, @fmt is printf-style detail.
 */
int rdb_event(struct db *db, const char *rollout, int64_t wave, const char *device,
	      const char *kind, const char *actor, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));

/* Text of column @i, "" for NULL. */
const char *rdb_text(sqlite3_stmt *s, int i);

#endif
