/*
 * One setting of paho-mqtt-c that every tern process using it makes (the host's
 * commands, the agent's transport, the fan-out baseline of `make bench`).
 *
 * paho 1.3.11 as Debian 12 builds it (without HIGH_PERFORMANCE) keeps an in-memory
 * trace: every entry to and exit from its functions, with a time stamp, and a formatted
 * line per packet, each under one mutex of the whole process that its receive thread,
 * its send thread and every API call take. tern never reads that trace. Turned down to
 * errors, the fleet's receive thread needed a tenth less CPU (docs/mqtt.md, "Tenth
 * session"). paho's own debugging trace still works: with MQTT_C_CLIENT_TRACE set (a
 * file, or ON for stdout; MQTT_C_CLIENT_TRACE_LEVEL as paho documents) nothing is
 * changed.
 */
#ifndef TERN_PAHO_H
#define TERN_PAHO_H

#include <MQTTAsync.h>
#include <pthread.h>
#include <stdlib.h>

static inline void tern_paho_trace_errors_only(void)
{
	const char *trace = getenv("MQTT_C_CLIENT_TRACE");
	if (!trace || !*trace)
		MQTTAsync_setTraceLevel(MQTTASYNC_TRACE_ERROR);
}

/* tern_paho_quiet() - makes the setting above once (thread-safe; once per file that calls
 * it, and again is harmless: it sets the same level); call it before creating the first
 * client. Once, not per client: paho's threads read the level while they run, so a fleet
 * creating its later clients must not write it again. */
static inline void tern_paho_quiet(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, tern_paho_trace_errors_only);
}

#endif
