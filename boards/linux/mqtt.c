/*
 * `ternd run`'s MQTT loop: the agent's MQTT transport (transport/, tern_mqttdev.h) on
 * the Linux board. One thread owns the agent and steps the transport; paho's thread
 * only wakes it through an eventfd, and SIGTERM/SIGINT arrive through a signalfd, so
 * the loop is a poll() on both with the transport's next deadline as the timeout.
 */
#include "mqtt_priv.h"

#include "tern/tern_err.h"
#include "tern/tern_mqttdev.h"
#include "tern/tern_topic.h"

#include "linux_priv.h"
#include "tern/tern_linux_usb.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#define PASSWORD_MAX 256

/* USB served by a thread of its own beside the loop (tern_ffs_serve), when [usb] is
 * enabled too. The fields below "ended" are written by that thread before it sets
 * ended, under the shared lock. */
struct usb_side {
	pthread_t thread;
	bool started;
	volatile sig_atomic_t stop; /* set by the loop; the thread is woken with SIGUSR1 */
	struct tern_linux *lx;
	bool ended;
	enum tern_ffs_end end;
	int rc;
	char err[512];
};

struct serve {
	struct tern_linux *lx;
	struct tern_mqttdev *mq;
	struct tern_linux_share share; /* with USB: the agent lock and its owner */
	struct usb_side usb;
	bool with_usb;
	enum tern_state usb_reported; /* agent state at the last report of a USB change */
	uint64_t usb_report_at;	      /* progress of a USB install: at most one report a second */
	int wake_fd;		      /* eventfd: written by notify on paho's thread */
	char uri[600];
	char password[PASSWORD_MAX + 1];
	/* The MQTT identity for this run: a copy, since a USB provisioning may change the
	 * config's id meanwhile (the new one is used from the next start). */
	char device_id[TERN_LINUX_ID_MAX + 1];
	char client_id[TERN_LINUX_ID_MAX + 1];
	char record_path[TERN_LINUX_PATH_MAX + 16];
	bool reboot;	      /* the transport asked for the reboot into a trial */
	int reboot_rc;	      /* the bootloader could not be armed for it */
	enum tern_state seen; /* agent state the bootloader variables were synced for */
	bool seen_pending;
};

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Reads a whole small file into @buf (@size bytes at most). TERN_E_NOT_FOUND when it
 * does not exist, TERN_E_TOO_LARGE when it does not fit. */
static int read_file(const char *path, uint8_t *buf, size_t size, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? TERN_E_NOT_FOUND : TERN_E_IO;
	size_t got = 0;
	int rc = 0;
	for (;;) {
		uint8_t extra;
		ssize_t n = got < size ? read(fd, buf + got, size - got) : read(fd, &extra, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = TERN_E_IO;
			break;
		}
		if (n == 0)
			break;
		if (got == size) {
			rc = TERN_E_TOO_LARGE;
			break;
		}
		got += (size_t)n;
	}
	close(fd);
	*len = got;
	return rc;
}

/* ---- the transport's board hooks (called from tern_mqttdev_step, our thread) */

static int record_load(void *ctx, uint8_t *buf, size_t size, size_t *len)
{
	struct serve *s = ctx;
	int rc = read_file(s->record_path, buf, size, len);
	if (rc == TERN_E_NOT_FOUND) {
		*len = 0;
		return 0;
	}
	return rc;
}

/* The record replaces the file atomically: temporary file, fsync, rename. */
static int record_store(void *ctx, const uint8_t *buf, size_t len)
{
	struct serve *s = ctx;
	return tern_linux_replace_file(s->record_path, buf, len);
}

/* An update was activated. The bootloader is armed for it first (the record already
 * says "trial pending"); then, since this process does not come back from a reboot,
 * the hook returns non-zero: the transport stops as for a device that went off
 * (publishing "offline" and disconnecting, so what it reported reaches the broker),
 * and the loop runs the reboot command. */
static int on_reboot(void *ctx)
{
	struct serve *s = ctx;
	s->reboot = true;
	s->reboot_rc = tern_linux_sync_bootloader(s->lx);
	return TERN_E_STATE;
}

/* The transport's busy hook: a USB install holds the agent (and was active lately). */
static bool usb_holds(void *ctx)
{
	struct serve *s = ctx;
	return s->with_usb && s->share.owner == TERN_OWNER_USB &&
	       now_ms() - s->share.usb_last_ms < TERN_LINUX_USB_IDLE_MS;
}

static void notify(void *arg)
{
	struct serve *s = arg;
	uint64_t one = 1;
	ssize_t n = write(s->wake_fd, &one, sizeof(one));
	(void)n; /* EAGAIN: the counter is already non-zero, the loop wakes anyway */
}

/* The bootloader's variables follow the record after every change the transport made
 * through the agent (a slot disarmed for writing is kept so by the board). */
static void follow_agent(struct serve *s)
{
	const struct tern_agent *ag = &s->lx->agent;
	bool pending = ag->bc.trial_pending != 0;
	if (ag->state == s->seen && pending == s->seen_pending)
		return;
	s->seen = ag->state;
	s->seen_pending = pending;
	int rc = tern_linux_sync_bootloader(s->lx);
	if (rc)
		fprintf(stderr, "ternd: updating the bootloader's variables: %s (%s)\n",
			tern_strerror(rc), tern_errname(rc));
}

/* ---- settings */

static int read_password(struct serve *s, const char *path)
{
	size_t len = 0;
	int rc = read_file(path, (uint8_t *)s->password, PASSWORD_MAX, &len);
	if (rc)
		return rc;
	s->password[len] = '\0';
	s->password[strcspn(s->password, "\r\n")] = '\0'; /* the first line */
	return 0;
}

/* Checks [mqtt] and fills the transport's settings. Prints the reason of a refusal. */
static int settings(struct serve *s, struct tern_mqttdev_config *mc)
{
	const struct tern_linux_config *cfg = &s->lx->cfg;
	int rc;
	if (!tern_topic_id_valid(cfg->device_id, TERN_DEVICE_ID_MAX)) {
		fprintf(stderr, "ternd: %s: MQTT needs [device] id (1..64 of A-Z a-z 0-9 . _ -)\n",
			cfg->path);
		return TERN_E_INVAL;
	}
	if (tern_mqttdev_uri(cfg->mqtt_url, s->uri, sizeof(s->uri))) {
		fprintf(stderr,
			"ternd: %s: [mqtt] url '%s' is not mqtt://HOST[:PORT] or mqtts://\n",
			cfg->path, cfg->mqtt_url);
		return TERN_E_INVAL;
	}
	const char *prefix = cfg->mqtt_prefix[0] ? cfg->mqtt_prefix : TERN_TOPIC_PREFIX_DEFAULT;
	if (!tern_topic_prefix_valid(prefix)) {
		fprintf(stderr, "ternd: %s: [mqtt] prefix '%s' is not a valid topic prefix\n",
			cfg->path, prefix);
		return TERN_E_INVAL;
	}
	if (cfg->mqtt_password_file[0] && (rc = read_password(s, cfg->mqtt_password_file))) {
		fprintf(stderr, "ternd: %s: [mqtt] password_file %s: %s\n", cfg->path,
			cfg->mqtt_password_file, tern_strerror(rc));
		return rc;
	}
	int n = snprintf(s->record_path, sizeof(s->record_path), "%s/mqtt", cfg->state_dir);
	if (n < 0 || (size_t)n >= sizeof(s->record_path)) {
		fprintf(stderr, "ternd: %s: [device] state is too long a path\n", cfg->path);
		return TERN_E_TOO_LARGE;
	}
	memset(mc, 0, sizeof(*mc));
	mc->uri = s->uri;
	mc->username = cfg->mqtt_username[0] ? cfg->mqtt_username : NULL;
	mc->password = cfg->mqtt_password_file[0] ? s->password : NULL;
	mc->cafile = cfg->mqtt_ca[0] ? cfg->mqtt_ca : NULL;
	mc->cert = cfg->mqtt_cert[0] ? cfg->mqtt_cert : NULL;
	mc->cert_key = cfg->mqtt_key[0] ? cfg->mqtt_key : NULL;
	mc->prefix = prefix;
	memcpy(s->device_id, cfg->device_id, sizeof(s->device_id));
	memcpy(s->client_id, cfg->mqtt_client_id[0] ? cfg->mqtt_client_id : cfg->device_id,
	       sizeof(s->client_id));
	mc->device_id = s->device_id;
	mc->client_id = s->client_id;
	mc->keepalive_s = cfg->mqtt_keepalive;
	mc->seed = (uint32_t)getpid() ^ (uint32_t)now_ms();
	mc->notify = notify;
	mc->notify_arg = s;
	return 0;
}

/* ---- USB beside MQTT */

static void on_usr1(int sig)
{
	(void)sig; /* only interrupts the USB thread's blocking read of ep0 */
}

static void *usb_main(void *arg)
{
	struct serve *s = arg;
	struct usb_side *u = &s->usb;
	enum tern_ffs_end end = TERN_FFS_STOPPED;
	char err[sizeof(u->err)] = "";
	int rc = tern_ffs_serve(u->lx, u->lx->cfg.usb_functionfs, &u->stop, &end, err, sizeof(err));
	pthread_mutex_lock(&s->share.lock);
	u->rc = rc;
	u->end = end;
	memcpy(u->err, err, sizeof(err));
	u->ended = true;
	pthread_mutex_unlock(&s->share.lock);
	notify(s);
	return NULL;
}

static bool usb_ended(struct serve *s)
{
	pthread_mutex_lock(&s->share.lock);
	bool ended = s->usb.ended;
	pthread_mutex_unlock(&s->share.lock);
	return ended;
}

/* Asks the USB thread to stop (its ep0 read is interrupted) and waits for it. */
static void usb_stop(struct serve *s)
{
	if (!s->usb.started)
		return;
	s->usb.stop = 1;
	while (!usb_ended(s)) {
		pthread_kill(s->usb.thread, SIGUSR1);
		struct timespec t = {0, 20 * 1000 * 1000};
		nanosleep(&t, NULL);
	}
	pthread_join(s->usb.thread, NULL);
	s->usb.started = false;
}

/*
 * With the lock held, after the transport's step: reports what USB requests did to the
 * agent (a state change at once, progress at most once a second), and records whether
 * MQTT's own install holds the agent now (an accepted desired state not settled while
 * the agent installs), unless a USB install does. Lowers *@next for a pending report.
 */
static void share_step(struct serve *s, uint64_t now, uint64_t *next)
{
	struct tern_linux_share *sh = &s->share;
	const struct tern_agent *ag = &s->lx->agent;
	bool installing = ag->state == TERN_ST_DOWNLOADING || ag->state == TERN_ST_VERIFYING ||
			  ag->state == TERN_ST_STAGED;
	if (sh->owner == TERN_OWNER_USB && !usb_holds(s)) {
		sh->owner = TERN_OWNER_NONE; /* its host went away: MQTT may go on */
		sh->usb_changed = true;
	}
	if (sh->usb_changed && (ag->state != s->usb_reported || now >= s->usb_report_at)) {
		sh->usb_changed = false;
		s->usb_reported = ag->state;
		s->usb_report_at = now + 1000;
		tern_mqttdev_agent_changed(s->mq, now, "over USB");
	} else if (sh->usb_changed && s->usb_report_at < *next) {
		*next = s->usb_report_at;
	}
	if (sh->owner != TERN_OWNER_USB) {
		struct tern_mqttdev_stats st;
		tern_mqttdev_stats(s->mq, &st);
		sh->owner = !st.settled && installing ? TERN_OWNER_MQTT : TERN_OWNER_NONE;
	}
}

/* ---- the loop */

/* Steps the transport until a stop signal, the deadline, a reboot, or the end of USB. */
static void loop(struct serve *s, int sig_fd, uint64_t deadline)
{
	for (;;) {
		uint64_t now = now_ms(), next;
		if (deadline && now >= deadline) {
			printf("ternd: --duration reached; stopping\n");
			return;
		}
		bool usb_over = false;
		if (s->with_usb)
			pthread_mutex_lock(&s->share.lock);
		tern_mqttdev_step(s->mq, now, &next);
		follow_agent(s);
		if (s->with_usb) {
			share_step(s, now, &next);
			usb_over = s->usb.ended;
			if (usb_over && s->share.usb_changed) {
				/* e.g. the activation before a reboot: reported and recorded */
				s->share.usb_changed = false;
				tern_mqttdev_agent_changed(s->mq, now, "over USB");
				tern_mqttdev_step(s->mq, now, &next);
			}
			pthread_mutex_unlock(&s->share.lock);
		}
		if (s->reboot || usb_over)
			return;
		if (deadline && next > deadline)
			next = deadline;
		uint64_t wait = next > now ? next - now : 0;
		struct pollfd p[2] = {{s->wake_fd, POLLIN, 0}, {sig_fd, POLLIN, 0}};
		int n = poll(p, 2, (int)(wait < 60000 ? wait : 60000));
		if (n < 0 && errno != EINTR) {
			fprintf(stderr, "ternd: poll: %s\n", strerror(errno));
			return;
		}
		if (n > 0 && (p[0].revents & POLLIN)) {
			uint64_t count;
			if (read(s->wake_fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
				return;
		}
		if (n > 0 && (p[1].revents & POLLIN)) {
			struct signalfd_siginfo si;
			if (read(sig_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
				printf("ternd: %s; stopping\n",
				       si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
				return;
			}
		}
	}
}

int tern_linux_serve(struct tern_linux *lx, unsigned duration_s, bool with_usb,
		     const char **reboot_why)
{
	*reboot_why = NULL;
	if (with_usb && !lx->cfg.usb_functionfs[0]) {
		fprintf(stderr,
			"ternd: %s: [usb] enabled needs [usb] functionfs (the FunctionFS mount, "
			"e.g. /dev/ffs-tern)\n",
			lx->cfg.path);
		return TERN_E_INVAL;
	}
	struct serve *s = calloc(1, sizeof(*s));
	if (!s)
		return TERN_E_NOMEM;
	s->lx = lx;
	s->wake_fd = -1;
	s->seen = lx->agent.state;
	s->seen_pending = lx->agent.bc.trial_pending != 0;
	s->with_usb = with_usb;
	s->usb_reported = lx->agent.state;
	int rc, sig_fd = -1;
	bool told = false; /* the failure's line is printed */
	struct tern_mqttdev_config mc;
	struct sigaction usr1, old_usr1;
	if ((rc = settings(s, &mc))) {
		told = true;
		goto out_free;
	}
	/* Blocked before paho (and USB) start their threads (they inherit the mask), so the
	 * signals come only through the signalfd. SIGUSR1 has a handler before the USB
	 * thread can be sent one. */
	sigset_t stop_sigs, old_mask;
	sigemptyset(&stop_sigs);
	sigaddset(&stop_sigs, SIGTERM);
	sigaddset(&stop_sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &stop_sigs, &old_mask);
	memset(&usr1, 0, sizeof(usr1));
	usr1.sa_handler = on_usr1; /* no SA_RESTART */
	sigemptyset(&usr1.sa_mask);
	sigaction(SIGUSR1, &usr1, &old_usr1);
	pthread_mutex_init(&s->share.lock, NULL);
	sig_fd = signalfd(-1, &stop_sigs, SFD_CLOEXEC | SFD_NONBLOCK);
	s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (sig_fd < 0 || s->wake_fd < 0) {
		rc = TERN_E_IO;
		goto out_mask;
	}
	s->share.wake_fd = s->wake_fd;
	struct tern_mqttdev_board b = {
	    .agent = &lx->agent,
	    .keyring = &lx->keyring,
	    .board_id = lx->cfg.board_id,
	    .load = record_load,
	    .store = record_store,
	    .reboot = on_reboot,
	    .busy = with_usb ? usb_holds : NULL,
	    .ctx = s,
	};
	if ((rc = tern_mqttdev_create(&s->mq, &mc, &b)))
		goto out_mask;
	if (with_usb) {
		lx->share = &s->share;
		s->usb.lx = lx;
		if (pthread_create(&s->usb.thread, NULL, usb_main, s) != 0) {
			lx->share = NULL;
			rc = TERN_E_NOMEM;
			goto out_destroy;
		}
		s->usb.started = true;
	}
	if (with_usb)
		pthread_mutex_lock(&s->share.lock);
	rc = tern_mqttdev_start(s->mq);
	if (with_usb)
		pthread_mutex_unlock(&s->share.lock);
	if (rc)
		goto out_usb;
	printf("ternd: serving MQTT at %s as %s (client id %s, keepalive %u s, prefix %s)%s\n",
	       lx->cfg.mqtt_url, mc.device_id, mc.client_id, mc.keepalive_s, mc.prefix,
	       with_usb ? ", and USB" : "");
	fflush(stdout);
	loop(s, sig_fd, duration_s ? now_ms() + (uint64_t)duration_s * 1000u : 0);
	usb_stop(s); /* before the transport: a last USB change is reported below */
	if (with_usb && s->share.usb_changed)
		tern_mqttdev_agent_changed(s->mq, now_ms(), "over USB");
	tern_mqttdev_stop(s->mq); /* "offline", then DISCONNECT (the will is for crashes) */
	if (with_usb && s->usb.rc) {
		fprintf(stderr, "ternd: USB: %s\n", s->usb.err);
		rc = s->usb.rc;
		told = true;
	} else if (s->reboot) {
		told = true;
		if ((rc = s->reboot_rc))
			fprintf(stderr, "ternd: cannot arm the bootloader for the trial: %s (%s)\n",
				tern_strerror(rc), tern_errname(rc));
		else
			*reboot_why = "activated; the next boot runs the trial";
	} else if (with_usb && s->usb.end == TERN_FFS_REBOOT) {
		*reboot_why = "the host asked for it over USB";
	} else if (with_usb) {
		printf("ternd: stopped (MQTT and USB)\n");
	}
out_usb:
	usb_stop(s);
	lx->share = NULL;
out_destroy:
	tern_mqttdev_destroy(s->mq);
out_mask:
	if (sig_fd >= 0)
		close(sig_fd);
	if (s->wake_fd >= 0)
		close(s->wake_fd);
	pthread_mutex_destroy(&s->share.lock);
	sigaction(SIGUSR1, &old_usr1, NULL);
	pthread_sigmask(SIG_SETMASK, &old_mask, NULL); /* the reboot command gets the default */
out_free:
	if (rc && !told)
		fprintf(stderr, "ternd: MQTT: %s (%s)\n", tern_strerror(rc), tern_errname(rc));
	fflush(stdout);
	free(s);
	return rc;
}
