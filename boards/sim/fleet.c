/*
 * `ternd fleet`: many sim devices in one process, each with its own folder, agent and
 * MQTT client (transport/), driven by a few worker threads. paho's callbacks only queue
 * and wake the worker that owns the device; all agent and flash work runs there.
 */
#include "fleet_priv.h"
#include "simdir_priv.h"

#include "tern/tern_crc32.h"
#include "tern/tern_err.h"
#include "tern/tern_mqttdev.h"
#include "tern/tern_sim.h"
#include "tern/tern_topic.h"

#include <errno.h>
#include <malloc.h>
#include <fcntl.h>
#include <dirent.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char fleet_help[] =
    "usage: ternd fleet --devices N --dir DIR --broker URL [--keyring signing.pub]\n"
    "         [--prefix P] [--board sim] [--id-prefix sim-] [--version 1.0.0]\n"
    "         [--slot-size 2M] [--processes 1] [--workers N] [--connect-rate N]\n"
    "         [--duration S] [--json]\n"
    "         [--report-ms 1000]\n"
    "         [--username U | --username-from-id] [--password P] [--cafile CA]\n"
    "         [--password-file FILE] [--cert-dir DIR]\n"
    "         [--retry-min-ms 500] [--retry-max-ms 16000] [--max-attempts 8]\n"
    "         [--fetch-timeout-ms 10000]\n"
    "         [--unhealthy SEL] [--crash SEL] [--power-cut SEL] [--power-cut-install SEL]\n"
    "         [--net-drop SEL] [--slow SEL] [--slow-ms 50] [--off-ms 2000] [--drop-ms 2000]\n"
    "\n"
    "Runs N simulated devices (ids ID-PREFIX0001...) in one process, each in DIR/ID (made\n"
    "with 'ternd sim init' semantics when missing, so 'ternd sim status DIR/ID' works\n"
    "afterwards), each with its own MQTT client. Devices reboot inside the process.\n"
    "SEL picks devices for a fault: 'all', a percentage '10%', or ids 'sim-0001,sim-0002'.\n"
    "  --unhealthy/--crash    the trial image fails its health check / crashes on boot\n"
    "  --power-cut            power fails halfway through the download (back after --off-ms)\n"
    "  --power-cut-install    power fails near the end (last chunk, finish or activate)\n"
    "  --net-drop             the connection drops halfway (back after --drop-ms)\n"
    "  --slow                 at most one chunk per --slow-ms\n"
    "--processes P: the devices split over P processes (each with its own MQTT threads and\n"
    "  --workers threads); status and summary lines are for the whole fleet.\n"
    "--username-from-id: each device logs in as its own id (the ACL template's rule).\n"
    "--password-file FILE: lines ID:PASSWORD ('#' comments), one per device; each device\n"
    "  logs in as its id with its own password.\n"
    "--cert-dir DIR: each device presents DIR/ID.crt and DIR/ID.key (mqtts://; a broker\n"
    "  with use_identity_as_username takes the certificate's CN as the username).\n"
    "Runs until SIGINT/SIGTERM or --duration; prints a summary. --json: a status line\n"
    "every --report-ms and one line per device at the end.\n";

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
	(void)sig;
	stop_signal = 1;
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

enum fault { F_UNHEALTHY, F_CRASH, F_CUT_DOWNLOAD, F_CUT_INSTALL, F_NET_DROP, F_SLOW, F__COUNT };
_Static_assert(F__COUNT == FLEET_N_FAULTS, "one selection per fault");

static const char *const fault_flags[F__COUNT] = {
    "--unhealthy", "--crash", "--power-cut", "--power-cut-install", "--net-drop", "--slow",
};

struct fleet;
struct worker;

struct fdev {
	struct fleet *fl;
	struct worker *w;
	unsigned index;
	char id[TERN_DEVICE_ID_MAX + 1];
	struct simdev sd;
	struct tern_mqttdev *mq;
	atomic_bool ready;   /* paho queued something */
	atomic_bool started; /* the main thread has started its transport */
	bool faults[F__COUNT];
	bool cut_armed, drop_done;
	bool off; /* power cut: waiting for power_on_at */
	uint64_t power_on_at;
	uint64_t next_ms;
	unsigned power_cuts;
	const char *password;		 /* into fleet.passwords, or the shared --password */
	char cert[2100], cert_key[2100]; /* --cert-dir DIR/ID.crt, DIR/ID.key */
	uint64_t rec_seq; /* sequence of the newest copy of the record (see rec_load) */
	char record_path[2100];
};

/*
 * A worker owns devices first, first + step, ... Devices with queued messages wait in
 * its ready ring (each at most once, thanks to fdev.ready); timers are found by a scan
 * of its devices when the earliest one is due.
 */
struct worker {
	struct fleet *fl;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool sleeping;
	struct fdev **ring; /* capacity n_ring */
	unsigned n_ring, ring_head, ring_len;
	struct fdev **batch; /* the worker's copy of the ring */
	unsigned first, step;
};

struct fleet {
	struct fleet_args a;
	char uri[300];
	struct fdev *devs;
	unsigned n;
	struct worker *workers;
	unsigned n_workers;
	char *passwords;	  /* --password-file's text, split in place */
	unsigned base;		  /* global number of devs[0] (a slice of the fleet per process) */
	unsigned total;		  /* devices in the whole fleet */
	struct shared_slot *slot; /* this process's census for the parent, or NULL */
	struct tern_mqtt_outbox *outbox; /* makes the paho calls of this process's devices */
	atomic_bool stop;
};

/* ---- board hooks for the transport */

/*
 * The transport's record lives in DEVDIR/mqtt.state as two copies in fixed slots of
 * REC_SLOT bytes, written in place by turns, each "tern-record SEQ LEN CRC32\n" and the
 * text: a store overwrites the older copy, so a write torn by a crash leaves the newer
 * one valid, and loading takes the valid copy with the higher SEQ. It replaced writing a
 * temporary file and renaming it over the record, which made ext4 allocate an inode per
 * store (about 8 per device and update; 15% of the workers' time at 1000 devices).
 * A record written by an older ternd (plain text) is still read.
 */
#define REC_SLOT  4096
#define REC_MAGIC "tern-record "
_Static_assert(TERN_MQTTDEV_RECORD_MAX + 64 <= REC_SLOT, "a record and its header fit a slot");

/* A decimal or (with @base 16) hex number ending at @end_char; false when malformed. */
static bool rec_num(const char **p, const char *end, int base, char end_char, uint64_t *out)
{
	char *stop;
	if (*p >= end || !((**p >= '0' && **p <= '9') || (base == 16 && **p >= 'a' && **p <= 'f')))
		return false;
	unsigned long long v = strtoull(*p, &stop, base);
	if (stop >= end || *stop != end_char)
		return false;
	*out = v;
	*p = stop + 1;
	return true;
}

/* The copy in @slot (@n bytes): true with its sequence and text when whole. */
static bool rec_slot_parse(const char *slot, size_t n, uint64_t *seq, const char **text,
			   size_t *len)
{
	const char *p = slot, *end = slot + n;
	uint64_t l, crc;
	if (n < sizeof(REC_MAGIC) || memcmp(p, REC_MAGIC, sizeof(REC_MAGIC) - 1))
		return false;
	p += sizeof(REC_MAGIC) - 1;
	if (!rec_num(&p, end, 10, ' ', seq) || !rec_num(&p, end, 10, ' ', &l) ||
	    !rec_num(&p, end, 16, '\n', &crc) || l > (uint64_t)(end - p) ||
	    tern_crc32(0, p, (size_t)l) != crc)
		return false;
	*text = p;
	*len = (size_t)l;
	return true;
}

static int rec_load(void *ctx, uint8_t *buf, size_t size, size_t *len)
{
	struct fdev *fd = ctx;
	char raw[2 * REC_SLOT + 1];
	size_t n;
	int rc = read_small(fd->record_path, raw, sizeof(raw), &n);
	fd->rec_seq = 0;
	*len = 0;
	if (rc == TERN_E_NOT_FOUND || (rc == 0 && n == 0))
		return 0;
	if (rc)
		return rc;
	if (!strncmp(raw, "generation=", 11) && !memchr(raw, '\0', n)) {
		if (n > size) /* plain text from an older ternd (mqttdev.c writes it so) */
			return TERN_E_TOO_LARGE;
		memcpy(buf, raw, n);
		*len = n;
		return 0;
	}
	bool found = false;
	for (size_t k = 0; k < 2 && k * REC_SLOT < n; k++) {
		uint64_t seq;
		const char *text;
		size_t tlen;
		size_t avail = n - k * REC_SLOT < REC_SLOT ? n - k * REC_SLOT : REC_SLOT;
		if (!rec_slot_parse(raw + k * REC_SLOT, avail, &seq, &text, &tlen) ||
		    (found && seq <= fd->rec_seq) || tlen > size)
			continue;
		memcpy(buf, text, tlen);
		*len = tlen;
		fd->rec_seq = seq;
		found = true;
	}
	if (!found) {
		fprintf(stderr,
			"ternd: fleet: %s: both copies of the device's MQTT record are damaged; "
			"remove the file to start this device without it\n",
			fd->record_path);
		return TERN_E_MALFORMED;
	}
	return 0;
}

static int rec_store(void *ctx, const uint8_t *buf, size_t len)
{
	struct fdev *fd = ctx;
	char slot[REC_SLOT];
	uint64_t seq = fd->rec_seq + 1;
	int h = snprintf(slot, sizeof(slot), REC_MAGIC "%llu %zu %08lx\n", (unsigned long long)seq,
			 len, (unsigned long)tern_crc32(0, buf, len));
	if (h < 0 || (size_t)h + len > sizeof(slot))
		return TERN_E_TOO_LARGE;
	memcpy(slot + h, buf, len);
	int f = open(fd->record_path, O_WRONLY | O_CREAT, 0644);
	if (f < 0)
		return TERN_E_IO;
	size_t total = (size_t)h + len;
	ssize_t w = pwrite(f, slot, total, (off_t)((seq - 1) % 2) * REC_SLOT);
	int crc = close(f);
	if (w < 0 || (size_t)w != total || crc)
		return TERN_E_IO;
	fd->rec_seq = seq;
	return 0;
}

static int dev_boot(struct fdev *fd)
{
	struct tern_sim_device *dev = &fd->sd.dev;
	int rc = tern_sim_boot(dev, SIMDEV_MAX_BOOTS);
	fd->sd.powered = rc == 0;
	int src = save_running(&fd->sd);
	return rc ? rc : src;
}

static int rec_reboot(void *ctx)
{
	return dev_boot(ctx);
}

static void on_power_lost(void *ctx)
{
	struct fdev *fd = ctx;
	fd->off = true;
	fd->power_cuts++;
	fd->power_on_at = now_ms() + fd->fl->a.off_ms;
	fd->sd.powered = false;
	save_running(&fd->sd);
}

/*
 * paho's thread: something was queued for @arg. Cheap when it is queued already.
 * fd->ready is true exactly while the device sits in its worker's ready ring (only the
 * worker's batch loop, which takes it out, clears it), so a device is in the ring at
 * most once and the ring (one place per device) never overflows. A timer scan that
 * cleared it too let a device enter the ring twice; a full ring then dropped a
 * notification and that device stalled until its next timer, up to a second.
 */
static void notify(void *arg)
{
	struct fdev *fd = arg;
	if (atomic_exchange(&fd->ready, true))
		return;
	struct worker *w = fd->w;
	pthread_mutex_lock(&w->lock);
	if (w->ring_len < w->n_ring) {
		w->ring[(w->ring_head + w->ring_len) % w->n_ring] = fd;
		w->ring_len++;
	}
	if (w->sleeping)
		pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

/* ---- faults */

static uint32_t mix(uint32_t x)
{
	x ^= x >> 16;
	x *= 0x7feb352du;
	x ^= x >> 15;
	x *= 0x846ca68bu;
	x ^= x >> 16;
	return x;
}

/* True when device @idx / @id is selected by @sel ("all", "N%", "id,id,..."). */
static bool selected(const char *sel, unsigned idx, const char *id, unsigned salt)
{
	if (!sel)
		return false;
	if (!strcmp(sel, "all"))
		return true;
	size_t len = strlen(sel);
	if (len > 1 && sel[len - 1] == '%') {
		char *end;
		unsigned long pct = strtoul(sel, &end, 10);
		return end == sel + len - 1 && mix(idx * 2654435761u + salt) % 100 < pct;
	}
	size_t idlen = strlen(id);
	for (const char *p = sel; *p;) {
		const char *comma = strchr(p, ',');
		size_t l = comma ? (size_t)(comma - p) : strlen(p);
		if (l == idlen && !strncmp(p, id, l))
			return true;
		p = comma ? comma + 1 : p + l;
	}
	return false;
}

static void apply_faults(struct fdev *fd, uint64_t now)
{
	struct tern_agent *ag = &fd->sd.dev.agent;
	if (ag->state != TERN_ST_DOWNLOADING || fd->off)
		return;
	uint64_t total = 0, verified = 0;
	for (unsigned i = 0; i < ag->job.n_comp; i++) {
		total += ag->job.comp[i].n_chunks;
		verified += ag->job.comp[i].n_verified;
	}
	if (!fd->cut_armed && fd->faults[F_CUT_DOWNLOAD] && verified * 2 >= total && total) {
		fd->cut_armed = true;
		tern_sim_power_cut_at(&fd->sd.dev.flash, 1 + mix(fd->index) % 3, false);
	}
	if (!fd->cut_armed && fd->faults[F_CUT_INSTALL] && verified + 1 >= total && total) {
		fd->cut_armed = true;
		tern_sim_power_cut_at(&fd->sd.dev.flash, 1 + mix(fd->index + 7) % 12, true);
	}
	if (!fd->drop_done && fd->faults[F_NET_DROP] && verified * 2 >= total && total) {
		fd->drop_done = true;
		tern_mqttdev_net_drop(fd->mq, now, fd->fl->a.drop_ms);
	}
}

static void power_on(struct fdev *fd)
{
	fd->off = false;
	tern_sim_power_restore(&fd->sd.dev.flash);
	if (dev_boot(fd) != 0) {
		fd->off = true; /* nothing bootable: stays off */
		fd->power_on_at = UINT64_MAX;
		return;
	}
	tern_mqttdev_restart(fd->mq);
}

/* ---- workers */

static void step_device(struct fdev *fd, uint64_t now)
{
	tern_mqttdev_step(fd->mq, now, &fd->next_ms);
	apply_faults(fd, now);
}

/* Steps the devices whose timers are due; returns the earliest timer left. */
static uint64_t scan_timers(struct worker *w, uint64_t now)
{
	struct fleet *fl = w->fl;
	uint64_t wake = now + 200;
	for (unsigned i = w->first; i < fl->n; i += w->step) {
		struct fdev *fd = &fl->devs[i];
		if (!atomic_load(&fd->started))
			continue;
		if (fd->off) {
			if (now >= fd->power_on_at)
				power_on(fd);
			else if (fd->power_on_at < wake)
				wake = fd->power_on_at;
			continue;
		}
		if (now >= fd->next_ms)
			step_device(fd, now); /* leaves fd->ready alone: see notify() */
		if (fd->next_ms < wake)
			wake = fd->next_ms;
	}
	return wake;
}

/*
 * While messages flow, the worker naps NAP_US between batches instead of being woken per
 * message: a wake-up per message cost paho's receive thread (the one thread every
 * device's messages go through) a futex call and a context switch each time. After
 * IDLE_NAPS empty naps it sleeps until notified or until its next timer.
 */
#define NAP_US	       1000
#define IDLE_NAPS      50
#define SCHED_EVERY_MS 1000 /* schedule_threads() again this often */

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct fleet *fl = w->fl;
	uint64_t wake = 0;
	unsigned idle = 0;
	while (!atomic_load(&fl->stop)) {
		pthread_mutex_lock(&w->lock);
		if (!w->ring_len && idle < IDLE_NAPS && now_ms() < wake) {
			pthread_mutex_unlock(&w->lock);
			struct timespec nap = {0, NAP_US * 1000L};
			nanosleep(&nap, NULL);
			idle++;
			pthread_mutex_lock(&w->lock);
		}
		while (!w->ring_len && idle >= IDLE_NAPS && !atomic_load(&fl->stop)) {
			uint64_t now = now_ms();
			if (now >= wake)
				break;
			struct timespec until;
			clock_gettime(CLOCK_REALTIME, &until);
			uint64_t ns = (uint64_t)until.tv_nsec + (wake - now) * 1000000u;
			until.tv_sec += (time_t)(ns / 1000000000u);
			until.tv_nsec = (long)(ns % 1000000000u);
			w->sleeping = true;
			pthread_cond_timedwait(&w->cond, &w->lock, &until);
			w->sleeping = false;
		}
		unsigned n = w->ring_len;
		for (unsigned k = 0; k < n; k++)
			w->batch[k] = w->ring[(w->ring_head + k) % w->n_ring];
		w->ring_head = (w->ring_head + n) % w->n_ring;
		w->ring_len = 0;
		pthread_mutex_unlock(&w->lock);
		if (n)
			idle = 0;
		uint64_t now = now_ms();
		for (unsigned k = 0; k < n; k++) {
			struct fdev *fd = w->batch[k];
			atomic_store(&fd->ready,
				     false); /* what arrives from now on queues it again */
			if (fd->off || !atomic_load(&fd->started))
				continue;
			step_device(fd, now);
			if (fd->next_ms < wake)
				wake = fd->next_ms;
		}
		if (now >= wake)
			wake = scan_timers(w, now);
	}
	return NULL;
}

/* ---- setup */

static int dev_open(struct fleet *fl, struct fdev *fd)
{
	const struct fleet_args *a = &fl->a;
	char dir[2048];
	int n = snprintf(dir, sizeof(dir), "%s/%s", a->dir, fd->id);
	if (n < 0 || (size_t)n >= sizeof(dir))
		return TERN_E_TOO_LARGE;
	char flash[2100];
	int rc = path_join(flash, sizeof(flash), dir, "flash.img");
	if (rc)
		return rc;
	if (access(flash, F_OK) != 0) {
		if (!a->keyring) {
			fprintf(stderr, "ternd: fleet: %s is not initialized; give --keyring\n",
				dir);
			return TERN_E_USAGE;
		}
		const char *keys[1] = {a->keyring};
		struct simdev_params p = {
		    .dir = dir,
		    .keys = keys,
		    .n_keys = 1,
		    .board = a->board,
		    .slot_size = a->slot_size,
		    .image_size = a->image_size,
		    .version = a->version,
		};
		if ((rc = simdev_create(&p, NULL, NULL)))
			return rc;
	}
	if ((rc = simdev_open(&fd->sd, dir)))
		return rc;
	if ((rc = path_join(fd->record_path, sizeof(fd->record_path), dir, "mqtt.state")))
		return rc;
	/* Made now (empty: no record yet), so the first store does not have to: creating a
	 * file is where ext4 spends its time (rec_store()). */
	int rf = open(fd->record_path, O_WRONLY | O_CREAT, 0644);
	if (rf < 0 || close(rf) != 0)
		return TERN_E_IO;
	struct tern_sim_device *dev = &fd->sd.dev;
	if (simdev_attach(&fd->sd) != 0)
		dev->n_boots = 0;
	if (fd->faults[F_UNHEALTHY] || fd->faults[F_CRASH]) {
		dev->force_trial_health = true;
		dev->trial_health = fd->faults[F_CRASH] ? TERN_SIM_CRASH : TERN_SIM_UNHEALTHY;
	}
	/* The fleet starting is the device powering on. */
	if ((rc = dev_boot(fd)))
		return rc;
	struct tern_mqttdev_config cfg = {
	    .uri = fl->uri,
	    .username = a->username_from_id || a->password_file ? fd->id : a->username,
	    .password = fd->password,
	    .cafile = a->cafile,
	    .cert = a->cert_dir ? fd->cert : NULL,
	    .cert_key = a->cert_dir ? fd->cert_key : NULL,
	    .prefix = a->prefix,
	    .device_id = fd->id,
	    .retry_min_ms = a->retry_min_ms,
	    .retry_max_ms = a->retry_max_ms,
	    .max_attempts = a->max_attempts,
	    .fetch_timeout_ms = a->fetch_timeout_ms,
	    .chunk_delay_ms = fd->faults[F_SLOW] ? a->slow_ms : 0,
	    .seed = fd->index + 1,
	    .notify = notify,
	    .notify_arg = fd,
	    .outbox = fl->outbox,
	};
	struct tern_mqttdev_board b = {
	    .agent = &dev->agent,
	    .keyring = &dev->keyring,
	    .board_id = dev->board_id,
	    .load = rec_load,
	    .store = rec_store,
	    .reboot = rec_reboot,
	    .power_lost = on_power_lost,
	    .ctx = fd,
	};
	return tern_mqttdev_create(&fd->mq, &cfg, &b);
}

static void raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* ---- reports */

struct census {
	unsigned states[8];
	unsigned connected, settled, off;
	uint64_t chunks, bad;
};

/*
 * With --processes, each child publishes its census here (shared memory made before the
 * fork) and the parent prints the sums. A sequence number, odd while a child writes,
 * lets the parent take a consistent copy.
 */
struct shared_slot {
	atomic_uint seq;
	struct census c;
	unsigned long long rss_kib;
};

static unsigned long long peak_rss_kib(void);

static void take_census(struct fleet *fl, struct census *c);

static void publish_census(struct fleet *fl)
{
	struct census c;
	take_census(fl, &c);
	struct shared_slot *sl = fl->slot;
	atomic_fetch_add(&sl->seq, 1);
	sl->c = c;
	sl->rss_kib = peak_rss_kib();
	atomic_fetch_add(&sl->seq, 1);
}

static void read_slot(struct shared_slot *sl, struct census *c, unsigned long long *rss)
{
	for (;;) {
		unsigned before = atomic_load(&sl->seq);
		if (before & 1u)
			continue;
		*c = sl->c;
		*rss = sl->rss_kib;
		if (atomic_load(&sl->seq) == before)
			return;
	}
}

static void take_census(struct fleet *fl, struct census *c)
{
	memset(c, 0, sizeof(*c));
	for (unsigned i = 0; i < fl->n; i++) {
		struct fdev *fd = &fl->devs[i];
		struct tern_mqttdev_stats st;
		tern_mqttdev_stats(fd->mq, &st);
		unsigned s = (unsigned)fd->sd.dev.agent.state;
		c->states[s < 8 ? s : 0]++;
		c->connected += st.connected;
		c->settled += st.settled && !fd->off;
		c->off += fd->off;
		c->chunks += st.chunks_fetched;
		c->bad += st.chunks_bad;
	}
}

#ifndef SCHED_BATCH
#define SCHED_BATCH 3 /* Linux; <sched.h> names it only under _GNU_SOURCE */
#endif

/*
 * Scheduling of the fleet's threads. paho's one receive thread reads the packets of
 * every device of the process and is the fleet's critical path (docs/mqtt.md, "Fan-out
 * benchmark"); every other thread - the device workers, the outbox that makes the
 * devices' paho calls, paho's send thread, this one - is bulk work that it wakes
 * thousands of times a second, and each wake-up preempted it (about 9,000 times in a
 * 5 s run of 1000 devices). Those threads run SCHED_BATCH: the same share of the CPU,
 * but a wake-up no longer preempts. The receive thread stays SCHED_OTHER. Threads are
 * found by name in /proc/self/task, again now and then: paho starts its threads at the
 * first connect, and a thread inherits its creator's policy. Best effort: a thread that
 * went meanwhile, or a refusal, changes nothing else.
 */
static void schedule_threads(void)
{
	DIR *dir = opendir("/proc/self/task");
	if (!dir)
		return;
	struct dirent *e;
	while ((e = readdir(dir))) {
		if (e->d_name[0] == '.')
			continue;
		char path[300], comm[32];
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
		if (read_small(path, comm, sizeof(comm), NULL) != 0)
			continue;
		bool receive = !strncmp(comm, "MQTTAsync_rcv", 13);
		pid_t tid = (pid_t)strtol(e->d_name, NULL, 10);
		int want = receive ? SCHED_OTHER : SCHED_BATCH;
		struct sched_param sp = {0};
		if (sched_getscheduler(tid) != want)
			sched_setscheduler(tid, want, &sp);
	}
	closedir(dir);
}

/* Peak resident memory of the process (KiB), from /proc; 0 when unknown. */
static unsigned long long peak_rss_kib(void)
{
	char text[4096];
	size_t len;
	if (read_small("/proc/self/status", text, sizeof(text), &len) != 0)
		return 0;
	const char *p = strstr(text, "VmHWM:");
	return p ? strtoull(p + 6, NULL, 10) : 0;
}

static void print_census(struct fleet *fl, const struct census *c, double secs, bool json,
			 unsigned long long rss)
{
	struct timespec wall;
	clock_gettime(CLOCK_REALTIME, &wall);
	if (json) {
		printf("{\"t\": %.3f, \"unix\": %.3f, \"devices\": %u, \"connected\": %u, "
		       "\"settled\": %u, \"off\": %u, \"chunks\": %llu, \"bad_chunks\": %llu, "
		       "\"peak_rss_kib\": %llu, \"states\": {",
		       secs, (double)wall.tv_sec + (double)wall.tv_nsec / 1e9, fl->total,
		       c->connected, c->settled, c->off, (unsigned long long)c->chunks,
		       (unsigned long long)c->bad, rss);
		bool first = true;
		for (unsigned s = 0; s < 8; s++) {
			if (!c->states[s])
				continue;
			printf("%s\"%s\": %u", first ? "" : ", ",
			       tern_state_name((enum tern_state)s), c->states[s]);
			first = false;
		}
		printf("}}\n");
	} else {
		printf("fleet: %u devices, %u connected, %u settled, %u off:", fl->total,
		       c->connected, c->settled, c->off);
		for (unsigned s = 0; s < 8; s++)
			if (c->states[s])
				printf(" %s %u", tern_state_name((enum tern_state)s), c->states[s]);
		printf("; %llu chunks fetched, %llu bad; peak RSS %llu KiB\n",
		       (unsigned long long)c->chunks, (unsigned long long)c->bad, rss);
	}
	fflush(stdout);
}

static void print_devices(struct fleet *fl)
{
	for (unsigned i = 0; i < fl->n; i++) {
		struct fdev *fd = &fl->devs[i];
		struct tern_mqttdev_stats st;
		struct tern_status s;
		tern_mqttdev_stats(fd->mq, &st);
		tern_agent_status(&fd->sd.dev.agent, &s);
		const struct tern_slot_meta *run =
		    &s.slots[tern_slot_area(TERN_PAIR_FW, s.running[TERN_PAIR_FW])];
		printf(
		    "{\"id\": \"%s\", \"state\": \"%s\", \"version\": \"%s\", \"sequence\": %llu, "
		    "\"reason\": %s%s%s, \"generation\": %llu, \"settled\": %s, "
		    "\"chunks_fetched\": %llu, \"chunks_again\": %llu, \"bad_chunks\": %llu, "
		    "\"indexes_fetched\": %llu, \"installs\": %llu, \"fresh_offers\": %llu, "
		    "\"resumes\": %llu, \"kept\": %llu, "
		    "\"refused\": %llu, \"connects\": %llu, \"boots\": %u, \"power_cuts\": %u}\n",
		    fd->id, tern_state_name(s.state), run->version,
		    (unsigned long long)run->sequence, s.reason ? "\"" : "",
		    s.reason ? tern_errname(s.reason) : "null", s.reason ? "\"" : "",
		    (unsigned long long)st.generation, st.settled ? "true" : "false",
		    (unsigned long long)st.chunks_fetched, (unsigned long long)st.chunks_again,
		    (unsigned long long)st.chunks_bad, (unsigned long long)st.indexes_fetched,
		    (unsigned long long)st.installs, (unsigned long long)st.fresh_offers,
		    (unsigned long long)st.resumes, (unsigned long long)st.kept,
		    (unsigned long long)st.refused, (unsigned long long)st.connects,
		    fd->sd.dev.n_boots, fd->power_cuts);
	}
	fflush(stdout);
}

/* ---- arguments */

static bool arg_uint(const char *s, unsigned *out)
{
	uint64_t v;
	if (!parse_u64(s, &v) || v > 0x7fffffffu)
		return false;
	*out = (unsigned)v;
	return true;
}

static int parse_args(struct fleet_args *a, int argc, char **argv)
{
	memset(a, 0, sizeof(*a));
	a->prefix = TERN_TOPIC_PREFIX_DEFAULT;
	a->board = TERN_SIM_BOARD_ID;
	a->id_prefix = "sim-";
	a->version = "1.0.0";
	a->slot_size = 2 * 1024 * 1024;
	a->image_size = 64 * 1024;
	a->connect_rate = 250;
	a->workers = 2;
	a->processes = 1;
	a->retry_min_ms = 500;
	a->retry_max_ms = 16000;
	a->max_attempts = 8;
	a->fetch_timeout_ms = 10000;
	a->slow_ms = 50;
	a->off_ms = 2000;
	a->drop_ms = 2000;
	a->report_ms = 1000;
	for (int i = 0; i < argc; i++) {
		const char *f = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		bool ok = true, takes = true;
		if (!strcmp(f, "--json")) {
			a->json = true;
			takes = false;
		} else if (!strcmp(f, "--username-from-id")) {
			a->username_from_id = true;
			takes = false;
		} else if (!strcmp(f, "--help")) {
			fputs(fleet_help, stdout);
			return 1;
		} else if (!v) {
			ok = false;
		} else if (!strcmp(f, "--devices"))
			ok = arg_uint(v, &a->n_devices) && a->n_devices > 0 &&
			     a->n_devices <= 100000;
		else if (!strcmp(f, "--dir"))
			a->dir = v;
		else if (!strcmp(f, "--broker"))
			a->broker = v;
		else if (!strcmp(f, "--keyring"))
			a->keyring = v;
		else if (!strcmp(f, "--prefix"))
			a->prefix = v;
		else if (!strcmp(f, "--board"))
			a->board = v;
		else if (!strcmp(f, "--id-prefix"))
			a->id_prefix = v;
		else if (!strcmp(f, "--version"))
			a->version = v;
		else if (!strcmp(f, "--username"))
			a->username = v;
		else if (!strcmp(f, "--password"))
			a->password = v;
		else if (!strcmp(f, "--cafile"))
			a->cafile = v;
		else if (!strcmp(f, "--password-file"))
			a->password_file = v;
		else if (!strcmp(f, "--cert-dir"))
			a->cert_dir = v;
		else if (!strcmp(f, "--slot-size"))
			ok = parse_size(v, &a->slot_size) && a->slot_size >= 8192;
		else if (!strcmp(f, "--processes"))
			ok = arg_uint(v, &a->processes) && a->processes > 0 && a->processes <= 64;
		else if (!strcmp(f, "--workers"))
			ok = arg_uint(v, &a->workers) && a->workers > 0 && a->workers <= 64;
		else if (!strcmp(f, "--connect-rate"))
			ok = arg_uint(v, &a->connect_rate) && a->connect_rate > 0;
		else if (!strcmp(f, "--duration"))
			ok = arg_uint(v, &a->duration);
		else if (!strcmp(f, "--retry-min-ms"))
			ok = arg_uint(v, &a->retry_min_ms) && a->retry_min_ms > 0;
		else if (!strcmp(f, "--retry-max-ms"))
			ok = arg_uint(v, &a->retry_max_ms);
		else if (!strcmp(f, "--max-attempts"))
			ok = arg_uint(v, &a->max_attempts) && a->max_attempts > 0;
		else if (!strcmp(f, "--fetch-timeout-ms"))
			ok = arg_uint(v, &a->fetch_timeout_ms) && a->fetch_timeout_ms > 0;
		else if (!strcmp(f, "--slow-ms"))
			ok = arg_uint(v, &a->slow_ms);
		else if (!strcmp(f, "--off-ms"))
			ok = arg_uint(v, &a->off_ms);
		else if (!strcmp(f, "--drop-ms"))
			ok = arg_uint(v, &a->drop_ms);
		else if (!strcmp(f, "--report-ms"))
			ok = arg_uint(v, &a->report_ms) && a->report_ms > 0;
		else {
			ok = false;
			for (unsigned k = 0; k < F__COUNT; k++)
				if (!strcmp(f, fault_flags[k])) {
					a->fault_sel[k] = v;
					ok = true;
				}
			if (!ok) {
				fprintf(stderr,
					"ternd: fleet: unknown argument %s (see 'ternd fleet "
					"--help')\n",
					f);
				return -1;
			}
		}
		if (!ok) {
			fprintf(stderr,
				"ternd: fleet: %s needs a valid value (see 'ternd fleet --help')\n",
				f);
			return -1;
		}
		if (takes)
			i++;
	}
	if (!a->n_devices || !a->dir || !a->broker) {
		fprintf(stderr,
			"ternd: fleet needs --devices, --dir and --broker (see 'ternd fleet "
			"--help')\n");
		return -1;
	}
	if (a->password_file && (a->password || a->username)) {
		fprintf(stderr, "ternd: fleet: --password-file gives each device its id and own "
				"password; leave out --password and --username\n");
		return -1;
	}
	if (!tern_topic_prefix_valid(a->prefix)) {
		fprintf(stderr, "ternd: fleet: --prefix '%s' is not a valid topic prefix\n",
			a->prefix);
		return -1;
	}
	return 0;
}

/*
 * Reads --password-file (lines ID:PASSWORD; blank lines and '#' comments skipped) into
 * fl->passwords and points each device at its own. Says in one line what is wrong: an
 * unreadable file, a line that is not ID:PASSWORD, an id given twice, a device without
 * a password.
 */
static int load_passwords(struct fleet *fl)
{
	const char *path = fl->a.password_file;
	size_t size = 1 << 16, len;
	fl->passwords = malloc(size);
	if (!fl->passwords)
		return TERN_E_NOMEM;
	int rc = read_small(path, fl->passwords, size, &len);
	if (rc) {
		fprintf(stderr, "ternd: fleet: --password-file %s: %s\n", path,
			rc == TERN_E_TOO_LARGE ? "larger than 64 KiB" : tern_strerror(rc));
		return TERN_E_USAGE;
	}
	unsigned line_no = 0;
	for (char *line = fl->passwords; line && *line;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		line_no++;
		size_t l = strlen(line);
		if (l && line[l - 1] == '\r')
			line[--l] = '\0';
		char *colon = strchr(line, ':');
		if (l && line[0] != '#') {
			if (!colon || colon == line || !colon[1]) {
				fprintf(stderr,
					"ternd: fleet: %s line %u: expected ID:PASSWORD (a device "
					"id, a "
					"colon, a password that is not empty)\n",
					path, line_no);
				return TERN_E_USAGE;
			}
			*colon = '\0';
			if (!tern_topic_id_valid(line, TERN_DEVICE_ID_MAX)) {
				fprintf(stderr,
					"ternd: fleet: %s line %u: '%s' is not a device id\n", path,
					line_no, line);
				return TERN_E_USAGE;
			}
			for (unsigned i = 0; i < fl->n; i++) {
				struct fdev *fd = &fl->devs[i];
				if (strcmp(fd->id, line))
					continue;
				if (fd->password) {
					fprintf(
					    stderr,
					    "ternd: fleet: %s line %u: %s has a password already\n",
					    path, line_no, line);
					return TERN_E_USAGE;
				}
				fd->password = colon + 1;
			}
		}
		line = nl ? nl + 1 : NULL;
	}
	for (unsigned i = 0; i < fl->n; i++)
		if (!fl->devs[i].password) {
			fprintf(stderr,
				"ternd: fleet: %s has no password for %s (a line %s:PASSWORD)\n",
				path, fl->devs[i].id, fl->devs[i].id);
			return TERN_E_USAGE;
		}
	return 0;
}

/* --cert-dir: each device's certificate and key, which must be there. */
static int find_certs(struct fleet *fl, struct fdev *fd)
{
	const char *dir = fl->a.cert_dir;
	int n = snprintf(fd->cert, sizeof(fd->cert), "%s/%s.crt", dir, fd->id);
	int m = snprintf(fd->cert_key, sizeof(fd->cert_key), "%s/%s.key", dir, fd->id);
	if (n < 0 || (size_t)n >= sizeof(fd->cert) || m < 0 || (size_t)m >= sizeof(fd->cert_key))
		return TERN_E_TOO_LARGE;
	const char *missing = access(fd->cert, R_OK)	   ? fd->cert
			      : access(fd->cert_key, R_OK) ? fd->cert_key
							   : NULL;
	if (missing) {
		fprintf(stderr, "ternd: fleet: --cert-dir: cannot read %s (%s)\n", missing,
			strerror(errno));
		return TERN_E_USAGE;
	}
	return 0;
}

/*
 * Opens this process's devices (fl->base .. fl->base + fl->n - 1 of the fleet), starts
 * them (staggered), runs until a signal or --duration, and prints per-device lines. With
 * fl->slot (a child of --processes) the census goes to the parent instead of stdout.
 * Returns the exit code.
 */
static int run_devices(struct fleet *fl)
{
	const struct fleet_args *a = &fl->a;
	int exit_code = 1, rc;
	unsigned opened = 0;
	fl->n_workers = a->workers < fl->n ? a->workers : fl->n;
	fl->devs = calloc(fl->n, sizeof(*fl->devs));
	fl->workers = calloc(fl->n_workers, sizeof(*fl->workers));
	if (!fl->devs || !fl->workers || tern_mqtt_outbox_create(&fl->outbox)) {
		fprintf(stderr, "ternd: fleet: %s\n", tern_strerror(TERN_E_NOMEM));
		goto out;
	}
	for (unsigned k = 0; k < fl->n_workers; k++) {
		struct worker *w = &fl->workers[k];
		w->fl = fl;
		w->first = k;
		w->step = fl->n_workers;
		w->n_ring = fl->n / fl->n_workers + 1;
		w->ring = calloc(w->n_ring, sizeof(*w->ring));
		w->batch = calloc(w->n_ring, sizeof(*w->batch));
		pthread_mutex_init(&w->lock, NULL);
		pthread_cond_init(&w->cond, NULL);
		if (!w->ring || !w->batch) {
			fprintf(stderr, "ternd: fleet: %s\n", tern_strerror(TERN_E_NOMEM));
			goto out_close;
		}
	}
	for (unsigned i = 0; i < fl->n; i++) {
		struct fdev *fd = &fl->devs[i];
		unsigned g = fl->base + i; /* the device's number in the whole fleet */
		fd->fl = fl;
		fd->index = g;
		fd->w = &fl->workers[i % fl->n_workers];
		int n = snprintf(fd->id, sizeof(fd->id), "%s%04u", a->id_prefix, g + 1);
		if (n < 0 || (size_t)n >= sizeof(fd->id) ||
		    !tern_topic_id_valid(fd->id, TERN_DEVICE_ID_MAX)) {
			fprintf(stderr, "ternd: fleet: --id-prefix '%s' makes invalid device ids\n",
				a->id_prefix);
			goto out_close;
		}
		for (unsigned k = 0; k < F__COUNT; k++)
			fd->faults[k] = selected(a->fault_sel[k], g, fd->id, k * 7919u);
		fd->password = a->password;
	}
	if (a->password_file && (rc = load_passwords(fl)))
		goto out_close;
	for (unsigned i = 0; i < fl->n; i++) {
		struct fdev *fd = &fl->devs[i];
		if (a->cert_dir && (rc = find_certs(fl, fd)))
			goto out_close;
		if ((rc = dev_open(fl, fd))) {
			fprintf(stderr, "ternd: fleet: %s/%s: %s (%s)\n", a->dir, fd->id,
				tern_strerror(rc), tern_errname(rc));
			goto out_close;
		}
		opened++;
	}
	unsigned n_threads = 0;
	for (unsigned k = 0; k < fl->n_workers; k++) {
		if (pthread_create(&fl->workers[k].thread, NULL, worker_main, &fl->workers[k]))
			break;
		n_threads++;
	}
	/* Staggered connects: the broker's listen backlog overflows otherwise. The rate is
	 * the whole fleet's: each of P processes takes its share. */
	unsigned rate = a->connect_rate / a->processes ? a->connect_rate / a->processes : 1;
	unsigned report_ms = fl->slot && a->report_ms > 50 ? 50 : a->report_ms;
	uint64_t t0 = now_ms(), last_report = t0, last_sched = 0;
	unsigned started = 0;
	while (!stop_signal) {
		uint64_t now = now_ms();
		while (started < fl->n && (uint64_t)started * 1000u / rate <= now - t0 &&
		       !stop_signal) {
			struct fdev *fd = &fl->devs[started];
			if ((rc = tern_mqttdev_start(fd->mq)))
				fprintf(stderr, "ternd: fleet: %s: %s (%s)\n", fd->id,
					tern_strerror(rc), tern_errname(rc));
			atomic_store(&fd->started, true);
			started++;
		}
		if (a->duration && now - t0 >= (uint64_t)a->duration * 1000u)
			break;
		if (started == fl->n && now - last_sched >= SCHED_EVERY_MS) {
			last_sched = now;
			schedule_threads();
		}
		if (now - last_report >= report_ms) {
			last_report = now;
			if (fl->slot) {
				publish_census(fl);
			} else if (a->json) {
				struct census c;
				take_census(fl, &c);
				print_census(fl, &c, (double)(now - t0) / 1000.0, true,
					     peak_rss_kib());
			}
		}
		sleep_ms(started < fl->n ? 2 : report_ms < 20 ? report_ms : 20);
	}
	atomic_store(&fl->stop, true);
	for (unsigned k = 0; k < n_threads; k++) {
		struct worker *w = &fl->workers[k];
		pthread_mutex_lock(&w->lock);
		pthread_cond_signal(&w->cond);
		pthread_mutex_unlock(&w->lock);
		pthread_join(w->thread, NULL);
	}
	if (a->json)
		print_devices(fl);
	if (fl->slot) {
		publish_census(fl);
	} else {
		struct census c;
		take_census(fl, &c);
		print_census(fl, &c, (double)(now_ms() - t0) / 1000.0, a->json, peak_rss_kib());
	}
	exit_code = 0;
out_close:
	for (unsigned i = 0; i < fl->n; i++) {
		struct fdev *fd = &fl->devs[i];
		if (fd->mq)
			tern_mqttdev_destroy(fd->mq);
		if (i < opened) {
			tern_sim_flash_sync(&fd->sd.dev.flash);
			simdev_close(&fd->sd);
		}
	}
	tern_mqtt_outbox_destroy(fl->outbox);
	fl->outbox = NULL;
	for (unsigned k = 0; fl->workers && k < fl->n_workers; k++) {
		pthread_mutex_destroy(&fl->workers[k].lock);
		pthread_cond_destroy(&fl->workers[k].cond);
		free(fl->workers[k].ring);
		free(fl->workers[k].batch);
	}
out:
	free(fl->passwords);
	free(fl->devs);
	free(fl->workers);
	return exit_code;
}

/* The sums of the children's censuses; the sum of their peak RSS into *@rss. */
static void sum_slots(struct shared_slot *slots, unsigned n, struct census *sum,
		      unsigned long long *rss)
{
	memset(sum, 0, sizeof(*sum));
	*rss = 0;
	for (unsigned k = 0; k < n; k++) {
		struct census c;
		unsigned long long r;
		read_slot(&slots[k], &c, &r);
		for (unsigned s = 0; s < 8; s++)
			sum->states[s] += c.states[s];
		sum->connected += c.connected;
		sum->settled += c.settled;
		sum->off += c.off;
		sum->chunks += c.chunks;
		sum->bad += c.bad;
		*rss += r;
	}
}

/* A child of run_processes() ended: false (and one line) when it failed. */
static bool child_ok(const struct fleet *fl, unsigned k, unsigned n_proc, int status)
{
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return true;
	fprintf(stderr, "ternd: fleet: process %u (devices %u to %u) failed\n", k + 1,
		(unsigned)((uint64_t)fl->total * k / n_proc) + 1,
		(unsigned)((uint64_t)fl->total * (k + 1) / n_proc));
	return false;
}

/*
 * --processes P: forks P children, each running a slice of the devices with its own
 * paho threads (paho has one receive thread per process, and its per-packet work walks
 * every client of the process), and prints the fleet's status from their shared
 * censuses. A child that fails ends the run. Returns the exit code.
 */
static int run_processes(struct fleet *fl)
{
	const struct fleet_args *a = &fl->a;
	unsigned n_proc = a->processes < fl->total ? a->processes : fl->total;
	size_t size = sizeof(struct shared_slot) * n_proc;
	struct shared_slot *slots =
	    mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (slots == MAP_FAILED) {
		fprintf(stderr, "ternd: fleet: %s\n", tern_strerror(TERN_E_NOMEM));
		return 1;
	}
	pid_t pids[64];
	unsigned n_started = 0;
	bool failed = false;
	fflush(stdout);
	fflush(stderr);
	for (unsigned k = 0; k < n_proc; k++) {
		pid_t pid = fork();
		if (pid == 0) {
			setvbuf(stdout, NULL, _IOLBF, 0); /* whole lines: children share stdout */
			fl->base = (unsigned)((uint64_t)fl->total * k / n_proc);
			fl->n = (unsigned)((uint64_t)fl->total * (k + 1) / n_proc) - fl->base;
			fl->slot = &slots[k];
			exit(run_devices(fl));
		}
		if (pid < 0) {
			fprintf(stderr, "ternd: fleet: cannot start process %u: %s\n", k + 1,
				strerror(errno));
			failed = true;
			break;
		}
		pids[k] = pid;
		n_started++;
	}
	uint64_t t0 = now_ms(), last_report = t0;
	unsigned running = n_started;
	while (!failed && running && !stop_signal) {
		int status;
		pid_t done = waitpid(-1, &status, WNOHANG);
		for (unsigned k = 0; done > 0 && k < n_started; k++) {
			if (pids[k] != done)
				continue;
			pids[k] = 0;
			running--;
			if (!child_ok(fl, k, n_proc, status))
				failed = true;
		}
		uint64_t now = now_ms();
		if (a->duration && now - t0 >= (uint64_t)a->duration * 1000u)
			break;
		if (a->json && now - last_report >= a->report_ms) {
			struct census c;
			unsigned long long rss;
			last_report = now;
			sum_slots(slots, n_proc, &c, &rss);
			print_census(fl, &c, (double)(now - t0) / 1000.0, true, rss);
		}
		sleep_ms(a->report_ms < 20 ? a->report_ms : 20);
	}
	for (unsigned k = 0; k < n_started; k++)
		if (pids[k])
			kill(pids[k], SIGTERM);
	for (unsigned k = 0; k < n_started; k++) {
		int status;
		if (pids[k] &&
		    (waitpid(pids[k], &status, 0) != pids[k] || !child_ok(fl, k, n_proc, status)))
			failed = true;
	}
	if (!failed) {
		struct census c;
		unsigned long long rss;
		sum_slots(slots, n_proc, &c, &rss);
		print_census(fl, &c, (double)(now_ms() - t0) / 1000.0, a->json, rss);
	}
	munmap(slots, size);
	return failed ? 1 : 0;
}

int fleet_main(int argc, char **argv)
{
	struct fleet *fl = calloc(1, sizeof(*fl));
	if (!fl)
		return 1;
	int exit_code, rc = parse_args(&fl->a, argc, argv);
	if (rc) {
		free(fl);
		return rc > 0 ? 0 : 2;
	}
	const struct fleet_args *a = &fl->a;
	if (tern_mqttdev_uri(a->broker, fl->uri, sizeof(fl->uri))) {
		fprintf(stderr,
			"ternd: fleet: --broker '%s' is not mqtt://HOST[:PORT] or mqtts://\n",
			a->broker);
		free(fl);
		return 2;
	}
	if (a->cert_dir && strncmp(fl->uri, "ssl://", 6)) {
		fprintf(stderr, "ternd: fleet: --cert-dir needs an mqtts:// broker\n");
		free(fl);
		return 2;
	}
	raise_nofile();
	/*
	 * Every chunk is a heap block of about its size, taken on paho's receive thread and
	 * given back by a worker. glibc's default trims the heap top and moves its mmap
	 * threshold as they come and go, so pages were handed back and faulted in (and
	 * zeroed) again all the time, on the receive thread. Keep what was taken.
	 */
	mallopt(M_MMAP_THRESHOLD, 1 << 20);
	mallopt(M_TRIM_THRESHOLD, 256 << 20);
	mallopt(M_TOP_PAD, 16 << 20);
	if (mkdir(a->dir, 0755) != 0 && errno != EEXIST) {
		fprintf(stderr, "ternd: fleet: cannot make %s: %s\n", a->dir, strerror(errno));
		free(fl);
		return 1;
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	fl->total = a->n_devices;
	if (a->processes > 1 && fl->total > 1) {
		exit_code = run_processes(fl);
	} else {
		fl->n = fl->total;
		exit_code = run_devices(fl);
	}
	free(fl);
	return exit_code;
}
