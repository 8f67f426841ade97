/* `ternd run`'s MQTT loop (boards/linux/mqtt.c, docs/linux.md "run"). */
#ifndef TERN_LINUX_MQTT_PRIV_H
#define TERN_LINUX_MQTT_PRIV_H

#include "tern/tern_linux.h"

#include <stdbool.h>

/*
 * Serves the agent of @lx over MQTT ([mqtt] of its config) through the transport
 * (tern_mqttdev.h) until SIGTERM or SIGINT, or for @duration_s seconds when not 0: one
 * thread steps the transport, woken by paho through an eventfd. With @with_usb it also
 * serves USB ([usb] functionfs, tern_ffs_serve) on a thread of its own: both take one
 * lock for every agent call, an install over one makes the other's answer busy, and
 * what USB does to the agent is reported over MQTT.
 * When an update is activated over MQTT, or the USB host asks for a reboot, it stops
 * both (offline published) and sets *@reboot_why: the caller closes the device and
 * runs [system] reboot, as a real reboot ends the process; the next `ternd run` does
 * the trial. Prints what it does, and one line with the reason of a failure. Returns 0
 * (stopped, or a reboot is due), or a TERN_E_* code (bad [mqtt] settings, USB failed,
 * the bootloader could not be armed).
 */
int tern_linux_serve(struct tern_linux *lx, unsigned duration_s, bool with_usb,
		     const char **reboot_why);

#endif
