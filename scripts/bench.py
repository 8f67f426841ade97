#!/usr/bin/python3
"""make bench: tern's benchmarks as ratios against baselines measured in the same run.

Machines are shared and noisy, so every figure is the median of several runs and is
printed next to a baseline (a standard tool doing the same work) measured alongside it.
Nothing here passes or fails: it prints figures and goals for a person to read.
"""
import os
import shutil
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


BENCHES = [("release", bench_release), ("device", bench_device), ("usb", bench_usb)]


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
