/* Runs a configured command (health check, boot script, reboot) with a timeout. */
#include "tern/tern_linux.h"

#include "tern/tern_err.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define KEEP_LINES 10

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Appends @n bytes to the tail buffer @out, dropping the oldest bytes. */
static void keep_tail(char *out, size_t size, size_t *len, const char *buf, size_t n)
{
	if (n >= size - 1) {
		buf += n - (size - 1);
		n = size - 1;
	}
	if (*len + n > size - 1) {
		size_t drop = *len + n - (size - 1);
		memmove(out, out + drop, *len - drop);
		*len -= drop;
	}
	memcpy(out + *len, buf, n);
	*len += n;
	out[*len] = '\0';
}

/* Keeps only the last KEEP_LINES lines, from a line start, without a final newline. */
static void last_lines(char *out)
{
	size_t len = strlen(out);
	while (len && out[len - 1] == '\n')
		out[--len] = '\0';
	unsigned lines = 0;
	size_t start = 0;
	for (size_t i = len; i > 0; i--) {
		if (out[i - 1] == '\n' && ++lines == KEEP_LINES) {
			start = i;
			break;
		}
	}
	memmove(out, out + start, len - start + 1);
}

int tern_linux_run_command(const char *cmd, const char *dir, unsigned timeout_s,
			   struct tern_health_result *res)
{
	memset(res, 0, sizeof(*res));
	res->exit_code = -1;
	int pfd[2];
	if (pipe(pfd) != 0)
		return TERN_E_IO;
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		close(pfd[0]);
		close(pfd[1]);
		return TERN_E_IO;
	}
	if (pid == 0) {
		setpgid(0, 0); /* its own group, so a timeout kills what it started too */
		int devnull = open("/dev/null", O_RDONLY);
		if (devnull >= 0)
			dup2(devnull, 0);
		dup2(pfd[1], 1);
		dup2(pfd[1], 2);
		close(pfd[0]);
		close(pfd[1]);
		if (dir && dir[0] && chdir(dir) != 0)
			_exit(127);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	setpgid(pid, pid);
	close(pfd[1]);
	size_t len = 0;
	int64_t deadline = now_ms() + (int64_t)timeout_s * 1000;
	bool open_ = true;
	while (open_) {
		int64_t left = deadline - now_ms();
		if (left <= 0) {
			res->timed_out = true;
			break;
		}
		struct pollfd p = {pfd[0], POLLIN, 0};
		int n = poll(&p, 1, left > 1000 ? 1000 : (int)left);
		if (n < 0 && errno != EINTR)
			break;
		if (n <= 0)
			continue;
		char buf[512];
		ssize_t r = read(pfd[0], buf, sizeof(buf));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			open_ = false;
		else
			keep_tail(res->output, sizeof(res->output), &len, buf, (size_t)r);
	}
	close(pfd[0]);
	int status = 0;
	if (res->timed_out) {
		kill(-pid, SIGKILL);
		waitpid(pid, &status, 0);
		if (len && res->output[len - 1] != '\n')
			keep_tail(res->output, sizeof(res->output), &len, "\n", 1);
		keep_tail(res->output, sizeof(res->output), &len, "(timed out)", 11);
	} else {
		/* Output closed: the command has ended (or closed its output; then wait for it
		 * up to the deadline). */
		for (;;) {
			pid_t w = waitpid(pid, &status, WNOHANG);
			if (w == pid)
				break;
			if (w < 0 && errno != EINTR)
				break;
			if (now_ms() >= deadline) {
				res->timed_out = true;
				kill(-pid, SIGKILL);
				waitpid(pid, &status, 0);
				break;
			}
			usleep(10000);
		}
		if (!res->timed_out && WIFEXITED(status))
			res->exit_code = WEXITSTATUS(status);
	}
	last_lines(res->output);
	res->passed = !res->timed_out && res->exit_code == 0;
	return 0;
}
