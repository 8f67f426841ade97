/*
 * The raw fan-out baseline of `make bench BENCH=fleet`: N plain paho MQTTAsync
 * subscribers in one process (the same library and threads as `ternd fleet`) each
 * subscribe to FILTER at QoS 1 and count messages until they have COUNT. Prints the
 * time from the first SUBSCRIBE until every subscriber has all of them.
 *
 *   fanout tcp://127.0.0.1:PORT N FILTER COUNT [CONNECTS_PER_SECOND [START_AT]]
 *
 * Several of them (each N/P subscribers, one START_AT) make the baseline for a fleet
 * split over P processes. paho is set up as tern sets it up (tern/tern_paho.h), so the
 * fleet is compared with the same library doing only the fan-out.
 */
#include "tern/tern_paho.h"

#include <MQTTAsync.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

struct sub {
	MQTTAsync client;
	atomic_long got;
	atomic_long bytes;
	atomic_bool connected;
	long want;
	atomic_int *n_done;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double wall_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void nap_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static int on_msg(void *ctx, char *topic, int topic_len, MQTTAsync_message *m)
{
	(void)topic_len;
	struct sub *s = ctx;
	atomic_fetch_add(&s->bytes, m->payloadlen);
	if (atomic_fetch_add(&s->got, 1) + 1 == s->want)
		atomic_fetch_add(s->n_done, 1);
	MQTTAsync_freeMessage(&m);
	MQTTAsync_free(topic);
	return 1;
}

static void on_connect(void *ctx, MQTTAsync_successData *r)
{
	(void)r;
	struct sub *s = ctx;
	atomic_store(&s->connected, true);
}

static void on_connect_fail(void *ctx, MQTTAsync_failureData *r)
{
	(void)ctx;
	(void)r;
}

int main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(
		    stderr,
		    "usage: fanout URI N FILTER COUNT [CONNECTS_PER_SECOND [START_AT]]\n"
		    "START_AT: wall-clock time (seconds since 1970) at which to subscribe, so\n"
		    "that several fanout processes start together; the time is counted from it\n");
		return 2;
	}
	const char *uri = argv[1], *filter = argv[3];
	long n = strtol(argv[2], NULL, 10), want = strtol(argv[4], NULL, 10);
	long rate = argc > 5 ? strtol(argv[5], NULL, 10) : 250;
	double start_at = argc > 6 ? strtod(argv[6], NULL) : 0;
	if (n <= 0 || want <= 0 || rate <= 0)
		return 2;
	tern_paho_quiet();
	struct sub *subs = calloc((size_t)n, sizeof(*subs));
	atomic_int n_done = 0;
	if (!subs)
		return 1;
	for (long i = 0; i < n; i++) {
		char id[64];
		snprintf(id, sizeof(id), "fanout-%ld-%05ld", (long)getpid(), i);
		subs[i].want = want;
		subs[i].n_done = &n_done;
		if (MQTTAsync_create(&subs[i].client, uri, id, MQTTCLIENT_PERSISTENCE_NONE, NULL) !=
			MQTTASYNC_SUCCESS ||
		    MQTTAsync_setCallbacks(subs[i].client, &subs[i], NULL, on_msg, NULL) !=
			MQTTASYNC_SUCCESS)
			return 1;
		MQTTAsync_connectOptions cn = MQTTAsync_connectOptions_initializer;
		cn.keepAliveInterval = 30;
		cn.cleansession = 1;
		cn.onSuccess = on_connect;
		cn.onFailure = on_connect_fail;
		cn.context = &subs[i];
		if (MQTTAsync_connect(subs[i].client, &cn) != MQTTASYNC_SUCCESS)
			return 1;
		nap_ms(1000 / rate); /* staggered, as the fleet */
	}
	for (int tries = 0; tries < 3000; tries++) {
		long up = 0;
		for (long i = 0; i < n; i++)
			up += atomic_load(&subs[i].connected);
		if (up == n)
			break;
		nap_ms(10);
	}
	struct rusage ru0, ru1;
	getrusage(RUSAGE_SELF, &ru0);
	while (start_at > 0 && wall_s() < start_at)
		nap_ms(1);
	double t0 = now_s();
	for (long i = 0; i < n; i++)
		MQTTAsync_subscribe(subs[i].client, filter, 1, NULL);
	while (atomic_load(&n_done) < n && now_s() - t0 < 300)
		nap_ms(2);
	double secs = now_s() - t0;
	getrusage(RUSAGE_SELF, &ru1);
	double cpu = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec + ru1.ru_stime.tv_sec -
			      ru0.ru_stime.tv_sec) +
		     (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec + ru1.ru_stime.tv_usec -
			      ru0.ru_stime.tv_usec) /
			 1e6;
	long bytes = 0, short_of = 0;
	for (long i = 0; i < n; i++) {
		bytes += atomic_load(&subs[i].bytes);
		short_of += atomic_load(&subs[i].got) < want;
	}
	printf(
	    "fanout: %ld subscribers, %ld messages each, %ld bytes in all, cpu %.3f s, %.3f s%s\n",
	    n, want, bytes, cpu, secs, short_of ? " (INCOMPLETE)" : "");
	for (long i = 0; i < n; i++) {
		MQTTAsync_disconnectOptions dc = MQTTAsync_disconnectOptions_initializer;
		dc.timeout = 100;
		MQTTAsync_disconnect(subs[i].client, &dc);
	}
	nap_ms(200);
	for (long i = 0; i < n; i++)
		MQTTAsync_destroy(&subs[i].client);
	free(subs);
	return short_of ? 1 : 0;
}
