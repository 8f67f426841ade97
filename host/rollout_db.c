/* Rollout tables: typed one-shot statements and the rollout audit trail. */
#include "rollout_db.h"

#include "tern/tern_err.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

static int bind_all(sqlite3_stmt *s, const char *types, va_list ap)
{
	for (int i = 0; types[i]; i++) {
		int rc;
		if (types[i] == 't') {
			const char *v = va_arg(ap, const char *);
			rc = v && *v ? sqlite3_bind_text(s, i + 1, v, -1, SQLITE_TRANSIENT)
				     : sqlite3_bind_null(s, i + 1);
		} else if (types[i] == 'i') {
			rc = sqlite3_bind_int64(s, i + 1, va_arg(ap, int64_t));
		} else if (types[i] == 'd') {
			rc = sqlite3_bind_double(s, i + 1, va_arg(ap, double));
		} else {
			return TERN_E_INVAL;
		}
		if (rc != SQLITE_OK)
			return TERN_E_DB;
	}
	return 0;
}

static sqlite3_stmt *vquery(struct db *db, const char *sql, const char *types, va_list ap)
{
	sqlite3_stmt *s = NULL;
	if (sqlite3_prepare_v2(db_sqlite(db), sql, -1, &s, NULL) != SQLITE_OK) {
		db_fail(db, "rollout query");
		return NULL;
	}
	if (bind_all(s, types, ap)) {
		db_fail(db, "rollout query");
		sqlite3_finalize(s);
		return NULL;
	}
	return s;
}

sqlite3_stmt *rdb_query(struct db *db, const char *sql, const char *types, ...)
{
	va_list ap;
	va_start(ap, types);
	sqlite3_stmt *s = vquery(db, sql, types, ap);
	va_end(ap);
	return s;
}

int rdb_exec(struct db *db, const char *sql, const char *types, ...)
{
	va_list ap;
	va_start(ap, types);
	sqlite3_stmt *s = vquery(db, sql, types, ap);
	va_end(ap);
	if (!s)
		return TERN_E_DB;
	int rc = sqlite3_step(s) == SQLITE_DONE ? 0 : db_fail(db, "rollout update");
	sqlite3_finalize(s);
	return rc;
}

int rdb_int(struct db *db, int64_t *out, const char *sql, const char *types, ...)
{
	va_list ap;
	va_start(ap, types);
	sqlite3_stmt *s = vquery(db, sql, types, ap);
	va_end(ap);
	if (!s)
		return TERN_E_DB;
	int rc = sqlite3_step(s);
	*out = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
	rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : db_fail(db, "rollout query");
	sqlite3_finalize(s);
	return rc;
}

double rdb_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int rdb_event(struct db *db, const char *rollout, int64_t wave, const char *device,
	      const char *kind, const char *actor, const char *fmt, ...)
{
	char detail[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	sqlite3_stmt *s = rdb_query(db,
				    "INSERT INTO rollout_events(rollout, at, wave, device_id, kind,"
				    " actor, detail) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
				    "tdittt", rollout, rdb_now(), (int64_t)0, device, kind, actor);
	if (!s)
		return TERN_E_DB;
	if (wave < 0)
		sqlite3_bind_null(s, 3);
	else
		sqlite3_bind_int64(s, 3, wave);
	sqlite3_bind_text(s, 7, detail, -1, SQLITE_TRANSIENT);
	int rc = sqlite3_step(s) == SQLITE_DONE ? 0 : db_fail(db, "record rollout event");
	sqlite3_finalize(s);
	return rc;
}

const char *rdb_text(sqlite3_stmt *s, int i)
{
	const unsigned char *t = sqlite3_column_text(s, i);
	return t ? (const char *)t : "";
}
