/*
 * One controller per rollout: a lease row in `rollout_leases` (rollout, owner pid, host
 * name, started, heartbeat, the process's start time), taken by `tern rollout run` (and
 * the abort command when it drives), refreshed at every controller step and dropped on
 * exit. A lease whose owner is gone (same host: the pid no longer exists, or now belongs
 * to a process started at another time) or whose heartbeat is older than
 * ROLLOUT_LEASE_STALE_S is taken over, recorded as a rollout event. docs/rollout.md.
 */
#ifndef TERN_HOST_ROLLOUT_LEASE_H
#define TERN_HOST_ROLLOUT_LEASE_H

#include "db.h"

#include <stdbool.h>
#include <stdint.h>

/* A heartbeat older than this (seconds) means the owner stopped driving. */
#define ROLLOUT_LEASE_STALE_S 30
/* The heartbeat is written at most this often (seconds), at a controller step. */
#define ROLLOUT_LEASE_BEAT_S 5

/* Who holds a rollout's lease. */
struct rollout_lease {
	int64_t pid;
	int64_t pid_start; /* the owner's start time (Linux clock ticks after boot), 0: unknown */
	char host[256];
	double started_at, heartbeat_at;
};

/*
 * Reads the lease of @rollout into @l. Sets *@held when another process holds it and
 * is alive (on this host: its pid exists; elsewhere: its heartbeat is fresh). Returns
 * 0 or TERN_E_DB (printed).
 */
int rollout_lease_get(struct db *db, const char *rollout, struct rollout_lease *l, bool *held);

/*
 * Takes the lease of @rollout for this process in its own transaction. A live owner:
 * prints one line naming it ("rollout spring is already driven by pid 1234 on HOST
 * since 15:02; stop it or wait") and returns TERN_E_BUSY. A dead or stale owner's lease
 * is taken over and recorded as a "lease-taken-over" event. Returns 0 or TERN_E_DB.
 */
int rollout_lease_take(struct db *db, const char *rollout);

/*
 * Inside the caller's transaction: checks that this process still holds the lease of
 * @rollout and refreshes its heartbeat (when older than ROLLOUT_LEASE_BEAT_S). Prints one line and returns TERN_E_BUSY when
 * another controller took it over; 0 or TERN_E_DB.
 */
int rollout_lease_refresh(struct db *db, const char *rollout);

/* Drops this process's lease of @rollout (no-op when it holds none). */
void rollout_lease_release(struct db *db, const char *rollout);

/* "pid 1234 on HOST since 15:02" into @buf. */
void rollout_lease_describe(const struct rollout_lease *l, char *buf, size_t size);

#endif
