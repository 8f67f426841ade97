/*
 * The deploy machinery shared by `tern deploy` and the rollout controller: resolving a
 * release, issuing signed desired states (generation from the database, signed, recorded
 * before anything is published), and publishing them retained.
 */
#ifndef TERN_HOST_DEPLOY_H
#define TERN_HOST_DEPLOY_H

#include "db.h"
#include "mqtt.h"

#include "tern/tern_msg.h"
#include "tern/tern_sign.h"

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* A signed desired state ready to publish. */
struct deploy_msg {
	char device_id[TERN_DEVICE_ID_MAX + 1];
	uint64_t generation;
	uint8_t bytes[TERN_SIGNED_DESIRED_MAX];
	size_t len;
};

/*
 * Resolves RELEASE (a release file, or an id that was completely published) to its id,
 * sequence, version and notes. @version and @notes may be NULL; @notes gets the
 * release notes when a file is known (given, or recorded by `tern publish`), else "".
 * Prints one line on failure and returns its code.
 */
int deploy_resolve_release(struct db *db, const char *release, char *id, size_t id_size,
			   uint64_t *sequence, char *version, size_t version_size, char *notes,
			   size_t notes_size);

/*
 * Issues one desired state: takes the device's next generation (db_generation_last + 1),
 * fills @d->generation, signs @d with @sg and records it in `desired`. Must run inside
 * the caller's db_begin() transaction, which the caller commits before publishing (a
 * crash between the two wastes a number; it never issues one twice). Fills @out.
 * Returns 0, TERN_E_CRYPTO or TERN_E_DB.
 */
int deploy_issue(struct db *db, const struct tern_signer *sg, struct tern_desired *d,
		 struct deploy_msg *out);

/* Publishes @msg retained to PREFIX/dev/ID/desired. Returns 0 or TERN_E_BROKER. */
int deploy_publish(struct mqtt *mq, const char *prefix, const struct deploy_msg *msg);

/*
 * Paces publishing: desired state number k (from 0) goes out no sooner than k / rate
 * seconds after deploy_pace_start(), so a deploy to a large fleet starts its downloads in turn
 * instead of all at the same moment (docs/mqtt.md, "Pacing a deploy"). Caller-owned.
 */
struct deploy_pace {
	uint32_t rate;	       /* desired states a second; 0: no pacing */
	uint64_t sent;	       /* states waited for so far */
	struct timespec start; /* when pacing started */
};

/* Desired states a second unless told otherwise (docs/mqtt.md, "Pacing a deploy"). */
#define DEPLOY_RATE	     340
#define DEPLOY_STR_(x)	     #x
#define DEPLOY_STR(x)	     DEPLOY_STR_(x)
#define DEPLOY_RATE_TEXT     DEPLOY_STR(DEPLOY_RATE) /* the default in help texts */
#define DEPLOY_RATE_MAX	     1000000
#define DEPLOY_RATE_MAX_TEXT DEPLOY_STR(DEPLOY_RATE_MAX)
#define DEPLOY_RATE_HELP                                                                           \
	"--rate takes desired states a second, 0 to " DEPLOY_RATE_MAX_TEXT " (0: all at once)"

/* Parses a --rate argument (0 to DEPLOY_RATE_MAX) into *@rate: 0 or TERN_E_INVAL. */
int deploy_parse_rate(const char *arg, uint32_t *rate);

/* Starts pacing at @rate a second (0: none) from now; the first state is due at once. */
void deploy_pace_start(struct deploy_pace *p, uint32_t rate);

/*
 * Returns when the next state is due (at once without pacing) and counts it. A signal
 * ends the wait early: the caller checks its own stop flag after each call.
 */
void deploy_pace_wait(struct deploy_pace *p);

/*
 * How many more states are due within @ahead seconds from now on the same schedule
 * (UINT64_MAX without pacing; at least 1 right after the start), for a caller that
 * publishes between other work instead of waiting, next in @ahead seconds: it adds what
 * it published to @p->sent.
 */
uint64_t deploy_pace_due(const struct deploy_pace *p, double ahead);

#endif
