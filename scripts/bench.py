#!/usr/bin/python3
"""make bench: tern's benchmarks as ratios against baselines measured in the same run.

Machines are shared and noisy, so every figure is the median of several runs and is
printed next to a baseline (a standard tool doing the same work) measured alongside it.
Nothing here passes or fails: it prints figures and goals for a person to read.
"""
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("BUILD", os.path.join(ROOT, "build"))
TERN = os.path.join(BUILD, "tern")
RUNS = int(os.environ.get("BENCH_RUNS", "5"))
MIB = 1024 * 1024


def run_once(cmd, cwd):
    """Runs cmd; returns (wall seconds, peak RSS in KiB) of that command alone.

    The peak comes from /usr/bin/time: a child forked from Python would report
    Python's own memory from before exec as its peak."""
    with tempfile.NamedTemporaryFile("r") as rss_file:
        start = time.perf_counter()
        proc = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss_file.name] + cmd, cwd=cwd,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            sys.exit("bench: command failed: %s\n%s" % (" ".join(cmd), proc.stderr.decode(errors="replace")))
        return wall, int(rss_file.read().split()[-1])


def measure(cmd, cwd, before=None):
    """Median wall time and the largest peak RSS over RUNS runs (after one warm-up)."""
    if before:
        before()
    run_once(cmd, cwd)
    walls, rss = [], []
    for _ in range(RUNS):
        if before:
            before()
        w, r = run_once(cmd, cwd)
        walls.append(w)
        rss.append(r)
    return statistics.median(walls), max(rss)


def line(name, secs, size, base=None, rss=None, goal=""):
    rate = size / MIB / secs
    text = "  %-34s %7.3f s %8.0f MiB/s" % (name, secs, rate)
    if base is not None:
        text += "   %5.2fx baseline" % (base / secs)
    if rss is not None:
        text += "   peak %5.1f MiB" % (rss / 1024.0)
    if goal:
        text += "   (%s)" % goal
    print(text, flush=True)


def bench_release(work):
    size = int(os.environ.get("BENCH_RELEASE_MIB", "256")) * MIB
    payload = os.path.join(work, "payload.bin")
    with open(payload, "wb") as f:
        left = size
        while left:
            n = min(left, 4 * MIB)
            f.write(os.urandom(n))
            left -= n
    subprocess.run([TERN, "key", "generate", "--out", "bench.key"], cwd=work, check=True,
                   stdout=subprocess.DEVNULL)
    rel = os.path.join(work, "bench.tern")

    def remove_release():
        if os.path.exists(rel):
            os.unlink(rel)

    create = [TERN, "release", "create", "--key", "bench.key", "--board", "bench",
              "--version", "1.0.0", "--sequence", "1", "--firmware", "payload.bin",
              "--out", "bench.tern"]
    print("release: %d MiB payload, %d cores, median of %d runs" % (size // MIB, os.cpu_count(), RUNS))
    base, base_rss = measure(["openssl", "dgst", "-sha256", "payload.bin"], work)
    line("baseline: openssl dgst -sha256", base, size, rss=base_rss)
    secs, rss = measure(create, work, before=remove_release)
    line("tern release create", secs, size, base, rss, "goal >= 1.5x, peak < 16 MiB")
    if not os.path.exists(rel):
        subprocess.run(create, cwd=work, check=True, stdout=subprocess.DEVNULL)
    secs, rss = measure([TERN, "release", "verify", "bench.tern", "--pubkey", "bench.pub"], work)
    line("tern release verify", secs, size, base, rss, "goal >= 1.5x, peak < 16 MiB")
    secs, rss = measure([TERN, "release", "inspect", "bench.tern"], work)
    print("  %-34s %7.3f s                     peak %5.1f MiB" % ("tern release inspect", secs, rss / 1024.0))
    os.unlink(payload)


def bench_usb(work):
    """tern usb flash through the emulated bus (scripts/usb-emu) into the sim agent."""
    mib = int(os.environ.get("BENCH_USB_MIB", "6"))  # the sim's default slot is 8 MiB
    ternd = os.path.join(BUILD, "ternd")
    emu = [os.path.join(ROOT, "scripts", "usb-emu")]
    env = dict(os.environ, BUILD=BUILD)
    def q(cmd):
        subprocess.run(cmd, cwd=work, check=True, stdout=subprocess.DEVNULL, env=env)
    q([TERN, "key", "generate", "--out", "usb.key"])
    q([ternd, "sim", "mkimage", "--health", "ok", "--size", "%dM" % mib, "--version", "2.0.0",
       "--out", "usb.bin"])
    q([TERN, "release", "create", "--key", "usb.key", "--board", "sim", "--version", "2.0.0",
       "--sequence", "2", "--firmware", "usb.bin", "--out", "usb.tern"])
    print("usb: %d MiB release flashed into the sim agent over the emulated bus, median of %d"
          % (mib, RUNS))
    print("  (the emulator is umockdev over sockets, not a USB bus: its throughput is not a "
          "flashing speed)")
    walls, cpus, effs = [], [], []
    for i in range(RUNS + 1):
        devdir = os.path.join(work, "usbdevs")
        shutil.rmtree(devdir, ignore_errors=True)
        q(emu + ["--keyring", "usb.pub", "--dir", devdir, "--", "true"])  # device made, untimed
        with tempfile.NamedTemporaryFile("r") as tf:
            cmd = emu + ["--keyring", "usb.pub", "--dir", devdir, "--", "/usr/bin/time", "-f",
                         "%U %S", "-o", tf.name, TERN, "usb", "flash", "usb.tern", "--no-reboot"]
            start = time.perf_counter()
            out = subprocess.run(cmd, cwd=work, env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
            wall = time.perf_counter() - start
            if out.returncode != 0:
                sys.exit("bench: usb flash failed:\n" + out.stderr.decode(errors="replace"))
            user, system = (float(x) for x in tf.read().split()[-2:])
        text = out.stdout.decode()
        eff = float(text.split(" bytes on the wire per payload byte")[0].split()[-1])
        if i:  # the first run warms up
            walls.append(wall)
            cpus.append(user + system)
            effs.append(eff)
    print("  %-34s %7.4f bytes per payload byte   (goal <= 1.01 at the default frame size)"
          % ("protocol efficiency", statistics.median(effs)))
    print("  %-34s %7.3f s per MiB   (user + system, whole tern process)"
          % ("host CPU time", statistics.median(cpus) / mib))
    print("  %-34s %7.1f MiB/s   (emulated link, whole run incl. emulator start; reference only)"
          % ("emulated throughput", mib / statistics.median(walls)))
    # Finding a rebooted device again without hotplug events (no udevd): a fresh libusb
    # context per look, every 100 ms, while the device is off the bus for BOOT_MS.
    boot_ms = 1000
    waits, wcpus = [], []
    for i in range(RUNS):
        with tempfile.NamedTemporaryFile("r") as tf:
            cmd = emu + ["--no-uevents", "--boot-ms", str(boot_ms), "--", "/usr/bin/time", "-f",
                         "%U %S", "-o", tf.name, TERN, "usb", "reboot"]
            out = subprocess.run(cmd, cwd=work, env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
            if out.returncode != 0:
                sys.exit("bench: usb reboot failed:\n" + out.stderr.decode(errors="replace"))
            user, system = (float(x) for x in tf.read().split()[-2:])
        back = float(out.stdout.decode().split(" is back after ")[1].split()[0])
        waits.append(back)
        wcpus.append(user + system)
    print("  %-34s %7.1f s after REBOOT   (it is off the bus %.1f s; no hotplug events: polled)"
          % ("rebooted device found again", statistics.median(waits), boot_ms / 1000.0))
    print("  %-34s %7.2f s CPU   (whole tern usb reboot, user + system; 10 ms resolution)"
          % ("host CPU while it waits", statistics.median(wcpus)))


def bench_device(work):
    """ternd sim install (feed, verify every chunk, write the slot, fdatasync) against
    openssl dgst -sha256 + dd conv=fsync of the same bytes; and the agent's RAM."""
    ternd = os.path.join(BUILD, "ternd")
    mib = int(os.environ.get("BENCH_DEVICE_MIB", "256"))
    size = mib * MIB
    dev = os.path.join(work, "dev")
    subprocess.run([TERN, "key", "generate", "--out", "dev.key"], cwd=work, check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run([ternd, "sim", "mkimage", "--health", "ok", "--size", "%dM" % mib,
                    "--version", "2.0.0", "--out", "fw.bin"], cwd=work, check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run([TERN, "release", "create", "--key", "dev.key", "--board", "sim",
                    "--version", "2.0.0", "--sequence", "2", "--firmware", "fw.bin",
                    "--out", "fw.tern"], cwd=work, check=True, stdout=subprocess.DEVNULL)

    def fresh_device():
        shutil.rmtree(dev, ignore_errors=True)
        subprocess.run([ternd, "sim", "init", dev, "--keyring", "dev.pub",
                        "--slot-size", "%dM" % (mib + 1)], cwd=work, check=True,
                       stdout=subprocess.DEVNULL)
        os.sync()

    def no_copy():
        if os.path.exists(os.path.join(work, "dd.out")):
            os.unlink(os.path.join(work, "dd.out"))
        os.sync()

    print("device: %d MiB sim install, median of %d runs" % (mib, RUNS))
    base, base_rss = measure(["sh", "-c", "openssl dgst -sha256 fw.bin >/dev/null && "
                              "dd if=fw.bin of=dd.out bs=1M conv=fsync 2>/dev/null"],
                             work, before=no_copy)
    line("baseline: openssl dgst + dd fsync", base, size, rss=base_rss)
    secs, rss = measure([ternd, "sim", "install", dev, "fw.tern"], work, before=fresh_device)
    line("ternd sim install", secs, size, base, rss, "goal >= 0.8x")
    boot = subprocess.run([ternd, "sim", "reboot", dev], cwd=work, check=True,
                          capture_output=True, text=True).stdout.strip().splitlines()[-1]
    print("  after the install: %s" % boot)
    size_tool = os.path.join(BUILD, "tools", "agent-size")
    if os.access(size_tool, os.X_OK):
        out = subprocess.run([size_tool], check=True, capture_output=True, text=True).stdout
        print("  " + out.splitlines()[0])
    for name in ("fw.bin", "fw.tern", "dd.out"):
        if os.path.exists(os.path.join(work, name)):
            os.unlink(os.path.join(work, name))
    shutil.rmtree(dev, ignore_errors=True)


def start_broker(work):
    """A mosquitto on a free loopback port with the config tern ships (plain variant)."""
    import socket
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    conf_dir = os.path.join(work, "broker")
    os.makedirs(conf_dir, exist_ok=True)
    text = open(os.path.join(ROOT, "scripts", "mosquitto", "mosquitto.conf.template")).read()
    lines = []
    for ln in text.replace("@PORT@", str(port)).replace("@BIND@", "127.0.0.1") \
            .replace("@CONF_DIR@", conf_dir).replace("@PERSISTENCE@", "false").replace("@DATA_DIR@", conf_dir).splitlines():
        if ln.split(" ")[0] in ("password_file", "acl_file", "cafile", "certfile", "keyfile",
                                "tls_version"):
            continue
        lines.append(ln.replace("allow_anonymous false", "allow_anonymous true"))
    conf = os.path.join(conf_dir, "mosquitto.conf")
    open(conf, "w").write("\n".join(lines) + "\n")
    proc = subprocess.Popen(["mosquitto", "-c", conf], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), 0.1).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    sys.exit("bench: mosquitto did not start")


def publish_events(port, payloads, n_devices):
    """Publishes the payloads as events of n_devices devices at QoS 1; returns when the
    broker has acknowledged them all."""
    import paho.mqtt.client as mqtt
    c = mqtt.Client(client_id="bench-devices")
    c.max_inflight_messages_set(100)
    c.max_queued_messages_set(0)
    c.connect("127.0.0.1", port)
    c.loop_start()
    infos = [c.publish("tern/dev/bench-%d/events" % (i % n_devices), p, qos=1)
             for i, p in enumerate(payloads)]
    for info in infos:
        info.wait_for_publish()
    c.disconnect()
    c.loop_stop()


def bench_events(work):
    """Device events per second that `tern watch` records into SQLite.

    The events wait in the broker first (queued for the watcher's kept session), so the
    figure is how fast tern takes them from the broker into the database, not how fast
    a Python producer can send. Baseline: a plain paho subscriber (Python) that only
    counts, draining the same queue from the same broker."""
    import sqlite3
    import threading
    import cbor2
    import paho.mqtt.client as mqtt
    n = int(os.environ.get("BENCH_EVENTS", "50000"))
    n_devices = 100
    now = int(time.time())
    payloads = [cbor2.dumps({1: "bench-%d" % (i % n_devices), 2: i, 3: now, 4: 0, 5: 1, 6: 2,
                             7: "sim-1.1.0-2", 8: 0}) for i in range(n)]
    proc, port = start_broker(work)
    url = "mqtt://127.0.0.1:%d" % port
    db = os.path.join(work, "events.db")
    print("events: %d events from %d devices queued in mosquitto, median of %d runs"
          % (n, n_devices, RUNS))

    def fresh_db():
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(db + suffix):
                os.unlink(db + suffix)

    def watch():
        w = subprocess.Popen([TERN, "watch", "--quiet", "--client-id", "bench-watch",
                              "--broker", url, "--db", db],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        w.stderr.readline()  # "watching ..." once subscribed
        return w

    def raw_subscriber(counter, done):
        def on_message(cl, u, msg):
            counter[0] += 1
            if counter[0] == n:
                done.set()
        sub = mqtt.Client(client_id="bench-raw", clean_session=False)
        sub.on_message = on_message
        sub.connect("127.0.0.1", port)
        sub.subscribe("tern/dev/+/events", qos=1)
        sub.loop_start()
        return sub

    try:
        raw, rec = [], []
        for _ in range(RUNS):
            # Baseline: a session for the raw subscriber, the events queued, then drained.
            counter, done = [0], threading.Event()
            sub = raw_subscriber(counter, done)
            time.sleep(0.3)
            sub.disconnect()
            sub.loop_stop()
            publish_events(port, payloads, n_devices)
            counter[0] = 0
            t0 = time.perf_counter()
            sub = raw_subscriber(counter, done)
            done.wait(120)
            raw.append(time.perf_counter() - t0)
            sub.disconnect()
            sub.loop_stop()

            # tern watch: its session made, the events queued, then recorded.
            fresh_db()
            w = watch()
            w.terminate()
            w.wait()
            fresh_db()
            publish_events(port, payloads, n_devices)
            t0 = time.perf_counter()
            w = watch()
            con = sqlite3.connect(db, timeout=10)
            count = 0
            while count < n and time.perf_counter() - t0 < 120:
                time.sleep(0.01)
                count = con.execute("select count(*) from events").fetchone()[0]
            rec.append(time.perf_counter() - t0)
            con.close()
            w.terminate()
            w.wait()
            if count < n:
                sys.exit("bench: tern watch recorded %d of %d events" % (count, n))
        base = statistics.median(raw)
        secs = statistics.median(rec)
        print("  %-34s %7.3f s %8.0f events/s" % ("baseline: paho subscriber (Python)", base, n / base))
        print("  %-34s %7.3f s %8.0f events/s   %5.2fx baseline   (goal >= 10000 events/s)"
              % ("tern watch -> SQLite (WAL)", secs, n / secs, base / secs), flush=True)
    finally:
        proc.terminate()
        proc.wait()


def bench_rollout(work):
    """A 3-wave rollout of a 1 MiB release to 1000 sim devices (ternd fleet) with zero
    bake: the controller's overhead - wall time beyond the waves' own sending (paced at
    the rollout's rate: first to last desired state the broker took) and transfer times
    (from the last desired state the broker took to the last member's verdict) - its CPU
    time, and the database size after it. One run (it takes a while). The controller's
    CPU is signing a desired state per device, recording what devices report, and a
    step every 200 ms that judges only the members whose devices reported since the
    last step (docs/rollout.md). BENCH_ROLLOUT_RATE sets the rollout's --rate."""
    import sqlite3
    ternd = os.environ.get("TERND", os.path.join(BUILD, "ternd"))
    if subprocess.run([ternd, "fleet", "--help"], stdout=subprocess.DEVNULL,
                      stderr=subprocess.DEVNULL).returncode != 0:
        print("rollout: skipped - %s has no 'fleet' command (the fleet simulator)" % ternd)
        return
    n = int(os.environ.get("BENCH_ROLLOUT_DEVICES", "1000"))
    proc, port = start_broker(work)
    url = "mqtt://127.0.0.1:%d" % port
    db = os.path.join(work, "rollout.db")
    env = dict(os.environ, TERN_DB=db, TERN_BROKER=url)
    fleet = None

    def tern(*args, **kw):
        return subprocess.run([TERN] + list(args), cwd=work, env=env, check=True,
                              stdout=subprocess.DEVNULL, **kw)
    try:
        tern("key", "generate", "--out", "bench.key")
        subprocess.run([ternd, "sim", "mkimage", "--health", "ok", "--version", "2.0.0", "--size",
                        "1M", "--out", "fw.bin"], cwd=work, check=True, stdout=subprocess.DEVNULL)
        tern("release", "create", "--key", "bench.key", "--board", "sim", "--version", "2.0.0",
             "--sequence", "2", "--firmware", "fw.bin", "--out", "fw.tern")
        tern("publish", "fw.tern")
        fleet = subprocess.Popen([ternd, "fleet", "--devices", str(n), "--dir",
                                  os.path.join(work, "fleet"), "--broker", url, "--keyring",
                                  "bench.pub"], cwd=work, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        # Every device connected and reporting before the clock starts.
        seen = 0
        for _ in range(60):
            tern("watch", "--duration", "1", "--quiet", stderr=subprocess.DEVNULL)
            con = sqlite3.connect(db)
            seen = con.execute("select count(*) from devices where online=1").fetchone()[0]
            con.close()
            if seen >= n:
                break
        if seen < n:
            sys.exit("bench: only %d of %d devices came online" % (seen, n))
        ids = ",".join("sim-%04d" % (i + 1) for i in range(n))
        tern("rollout", "create", "fw.tern", "--key", "bench.key", "--name", "bench",
             "--devices", ids, "--waves", "1%,10%,100%", "--bake", "0", "--max-failures", "5%",
             *(["--rate", os.environ["BENCH_ROLLOUT_RATE"]]
               if os.environ.get("BENCH_ROLLOUT_RATE") else []))
        with tempfile.NamedTemporaryFile("r") as tf:
            t0 = time.perf_counter()
            r = subprocess.run(["/usr/bin/time", "-f", "%U %S", "-o", tf.name, TERN, "rollout",
                                "run", "bench"], cwd=work, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
            wall = time.perf_counter() - t0
            if r.returncode != 0:
                sys.exit("bench: rollout run failed: %s" % r.stderr.decode(errors="replace"))
            user, system = (float(x) for x in tf.read().split()[-2:])
        con = sqlite3.connect(db)
        waves = con.execute(
            "select w.wave, w.size, min(m.deployed_at), max(m.deployed_at), max(m.outcome_at),"
            " w.started_at, w.gated_at, sum(m.outcome='succeeded'), r.rate from rollout_waves w"
            " join rollouts r on r.name=w.rollout join rollout_members m"
            " on m.rollout=w.rollout and m.wave=w.wave where w.rollout='bench'"
            " group by w.wave order by w.wave").fetchall()
        con.execute("pragma wal_checkpoint(TRUNCATE)")
        con.close()
        size = sum(os.path.getsize(db + s) for s in ("", "-wal") if os.path.exists(db + s))
        rate = waves[0][8] if waves else 0
        print("rollout: %d devices, 1 MiB release, waves 1%%,10%%,100%%, zero bake, %s"
              % (n, "%d desired states a second" % rate if rate else "each wave at once"))
        transfer = sending = 0.0
        for wave, wsize, first_sent, last_sent, last_verdict, started, gated, ok, _ in waves:
            t = last_verdict - last_sent
            transfer += t
            sending += last_sent - first_sent
            print("  wave %d: %4d devices, %4d succeeded, sent over %5.2f s, transfer %5.2f s,"
                  " wave %5.2f s" % (wave + 1, wsize, ok, last_sent - first_sent, t,
                                     gated - started))
        print("  %-34s %7.2f s" % ("rollout run, wall", wall))
        print("  %-34s %7.2f s" % ("the waves' sending (--rate)", sending))
        print("  %-34s %7.2f s" % ("the waves' transfers", transfer))
        rest = wall - sending - transfer
        print("  %-34s %7.2f s   (%.0f%% of the wall time)"
              % ("controller overhead", rest, 100.0 * rest / wall))
        print("  %-34s %7.2f s   (user %.2f, system %.2f)" % ("controller CPU", user + system,
                                                                user, system))
        print("  %-34s %s" % ("", "(signing %d desired states, recording the devices' reports,"
                                  % n))
        print("  %-34s %s" % ("", " steps every 200 ms judging only members that reported)"))
        print("  %-34s %7.1f MiB (%d bytes per device)" % ("database after it", size / MIB,
                                                               size // n), flush=True)
    finally:
        if fleet:
            fleet.terminate()
            fleet.wait()
        proc.terminate()
        proc.wait()


def bench_fleet(work):
    """1 MiB release to N sim devices in one `ternd fleet` process through one mosquitto
    on loopback: time from `tern deploy` until every device is CONFIRMED, against the
    raw fan-out of the same chunks by the same broker to N plain paho subscribers in
    one process (build/tools/fanout, C), measured before, between and after the fleet
    runs."""
    import json
    ternd = os.path.join(BUILD, "ternd")
    fanout = os.path.join(BUILD, "tools", "fanout")
    n = int(os.environ.get("BENCH_FLEET_DEVICES", "1000"))
    # The measure is one fleet process against one process of raw subscribers.
    # BENCH_FLEET_PROCESSES=P runs `ternd fleet --processes P` instead and also times the
    # raw fan-out split the same way: paho has one receive thread per process, and its
    # work per packet walks every client of the process (real devices each have their own).
    procs = int(os.environ.get("BENCH_FLEET_PROCESSES", "1"))
    chunk_kib = int(os.environ.get("BENCH_FLEET_CHUNK_KIB", "16"))  # the release default
    env = dict(os.environ, TERN_DB=os.path.join(work, "fleet.db"))
    run = lambda cmd: subprocess.run(cmd, cwd=work, check=True, env=env, stdout=subprocess.DEVNULL)
    run([TERN, "key", "generate", "--out", "fleet.key"])
    run([ternd, "sim", "mkimage", "--health", "ok", "--size", "1M", "--version", "2.0.0",
         "--out", "fw.bin"])
    run([TERN, "release", "create", "--key", "fleet.key", "--board", "sim", "--version", "2.0.0",
         "--sequence", "2", "--chunk-size", "%dK" % chunk_kib, "--firmware", "fw.bin",
         "--out", "fw.tern"])
    proc, port = start_broker(work)
    url = "mqtt://127.0.0.1:%d" % port
    n_chunks = 1024 // chunk_kib
    try:
        run([TERN, "publish", "fw.tern", "--broker", url])
        print("fleet: 1 MiB release (%d chunks of %d KiB) to %d devices, one mosquitto on loopback, "
              "%d cores" % (n_chunks, chunk_kib, n, os.cpu_count()), flush=True)

        def cpu_of(pid):
            """CPU seconds (user + system) a process has used so far."""
            f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
            return (int(f[11]) + int(f[12])) / float(os.sysconf("SC_CLK_TCK"))

        def threads_cpu(pid):
            """CPU seconds per thread name (paho's receive and send threads, ternd's), and
            under "wait:<name>" the seconds they were ready to run but waited for a core
            (/proc/PID/task/TID/schedstat)."""
            out = {}
            for tid in os.listdir("/proc/%d/task" % pid):
                name = open("/proc/%d/task/%s/comm" % (pid, tid)).read().strip()
                f = open("/proc/%d/task/%s/stat" % (pid, tid)).read().rsplit(")", 1)[1].split()
                out[name] = out.get(name, 0) + (int(f[11]) + int(f[12])) / float(os.sysconf("SC_CLK_TCK"))
                try:
                    waited = int(open("/proc/%d/task/%s/schedstat" % (pid, tid)).read().split()[1])
                    out["wait:" + name] = out.get("wait:" + name, 0) + waited / 1e9
                except (OSError, IndexError, ValueError):
                    pass
            return out

        def baseline(p=1):
            """The raw fan-out by P fanout processes of N/P subscribers that subscribe at
            the same moment: (seconds until the last has everything, their CPU, broker CPU)."""
            b0 = cpu_of(proc.pid)
            start_at = time.time() + n / 250.0 + 3.0
            runs = [subprocess.Popen([fanout, "tcp://127.0.0.1:%d" % port,
                                      str(n * (k + 1) // p - n * k // p),
                                      "tern/rel/sim-2.0.0-2/firmware/+/+", str(n_chunks),
                                      str(max(1, 250 // p)), "%.3f" % start_at],
                                     stdout=subprocess.PIPE, text=True) for k in range(p)]
            secs = cpu = 0.0
            for r in runs:
                out = r.communicate()[0].split()
                if r.returncode != 0:
                    sys.exit("bench: fanout failed: %s" % " ".join(out))
                secs, cpu = max(secs, float(out[-2])), cpu + float(out[-4].rstrip(","))
            return secs, cpu, cpu_of(proc.pid) - b0

        raw, raw_p = [], []

        def raw_run():
            """One raw fan-out (and one split over P processes when the fleet is), printed."""
            raw.append(baseline())
            print("  %-44s %7.3f s   cpu: subscribers %.1f s, broker %.1f s"
                  % (("baseline: %d paho subscribers (C), run %d" % (n, len(raw)),) + raw[-1]),
                  flush=True)
            if procs > 1:
                raw_p.append(baseline(procs))
                print("  %-44s %7.3f s   cpu: subscribers %.1f s, broker %.1f s"
                      % (("baseline: the same in %d processes, run %d" % (procs, len(raw_p)),)
                         + raw_p[-1]), flush=True)

        raw_run()
        def fleet_run(k):
            """One fresh fleet of N devices, booted and connected, then deploy and wait
            until every device is CONFIRMED. Each run has its own device ids (the broker
            keeps the earlier runs' desired states). The hooks (perf, the status log)
            watch run 1."""
            id_prefix = "run%d-" % (k + 1)
            devices = []
            for i in range(n):
                devices += ["--device", "%s%04d" % (id_prefix, i + 1)]
            fleet_dir = os.path.join(work, "fleet")
            t_init = time.perf_counter()
            fl = subprocess.Popen([ternd, "fleet", "--devices", str(n), "--dir", fleet_dir,
                                   "--broker", url, "--keyring", "fleet.pub", "--slot-size", "1M",
                                   "--processes", str(procs), "--json", "--report-ms",
                                   os.environ.get("BENCH_FLEET_REPORT_MS", "50"),
                                   "--id-prefix", id_prefix]
                                  + (["--workers", os.environ["BENCH_FLEET_WORKERS"]]
                                     if os.environ.get("BENCH_FLEET_WORKERS") else []),
                                  cwd=work, env=env,
                                  stdout=subprocess.PIPE, text=True)
            status = None
            for line in fl.stdout:
                status = json.loads(line)
                if status.get("connected") == n:
                    break
            up = time.perf_counter() - t_init
            fleet_pids = [fl.pid] + [int(c) for c in open("/proc/%d/task/%d/children" % (fl.pid, fl.pid)).read().split()]

            def fleet_cpu_now():
                return sum(cpu_of(p) for p in fleet_pids)

            def fleet_threads_now():
                out = {}
                for p in fleet_pids:
                    for k, v in threads_cpu(p).items():
                        out[k] = out.get(k, 0) + v
                return out

            c0, b0, th0 = fleet_cpu_now(), cpu_of(proc.pid), fleet_threads_now()
            perf = None
            if os.environ.get("BENCH_PERF") and k == 0:  # perf on the fleet from deploy to all CONFIRMED
                what = os.environ.get("BENCH_PERF_ARGS", "record -g -q").split()
                perf = subprocess.Popen(["perf"] + what + ["-o", os.environ["BENCH_PERF"],
                                         "-p", ",".join(str(p) for p in fleet_pids)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(0.5)
            # tern deploy as an operator runs it (paced at its default rate, docs/mqtt.md
            # "Pacing a deploy"); the fleet's status lines are read while it runs.
            t0 = time.time()
            dep = subprocess.Popen([TERN, "deploy", "sim-2.0.0-2", "--key", "fleet.key", "--broker",
                                    url] + devices, cwd=work, env=env, stdout=subprocess.DEVNULL)
            t_deploy = first = half = None
            done = fleet_cpu = broker_cpu = th1 = None
            log = open(os.environ["BENCH_FLEET_LOG"], "w") if os.environ.get("BENCH_FLEET_LOG") and k == 0 else None
            for line in fl.stdout:
                status = json.loads(line)
                if log:  # the status lines from deploy on, with the time since deploy began
                    log.write("%.3f %s" % (status["unix"] - t0, line))
                if t_deploy is None and dep.poll() is not None:
                    t_deploy = time.time() - t0
                    if dep.returncode != 0:
                        break  # said below
                confirmed = status.get("states", {}).get("confirmed", 0)
                if first is None and confirmed >= 1:
                    first = status["unix"] - t0
                if half is None and confirmed >= n / 2:
                    half = status["unix"] - t0
                if confirmed == n:
                    done = status["unix"] - t0
                    fleet_cpu, broker_cpu = fleet_cpu_now() - c0, cpu_of(proc.pid) - b0
                    th1 = fleet_threads_now()
                    break
                if status["unix"] - t0 > 600:
                    break
            if dep.wait() != 0:
                sys.exit("bench: tern deploy failed (exit %d)" % dep.returncode)
            if t_deploy is None:
                t_deploy = time.time() - t0
            if perf:
                perf.send_signal(signal.SIGINT)
                perf.wait()
            fl.terminate()
            rest = fl.communicate()[0].splitlines()
            final = json.loads(rest[-1]) if rest else status
            shutil.rmtree(fleet_dir, ignore_errors=True)
            print("  %-44s %7.3f s   (devices up in %.1f s, deploy %.3f s; first CONFIRMED %.2f s,"
                  " half %.2f s)"
                  % ("fleet run %d: deploy -> all %d CONFIRMED" % (k + 1, n),
                     done if done is not None else float("nan"), up, t_deploy,
                     first if first is not None else float("nan"),
                     half if half is not None else float("nan")), flush=True)
            if th1:
                # The run's length follows the receive thread's CPU; when every process
                # needs more CPU for the same packets (the broker too), the machine was
                # in a slower phase (docs/mqtt.md, "Eighth session").
                print("  %-44s cpu: paho receive thread %.2f s (waited %.2f s for a core),"
                      " device work %.2f s, broker %.2f s"
                      % ("", th1.get("MQTTAsync_rcv", 0) - th0.get("MQTTAsync_rcv", 0),
                         th1.get("wait:MQTTAsync_rcv", 0) - th0.get("wait:MQTTAsync_rcv", 0),
                         th1.get("ternd", 0) - th0.get("ternd", 0), broker_cpu), flush=True)
            return {"done": done, "status": status, "final": final, "t_deploy": t_deploy,
                    "fleet_cpu": fleet_cpu, "broker_cpu": broker_cpu, "th0": th0, "th1": th1}

        # Five fleet runs with the raw fan-out before, between and after them: a single
        # run here can land in a slower phase of this shared machine, which costs the
        # fleet more than the raw fan-out (docs/mqtt.md, "Eighth session"); one or two such
        # runs among five leave the median where the other runs put it.
        n_runs = int(os.environ.get("BENCH_FLEET_RUNS", "5"))
        runs = []
        for k in range(n_runs):
            runs.append(fleet_run(k))
            if k == (n_runs - 1) // 2 and n_runs > 2:
                raw_run()
        raw_run()
        base = statistics.median([r[0] for r in raw])
        failed = [r for r in runs if r["done"] is None]
        if failed:
            print("  fleet: not all CONFIRMED: %s" % failed[0]["status"])
            return
        # The median run speaks for the fleet (the runs differ by up to a fifth here).
        ordered = sorted(runs, key=lambda r: r["done"])
        med = ordered[len(ordered) // 2]
        done, t_deploy, final = med["done"], med["t_deploy"], med["final"]
        fleet_cpu, broker_cpu, th0, th1 = med["fleet_cpu"], med["broker_cpu"], med["th0"], med["th1"]
        print("  %-44s %s" % ("fleet runs, ratio to the raw time",
                              ", ".join("%.2fx" % (r["done"] / base) for r in runs)))
        print("  %-44s %7.3f s" % ("tern deploy (signs, paces %d desired states)" % n, t_deploy))
        if procs == 1:
            print("  %-44s %7.3f s   %5.2fx the raw time   (goal <= 1.5x: %s)"
                  % ("deploy -> all %d CONFIRMED, median run" % n, done, done / base,
                     "met" if done / base <= 1.5 else "not met"))
        else:
            print("  %-44s %7.3f s   %5.2fx the raw time of one process (the goal is for one"
                  " fleet process)" % ("deploy -> all %d CONFIRMED, median run" % n, done,
                                       done / base))
        if raw_p:
            base_p = statistics.median([r[0] for r in raw_p])
            print("  %-44s %7.3f s   %5.2fx the raw time of %d processes"
                  % ("", done, done / base_p, procs))
        print("  %-44s cpu: fleet %.1f s (%.1f ms per device; %s), broker %.1f s"
              % ("", fleet_cpu, fleet_cpu * 1000.0 / n,
                 ", ".join("%s %.1f s" % (k, th1[k] - th0.get(k, 0)) for k in sorted(th1)
                           if not k.startswith("wait:")),
                 broker_cpu))
        print("  %-44s waited for a core while ready: %s"
              % ("", ", ".join("%s %.2f s" % (k[5:], th1[k] - th0.get(k, 0)) for k in sorted(th1)
                               if k.startswith("wait:"))))
        work_cpu = sum(th1[k] - th0.get(k, 0) for k in th1 if not k.startswith(("MQTTAsync", "tern_outbox", "wait:")))
        paho_cpu = sum(th1[k] - th0.get(k, 0) for k in th1 if k.startswith(("MQTTAsync", "tern_outbox")))
        raw_cpu = statistics.median([r[1] for r in (raw_p or raw)])
        print("  %-44s what the difference is made of: device work %.1f s of CPU (two P-256\n"
              "  %-44s checks, SHA-256 of every chunk and of the slot at the trial boot, flash\n"
              "  %-44s writes, records), paho %.1f s with the outbox thread that makes the\n"
              "  %-44s devices' paho calls (the receive thread walks every client of its process\n"
              "  %-44s per packet; devices add publishes and subscriptions) against the raw\n"
              "  %-44s subscribers' %.1f s, on %d cores shared with the broker"
              % ("", work_cpu, "", "", paho_cpu, "", "", "", raw_cpu, os.cpu_count()))
        rss = final.get("peak_rss_kib", 0)
        print("  fleet process peak RSS %.0f MiB (%.0f KiB per device); chunks fetched %d (%d per device)"
              % (rss / 1024.0, rss / float(n), final.get("chunks", 0), final.get("chunks", 0) // n),
              flush=True)
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(os.path.join(work, "fleet"), ignore_errors=True)


BENCHES = [("release", bench_release), ("device", bench_device), ("events", bench_events),
           ("usb", bench_usb), ("fleet", bench_fleet), ("rollout", bench_rollout)]


def main():
    if not os.access(TERN, os.X_OK):
        sys.exit("bench: %s missing; run make first" % TERN)
    only = sys.argv[1:]
    work = tempfile.mkdtemp(prefix="tern-bench-")
    try:
        for name, fn in BENCHES:
            if only and name not in only:
                continue
            fn(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
