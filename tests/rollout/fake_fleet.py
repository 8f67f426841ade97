#!/usr/bin/python3
"""Fake devices for the rollout tests (python3-paho-mqtt, cbor2): not tern's code.

  fake_fleet.py URL PREFIX COUNT LOG [options]

Devices dev-000 .. dev-(COUNT-1) run release sim-1.0.0-1 (sequence 1). Each reacts to
its signed desired state the way docs/mqtt.md describes the agent: it refuses a
generation not above the last one it accepted (event "refused", old-generation), and
otherwise installs (downloading, staged or trial, then confirmed or rolled-back),
activates a staged release, or reverts to the release in its other slot. An install of
the release it runs (not on trial) only settles: that is how an abort withdraws a
command (a staged release stays staged, not activated). States are retained on
dev/ID/state (with the last transition as key 13), transitions go to dev/ID/events.
The signature is not checked here (the protocol tests do that); the payload is read
with cbor2.

Faults come from the file LOG.faults, read again at every trial boot, one per line:
  bad RELEASE ID        the device fails the health check of RELEASE (rolls back)
  late RELEASE ID       the device confirms RELEASE, then rolls back 1.5 s later
  slowboot RELEASE ID   staged RELEASE (activate now), the device takes 3 s to reboot
                        into its trial and handles no command meanwhile (a board that
                        reboots): an abort then finds it staged, and the withdrawal
                        comes after the boot
  hang RELEASE ID       staged RELEASE, the device hangs (online) for 60 s: it answers
                        no command meanwhile
An install of a release older than the one it runs (by sequence) is refused as the agent
refuses it: a "refused" event, old-sequence.
Options:
  --offline ID,ID       these never connect (no state, no reaction)
  --ids ID,ID           these devices instead of dev-000 .. dev-(COUNT-1)
  --delay S             seconds between transitions (default 0.05)
Every accepted command is appended to LOG: "ID GENERATION ACTION RELEASE".
Runs until killed (SIGTERM); then says "offline" for each device, as its last will would.
"""
import signal
import sys
import threading
import time

import cbor2
import paho.mqtt.client as mqtt

STATES = {"idle": 0, "downloading": 1, "verifying": 2, "staged": 3, "trial": 4,
          "confirmed": 5, "rolled-back": 6, "failed": 7}
ST_HEALTH = 1  # wire status "error": the health check has no own status yet
ST_OLD_SEQUENCE = 14


class Device:
    def __init__(self, fleet, dev_id):
        self.f = fleet
        self.id = dev_id
        self.slots = [{1: "sim-1.0.0-1", 2: "1.0.0", 3: 1, 4: True}, {}]
        self.active = 0
        self.state = "idle"
        self.target = None
        self.generation = 0
        self.last_status = 0
        self.seq = 0
        self.last_event = None  # state key 13: the last event that tells an outcome
        self.lock = threading.Lock()

    def base(self):
        return "%s/dev/%s" % (self.f.prefix, self.id)

    def publish_state(self):
        st = {1: self.id, 2: "sim", 3: STATES[self.state], 4: self.active,
              5: [self.slots[0], self.slots[1]], 9: self.last_status, 10: self.generation,
              11: int(time.time()), 12: 1}
        if self.target:
            st[6] = self.target
        if self.last_event:
            st[13] = self.last_event
        self.f.pub(self.base() + "/state", cbor2.dumps(st), True)

    def event(self, kind, frm, to, release, status=0, detail=None, generation=None):
        self.seq += 1
        ev = {1: self.id, 2: self.seq, 3: int(time.time()), 4: kind, 5: STATES[frm],
              6: STATES[to], 8: status}
        if release:
            ev[7] = release
        if detail:
            ev[9] = detail
        if generation:
            ev[10] = generation
        raw = cbor2.dumps(ev)
        if kind == 0 or (kind == 1 and status != 23):  # not a refused copy (old-generation)
            self.last_event = raw
        self.f.pub(self.base() + "/events", raw, False)

    def go(self, to, release, status=0, detail=None):
        frm = self.state
        self.state = to
        if status:
            self.last_status = status
        self.event(0, frm, to, release, status, detail, self.generation)
        self.publish_state()
        time.sleep(self.f.delay)

    def on_desired(self, payload):
        msg = cbor2.loads(payload)
        d = cbor2.loads(msg.value[2])
        gen, rel, seq, action, activate = d[2], d[3], d[4], d[5], d[6]
        with self.lock:
            if gen <= self.generation:
                self.event(1, self.state, self.state, rel, 23,
                           "generation %d <= %d" % (gen, self.generation), gen)
                return
            self.generation = gen
            self.f.log("%s %d %s %s" % (self.id, gen, ["install", "activate", "revert"][action],
                                         rel))
            running_seq = self.slots[self.active].get(3, 0)
            if action == 0 and rel == self.slots[self.active].get(1) and \
                    self.state != "trial":
                self.publish_state()  # runs it already: settled
            elif action == 0 and seq < running_seq:
                self.event(1, self.state, self.state, rel, ST_OLD_SEQUENCE,
                           "sequence %d below the running %d" % (seq, running_seq), gen)
                self.publish_state()  # the generation is settled
            elif action == 0:
                self.install(rel, seq, activate)
            elif action == 1:
                if self.state == "staged":
                    self.trial(self.target)
            else:
                self.revert(rel)

    def install(self, rel, seq, activate):
        self.target = rel
        self.go("downloading", rel)
        other = 1 - self.active
        self.slots[other] = {1: rel, 2: rel.split("-")[1] if "-" in rel else rel, 3: seq,
                             4: False}
        self.go("verifying", rel)
        self.go("staged", rel)
        if activate == 0:
            faults = self.f.faults()
            if ("slowboot", rel, self.id) in faults:
                time.sleep(3)  # rebooting: commands wait (self.lock is held)
            if ("hang", rel, self.id) in faults:
                time.sleep(60)
            self.trial(rel)

    def trial(self, rel):
        other = 1 - self.active
        self.go("trial", rel)
        faults = self.f.faults()
        if ("bad", rel, self.id) in faults:
            self.slots[other][4] = False
            self.go("rolled-back", rel, ST_HEALTH, "health check failed (fake)")
            self.target = None
            self.publish_state()
            return
        self.active = other
        self.slots[other][4] = True
        self.target = None
        self.last_status = 0
        self.go("confirmed", rel)
        if ("late", rel, self.id) in faults:
            threading.Timer(1.5, self.late_rollback, (rel,)).start()

    def late_rollback(self, rel):
        with self.lock:
            self.active = 1 - self.active
            self.go("rolled-back", rel, ST_HEALTH, "watchdog reset after confirm (fake)")

    def revert(self, rel):
        for i, s in enumerate(self.slots):
            if s.get(1) == rel:
                frm = self.state
                self.active = i
                self.target = None
                self.state = "confirmed"
                self.event(0, frm, "confirmed", rel, 0, "reverted")
                self.publish_state()
                return
        self.event(1, self.state, self.state, rel, 19, "no slot holds %s" % rel, self.generation)


class Fleet:
    def __init__(self, url, prefix, count, log_path, offline, delay, ids=None):
        host, port = url.split("//", 1)[1].rsplit(":", 1)
        self.prefix = prefix
        self.delay = delay
        self.faults_path = log_path + ".faults"
        self.log_f = open(log_path, "a", buffering=1)
        self.log_lock = threading.Lock()
        self.devices = {}
        for dev_id in ids or ["dev-%03d" % i for i in range(count)]:
            if dev_id not in offline:
                self.devices[dev_id] = Device(self, dev_id)
        self.c = mqtt.Client(client_id="fake-fleet-%d" % time.time_ns(), clean_session=True)
        self.c.on_message = self.on_message
        self.c.on_connect = lambda cl, u, f, rc: cl.subscribe(prefix + "/dev/+/desired", qos=1)
        self.c.connect(host, int(port), keepalive=30)
        self.c.loop_start()
        self.queue = []
        self.cv = threading.Condition()

    def faults(self):
        try:
            with open(self.faults_path) as f:
                return {tuple(line.split()[:3]) for line in f if len(line.split()) >= 3}
        except OSError:
            return set()

    def pub(self, topic, payload, retain):
        self.c.publish(topic, payload, qos=1, retain=retain)

    def log(self, line):
        with self.log_lock:
            self.log_f.write(line + "\n")

    def on_message(self, cl, u, msg):
        dev_id = msg.topic.split("/")[-2]
        dev = self.devices.get(dev_id)
        if dev and msg.payload:
            # Devices work in their own threads, as real ones would in parallel.
            threading.Thread(target=dev.on_desired, args=(bytes(msg.payload),),
                             daemon=True).start()

    def start(self):
        for dev in self.devices.values():
            self.pub(dev.base() + "/online", b"online", True)
            dev.publish_state()


def main(argv):
    url, prefix, count, log_path = argv[1], argv[2], int(argv[3]), argv[4]
    offline, delay, ids = set(), 0.05, None
    rest = argv[5:]
    while rest:
        opt, val = rest[0], rest[1]
        rest = rest[2:]
        if opt == "--offline":
            offline = set(val.split(","))
        elif opt == "--delay":
            delay = float(val)
        elif opt == "--ids":
            ids = val.split(",")
        else:
            raise SystemExit(__doc__)
    fleet = Fleet(url, prefix, count, log_path, offline, delay, ids)
    time.sleep(0.3)
    fleet.start()
    print("fake fleet: %d devices up" % len(fleet.devices), flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    while not stop.wait(0.2):
        pass
    # What each device's last will would say (a real agent connects with one).
    infos = [fleet.c.publish(dev.base() + "/online", b"offline", qos=1, retain=True)
             for dev in fleet.devices.values()]
    for info in infos:
        info.wait_for_publish(timeout=5)
    fleet.c.loop_stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
