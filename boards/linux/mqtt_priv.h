/* `ternd run`'s MQTT loop (boards/linux/mqtt.c, docs/linux.md "run"). */
#ifndef TERN_LINUX_MQTT_PRIV_H
#define TERN_LINUX_MQTT_PRIV_H

#include "tern/tern_linux.h"

/*
 * Serves the agent of @lx over MQTT ([mqtt] of its config) through the transport
 * (tern_mqttdev.h) until SIGTERM or SIGINT, or for @duration_s seconds when not 0: one
 * thread steps the transport, woken by paho through an eventfd. When an update is
 * activated it stops the transport (offline published), runs [system] reboot and
 * returns, as a real reboot ends the process; the next `ternd run` does the trial.
 * Prints what it does, and one line with the reason of a failure. Returns 0 (stopped,
 * or rebooting), or a TERN_E_* code (bad [mqtt] settings, the reboot command failed).
 */
int tern_linux_serve(struct tern_linux *lx, unsigned duration_s);

#endif
