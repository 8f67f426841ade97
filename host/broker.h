/*
 * Broker connection options shared by every command that talks MQTT: flags, then the
 * environment, then the config file ($TERN_CONFIG or ~/.config/tern/tern.conf,
 * key=value lines), then defaults - the first that sets a value wins.
 *
 *   flag          env              config key   meaning
 *   --broker URL  TERN_BROKER      broker       mqtt://host[:1883] or mqtts://host[:8883]
 *   --username    TERN_USERNAME    username
 *   --password    TERN_PASSWORD    password
 *   --cafile      TERN_CAFILE      cafile       CA certificate(s) the broker's must chain to
 *   --cert        TERN_CERT        cert         client certificate (PEM)
 *   --cert-key    TERN_CERT_KEY    cert_key     client private key (PEM)
 *   --prefix      TERN_PREFIX      prefix       topic prefix (default "tern")
 *   --db          TERN_DB          db           host database (default ./tern.db)
 */
#ifndef TERN_HOST_BROKER_H
#define TERN_HOST_BROKER_H

#include <getopt.h>
#include <stdbool.h>

enum broker_field {
	BF_BROKER,
	BF_USERNAME,
	BF_PASSWORD,
	BF_CAFILE,
	BF_CERT,
	BF_KEY,
	BF_PREFIX,
	BF_DB,
	BF__COUNT
};

/* getopt_long codes of the shared flags: BROKER_OPT_BASE + enum broker_field. */
#define BROKER_OPT_BASE 0x1000

/* The shared flags, to splice into a command's option table. */
#define BROKER_LONG_OPTIONS                                                                        \
	{"broker", required_argument, NULL, BROKER_OPT_BASE + BF_BROKER},                          \
	    {"username", required_argument, NULL, BROKER_OPT_BASE + BF_USERNAME},                  \
	    {"password", required_argument, NULL, BROKER_OPT_BASE + BF_PASSWORD},                  \
	    {"cafile", required_argument, NULL, BROKER_OPT_BASE + BF_CAFILE},                      \
	    {"cert", required_argument, NULL, BROKER_OPT_BASE + BF_CERT},                          \
	    {"cert-key", required_argument, NULL, BROKER_OPT_BASE + BF_KEY},                       \
	    {"prefix", required_argument, NULL, BROKER_OPT_BASE + BF_PREFIX},                      \
	{                                                                                          \
		"db", required_argument, NULL, BROKER_OPT_BASE + BF_DB                             \
	}

/* Help text for the shared flags. */
#define BROKER_HELP                                                                                \
	"Broker and database (flag, else $TERN_BROKER, $TERN_USERNAME, $TERN_PASSWORD,\n"          \
	"$TERN_CAFILE, $TERN_CERT, $TERN_CERT_KEY, $TERN_PREFIX, $TERN_DB, else $TERN_CONFIG\n"    \
	"or ~/.config/tern/tern.conf with key=value lines: broker, username, password,\n"          \
	"cafile, cert, cert_key, prefix, db):\n"                                                   \
	"  --broker URL         mqtt://HOST[:PORT] or mqtts://HOST[:PORT] (TLS)\n"                 \
	"  --username U, --password P   broker credentials\n"                                      \
	"  --cafile FILE        CA certificate for mqtts:// (else the system's)\n"                 \
	"  --cert FILE, --cert-key FILE client certificate and its key for mqtts://\n"             \
	"  --prefix P           topic prefix (default tern)\n"                                     \
	"  --db FILE            host database (default ./tern.db)\n"

struct broker_opts {
	const char *v[BF__COUNT]; /* flag or env values (borrowed) or config values (owned) */
	char *owned[BF__COUNT];	  /* values read from the config file */
	char uri[300];		  /* paho's form: tcp://host:port or ssl://host:port */
	bool tls;
};

/* If @code is one of the shared flags, stores @arg and returns true. */
bool broker_opts_flag(struct broker_opts *o, int code, const char *arg);

/*
 * Fills what the flags left unset from the environment and the config file, applies
 * defaults and checks the URL and the prefix. With @need_broker, a missing broker URL
 * is an error. Prints one line and returns TERN_E_USAGE (bad value or config line),
 * TERN_E_IO (config unreadable) or 0. The caller frees with broker_opts_free().
 */
int broker_opts_finish(struct broker_opts *o, bool need_broker);

void broker_opts_free(struct broker_opts *o);

static inline const char *broker_opt(const struct broker_opts *o, enum broker_field f)
{
	return o->v[f];
}

#endif
