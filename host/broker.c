/* Broker connection options: flags, environment, config file, defaults. */
#include "broker.h"

#include "host_util.h"
#include "tern/tern_err.h"
#include "tern/tern_topic.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const names[BF__COUNT] = {"broker", "username", "password", "cafile",
					     "cert",   "cert_key", "prefix",   "db"};
static const char *const envs[BF__COUNT] = {"TERN_BROKER", "TERN_USERNAME", "TERN_PASSWORD",
					    "TERN_CAFILE", "TERN_CERT",	    "TERN_CERT_KEY",
					    "TERN_PREFIX", "TERN_DB"};

bool broker_opts_flag(struct broker_opts *o, int code, const char *arg)
{
	if (code < BROKER_OPT_BASE || code >= BROKER_OPT_BASE + BF__COUNT)
		return false;
	o->v[code - BROKER_OPT_BASE] = arg;
	return true;
}

static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strlen(s);
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
		s[--n] = '\0';
	return s;
}

/* Reads key=value lines; '#' starts a comment line. Unknown keys are an error. */
static int load_config(struct broker_opts *o, const char *path, bool must_exist)
{
	uint8_t *text = NULL;
	size_t len;
	int rc = host_read_file(path, 65536, &text, &len);
	if (rc == TERN_E_NOT_FOUND && !must_exist)
		return 0;
	if (rc) {
		fprintf(stderr, "tern: config %s: %s\n", path, tern_strerror(rc));
		return rc;
	}
	char *save = (char *)text;
	unsigned line_no = 0;
	while (save && *save) {
		char *line = save;
		char *nl = strchr(line, '\n');
		save = nl ? nl + 1 : NULL;
		if (nl)
			*nl = '\0';
		line_no++;
		line = trim(line);
		if (!*line || *line == '#')
			continue;
		char *eq = strchr(line, '=');
		if (!eq) {
			fprintf(stderr, "tern: config %s line %u: expected key=value\n", path,
				line_no);
			rc = TERN_E_USAGE;
			break;
		}
		*eq = '\0';
		char *key = trim(line), *val = trim(eq + 1);
		int f = -1;
		for (int i = 0; i < BF__COUNT; i++)
			if (!strcmp(key, names[i]))
				f = i;
		if (f < 0) {
			fprintf(stderr, "tern: config %s line %u: unknown key '%s'\n", path,
				line_no, key);
			rc = TERN_E_USAGE;
			break;
		}
		if (o->v[f] || o->owned[f])
			continue; /* a flag or the environment set it */
		o->owned[f] = strdup(val);
		if (!o->owned[f]) {
			rc = TERN_E_NOMEM;
			break;
		}
	}
	free(text);
	return rc;
}

/* mqtt://host[:port] -> tcp://host:port, mqtts:// -> ssl://. */
static int parse_url(struct broker_opts *o, const char *url)
{
	const char *rest;
	int port;
	if (!strncmp(url, "mqtt://", 7)) {
		rest = url + 7;
		port = 1883;
		o->tls = false;
	} else if (!strncmp(url, "mqtts://", 8)) {
		rest = url + 8;
		port = 8883;
		o->tls = true;
	} else {
		return TERN_E_USAGE;
	}
	size_t host_len = strcspn(rest, ":/");
	if (host_len == 0 || host_len > 253)
		return TERN_E_USAGE;
	const char *after = rest + host_len;
	if (*after == ':') {
		uint64_t p;
		char digits[8];
		size_t n = strcspn(after + 1, "/");
		if (n == 0 || n >= sizeof(digits))
			return TERN_E_USAGE;
		memcpy(digits, after + 1, n);
		digits[n] = '\0';
		if (host_parse_u64(digits, 65535, &p) || p == 0)
			return TERN_E_USAGE;
		port = (int)p;
		after += 1 + n;
	}
	if (*after && strcmp(after, "/"))
		return TERN_E_USAGE;
	int w = snprintf(o->uri, sizeof(o->uri), "%s://%.*s:%d", o->tls ? "ssl" : "tcp",
			 (int)host_len, rest, port);
	return w > 0 && (size_t)w < sizeof(o->uri) ? 0 : TERN_E_USAGE;
}

int broker_opts_finish(struct broker_opts *o, bool need_broker)
{
	for (int i = 0; i < BF__COUNT; i++)
		if (!o->v[i]) {
			const char *e = getenv(envs[i]);
			if (e && *e)
				o->v[i] = e;
		}
	const char *cfg = getenv("TERN_CONFIG");
	char path[PATH_MAX];
	int rc;
	if (cfg && *cfg) {
		rc = load_config(o, cfg, true);
	} else {
		const char *home = getenv("HOME");
		rc = 0;
		if (home && *home) {
			int n = snprintf(path, sizeof(path), "%s/.config/tern/tern.conf", home);
			if (n > 0 && (size_t)n < sizeof(path))
				rc = load_config(o, path, false);
		}
	}
	if (rc)
		return rc;
	for (int i = 0; i < BF__COUNT; i++)
		if (!o->v[i] && o->owned[i])
			o->v[i] = o->owned[i];
	if (!o->v[BF_PREFIX])
		o->v[BF_PREFIX] = TERN_TOPIC_PREFIX_DEFAULT;
	if (!o->v[BF_DB])
		o->v[BF_DB] = "tern.db";
	if (!tern_topic_prefix_valid(o->v[BF_PREFIX])) {
		fprintf(stderr,
			"tern: prefix '%s' is not valid: use segments of A-Z a-z 0-9 . _ - "
			"separated by '/'\n",
			o->v[BF_PREFIX]);
		return TERN_E_USAGE;
	}
	if (!o->v[BF_BROKER]) {
		if (!need_broker)
			return 0;
		fprintf(stderr,
			"tern: no broker: give --broker mqtt://HOST[:PORT], set $TERN_BROKER, "
			"or broker= in the config file\n");
		return TERN_E_USAGE;
	}
	if (parse_url(o, o->v[BF_BROKER])) {
		fprintf(stderr,
			"tern: broker URL '%s' is not valid: use mqtt://HOST[:PORT] or "
			"mqtts://HOST[:PORT]\n",
			o->v[BF_BROKER]);
		return TERN_E_USAGE;
	}
	if (!o->tls && (o->v[BF_CERT] || o->v[BF_KEY])) {
		fprintf(stderr, "tern: --cert and --cert-key need an mqtts:// broker URL\n");
		return TERN_E_USAGE;
	}
	if (!o->v[BF_CERT] != !o->v[BF_KEY]) {
		fprintf(stderr, "tern: give --cert and --cert-key together\n");
		return TERN_E_USAGE;
	}
	static const enum broker_field files[] = {BF_CAFILE, BF_CERT, BF_KEY};
	static const char *const flags[] = {"--cafile", "--cert", "--cert-key"};
	for (size_t i = 0; i < 3; i++) {
		const char *file = o->v[files[i]];
		if (file && access(file, R_OK)) {
			fprintf(stderr, "tern: %s %s: %s\n", flags[i], file,
				tern_strerror(errno == ENOENT ? TERN_E_NOT_FOUND : TERN_E_IO));
			return TERN_E_USAGE;
		}
	}
	return 0;
}

void broker_opts_free(struct broker_opts *o)
{
	for (int i = 0; i < BF__COUNT; i++) {
		free(o->owned[i]);
		o->owned[i] = NULL;
	}
}
