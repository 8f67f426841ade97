/* `ternd fleet`: many sim devices in one process (boards/sim/fleet.c, docs/mqtt.md). */
#ifndef TERN_FLEET_PRIV_H
#define TERN_FLEET_PRIV_H

#include <stdbool.h>
#include <stdint.h>

/* Fault kinds a device can be given (--unhealthy ... --slow). */
#define FLEET_N_FAULTS 6

struct fleet_args {
	unsigned n_devices;
	const char *dir, *broker, *keyring, *prefix, *board, *id_prefix, *version;
	const char *username, *password, *cafile;
	const char *password_file; /* id:password lines: each device its own (username = id) */
	const char *cert_dir;	   /* DIR/ID.crt and DIR/ID.key: each device its certificate */
	uint64_t slot_size, image_size;
	unsigned workers, connect_rate, duration;
	unsigned processes; /* devices split over this many processes */
	unsigned retry_min_ms, retry_max_ms, max_attempts, fetch_timeout_ms;
	unsigned slow_ms, off_ms, drop_ms, report_ms;
	const char *fault_sel[FLEET_N_FAULTS]; /* "all", "N%", "id,id" or NULL */
	bool json;
	bool username_from_id; /* each device logs in as its id */
};

/* Runs `ternd fleet ARGS...` (argv without "fleet"); returns the exit code. */
int fleet_main(int argc, char **argv);

#endif
