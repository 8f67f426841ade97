/* One controller per rollout: the lease row (rollout_lease.h, docs/rollout.md). */
#include "rollout_lease.h"

#include "rollout_db.h"

#include "tern/tern_err.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void this_host(char *buf, size_t size)
{
	if (gethostname(buf, size) != 0)
		snprintf(buf, size, "unknown");
	buf[size - 1] = '\0';
}

/*
 * When process @pid started (field 22 of /proc/PID/stat, clock ticks after boot), so
 * that a pid reused by another process is not taken for the owner. 0 when unknown (no
 * /proc, or no such process).
 */
static int64_t process_start(int64_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%lld/stat", (long long)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	char *p = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
	if (!p)
		return 0;
	/* After ")": field 3 (state) ... field 22 (starttime). */
	for (int field = 2; field < 22; field++) {
		p = strchr(p + 1, ' ');
		if (!p)
			return 0;
	}
	char *end;
	errno = 0;
	unsigned long long v = strtoull(p + 1, &end, 10);
	if (errno || end == p + 1 || v > INT64_MAX)
		return 0;
	return (int64_t)v;
}

static bool is_me(const struct rollout_lease *l)
{
	char host[256];
	this_host(host, sizeof(host));
	return l->pid == (int64_t)getpid() && !strcmp(l->host, host);
}

/* Why @l no longer binds anyone (into @why), or false while its owner is alive. */
static bool lease_dead(const struct rollout_lease *l, double now, char *why, size_t size)
{
	char host[256];
	this_host(host, sizeof(host));
	if (now - l->heartbeat_at > ROLLOUT_LEASE_STALE_S) {
		snprintf(why, size, "no heartbeat for %.0f s", now - l->heartbeat_at);
		return true;
	}
	if (strcmp(l->host, host) || l->pid <= 0)
		return false;
	if (kill((pid_t)l->pid, 0) != 0 && errno == ESRCH) {
		snprintf(why, size, "the process is gone");
		return true;
	}
	int64_t start = process_start(l->pid);
	if (l->pid_start && start && start != l->pid_start) {
		snprintf(why, size, "the process is gone; its pid belongs to another now");
		return true;
	}
	return false;
}

void rollout_lease_describe(const struct rollout_lease *l, char *buf, size_t size)
{
	time_t t = (time_t)l->started_at;
	struct tm tm;
	char when[32] = "?";
	if (localtime_r(&t, &tm))
		strftime(when, sizeof(when),
			 rdb_now() - l->started_at < 20 * 3600 ? "%H:%M" : "%F %H:%M", &tm);
	snprintf(buf, size, "pid %lld on %s since %s", (long long)l->pid, l->host, when);
}

/* Reads the row; *@found false when there is none. */
static int lease_read(struct db *db, const char *rollout, struct rollout_lease *l, bool *found)
{
	sqlite3_stmt *s =
	    rdb_query(db,
		      "SELECT pid, host, started_at, heartbeat_at, coalesce(pid_start, 0)"
		      " FROM rollout_leases WHERE rollout=?1",
		      "t", rollout);
	if (!s)
		return TERN_E_DB;
	memset(l, 0, sizeof(*l));
	int rc = sqlite3_step(s);
	*found = rc == SQLITE_ROW;
	if (*found) {
		l->pid = sqlite3_column_int64(s, 0);
		snprintf(l->host, sizeof(l->host), "%s", rdb_text(s, 1));
		l->started_at = sqlite3_column_double(s, 2);
		l->heartbeat_at = sqlite3_column_double(s, 3);
		l->pid_start = sqlite3_column_int64(s, 4);
	}
	rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : db_fail(db, "read rollout lease");
	sqlite3_finalize(s);
	return rc;
}

int rollout_lease_get(struct db *db, const char *rollout, struct rollout_lease *l, bool *held)
{
	bool found;
	char why[64];
	int rc = lease_read(db, rollout, l, &found);
	*held = !rc && found && !is_me(l) && !lease_dead(l, rdb_now(), why, sizeof(why));
	return rc;
}

int rollout_lease_take(struct db *db, const char *rollout)
{
	struct rollout_lease l;
	bool found;
	char host[256], why[64], who[320];
	this_host(host, sizeof(host));
	int rc = db_begin(db);
	if (rc)
		return rc;
	double now = rdb_now();
	if ((rc = lease_read(db, rollout, &l, &found)))
		goto out_rollback;
	if (found && !is_me(&l)) {
		rollout_lease_describe(&l, who, sizeof(who));
		if (!lease_dead(&l, now, why, sizeof(why))) {
			db_rollback(db);
			fprintf(stderr,
				"tern: rollout %s is already driven by %s; stop it or wait\n",
				rollout, who);
			return TERN_E_BUSY;
		}
		if ((rc = rdb_event(db, rollout, -1, NULL, "lease-taken-over", "controller",
				    "controller %s stopped driving (%s); pid %lld on %s takes over",
				    who, why, (long long)getpid(), host)))
			goto out_rollback;
	}
	if ((rc = rdb_exec(db,
			   "INSERT OR REPLACE INTO rollout_leases(rollout, pid, host, started_at,"
			   " heartbeat_at, pid_start) VALUES(?1, ?2, ?3, ?4, ?4, ?5)",
			   "titdi", rollout, (int64_t)getpid(), host, now,
			   process_start((int64_t)getpid()))))
		goto out_rollback;
	return db_commit(db);
out_rollback:
	db_rollback(db);
	return rc;
}

int rollout_lease_refresh(struct db *db, const char *rollout)
{
	struct rollout_lease l;
	bool found;
	char host[256], who[320];
	this_host(host, sizeof(host));
	int rc = lease_read(db, rollout, &l, &found);
	if (rc)
		return rc;
	if (found && !is_me(&l)) {
		rollout_lease_describe(&l, who, sizeof(who));
		fprintf(stderr, "tern: rollout %s: taken over by %s; this controller stops\n",
			rollout, who);
		return TERN_E_BUSY;
	}
	double now = rdb_now();
	if (found && now - l.heartbeat_at < ROLLOUT_LEASE_BEAT_S)
		return 0; /* fresh enough: no write at every step */
	return rdb_exec(db,
			"INSERT INTO rollout_leases(rollout, pid, host, started_at, heartbeat_at,"
			" pid_start) VALUES(?1, ?2, ?3, ?4, ?4, ?5) ON CONFLICT(rollout) DO UPDATE"
			" SET heartbeat_at=?4",
			"titdi", rollout, (int64_t)getpid(), host, now,
			process_start((int64_t)getpid()));
}

void rollout_lease_release(struct db *db, const char *rollout)
{
	char host[256];
	this_host(host, sizeof(host));
	rdb_exec(db, "DELETE FROM rollout_leases WHERE rollout=?1 AND pid=?2 AND host=?3", "tit",
		 rollout, (int64_t)getpid(), host);
}
