/* Snapshots captured in a forked child (capture.h). */
#include "capture.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ld_limits.h"
#include "ldlog.h"

/* What the child writes first, then len bytes. */
typedef struct cap_header {
	uint64_t base, sum, len;
} cap_header;

void ld_capture_init(ld_capture *c, ld_evq *q)
{
	memset(c, 0, sizeof *c);
	c->q = q;
	c->fd = -1;
	c->pid = -1;
	pthread_mutex_init(&c->lock, NULL);
}

/* Writes all of buf, or returns -1. */
static int write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* The child: encode, write, leave without running anything of the
 * parent's (atexit handlers, stdio buffers, sanitizer leak checks). */
static void child_run(int fd, ln_node *n)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	uint8_t *buf;
	size_t len;
	cap_header h;
	if (ln_node_capture(n, &buf, &len, &h.base, &h.sum) != 0)
		_exit(3);
	h.len = len;
	if (write_all(fd, &h, sizeof h) != 0 || write_all(fd, buf, len) != 0)
		_exit(4);
	_exit(0);
}

/* Reads len bytes before deadline_us. 0, or -1 with a sentence. */
static int read_all(int fd, void *buf, size_t len, uint64_t deadline_us,
		    char *err, size_t errlen)
{
	uint8_t *p = buf;
	while (len > 0) {
		uint64_t now = ld_mono_us();
		if (now >= deadline_us) {
			snprintf(err, errlen, "took longer than %d s",
				 LD_CAPTURE_TIMEOUT_S);
			return -1;
		}
		struct pollfd pf = {.fd = fd, .events = POLLIN};
		int ms = (int)((deadline_us - now) / 1000) + 1;
		int pr = poll(&pf, 1, ms);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr < 0) {
			snprintf(err, errlen, "poll: %s", strerror(errno));
			return -1;
		}
		if (pr == 0)
			continue;
		ssize_t n = read(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(err, errlen, "read: %s", strerror(errno));
			return -1;
		}
		if (n == 0) {
			snprintf(err, errlen,
				 "the child stopped writing early");
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static void *reader_main(void *arg)
{
	ld_capture *c = arg;
	uint64_t deadline =
		c->started_us + (uint64_t)LD_CAPTURE_TIMEOUT_S * 1000000u;
	char err[160] = "";
	cap_header h;
	uint8_t *snap = NULL;
	int rc = read_all(c->fd, &h, sizeof h, deadline, err, sizeof err);
	if (rc == 0 && (h.len == 0 || h.len > LD_SNAPSHOT_BYTES_MAX)) {
		snprintf(err, sizeof err, "the child wrote a length of %llu",
			 (unsigned long long)h.len);
		rc = -1;
	}
	if (rc == 0) {
		snap = malloc(h.len);
		if (snap == NULL) {
			snprintf(err, sizeof err,
				 "out of memory for %llu bytes",
				 (unsigned long long)h.len);
			rc = -1;
		}
	}
	if (rc == 0)
		rc = read_all(c->fd, snap, h.len, deadline, err, sizeof err);
	close(c->fd);
	c->fd = -1;
	if (rc != 0)
		kill(c->pid, SIGKILL);
	int status = 0;
	while (waitpid(c->pid, &status, 0) < 0 && errno == EINTR)
		;
	if (rc == 0 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
		rc = -1;
	if (rc != 0 && err[0] == '\0')
		snprintf(err, sizeof err, "the child ended with status %d",
			 status);
	if (rc != 0) {
		free(snap);
		snap = NULL;
	}
	pthread_mutex_lock(&c->lock);
	c->done = true;
	c->snap = snap;
	c->len = rc == 0 ? h.len : 0;
	c->base = rc == 0 ? h.base : 0;
	c->sum = rc == 0 ? h.sum : 0;
	snprintf(c->err, sizeof c->err, "%s", err);
	pthread_mutex_unlock(&c->lock);
	ld_evq_kick(c->q);
	return NULL;
}

/* A capture that could not start: reported at the next take. */
static void start_failed(ld_capture *c, const char *what)
{
	pthread_mutex_lock(&c->lock);
	c->done = true;
	c->snap = NULL;
	snprintf(c->err, sizeof c->err, "%s: %s", what, strerror(errno));
	pthread_mutex_unlock(&c->lock);
	ld_evq_kick(c->q);
}

void ld_capture_start(ld_capture *c, ln_node *n)
{
	if (c->busy)
		return;
	c->busy = true;
	c->started_us = ld_mono_us();
	int p[2];
	if (pipe(p) != 0) {
		start_failed(c, "pipe");
		return;
	}
	/* Not inherited by anything else the daemon starts. */
	fcntl(p[0], F_SETFD, FD_CLOEXEC);
	fcntl(p[1], F_SETFD, FD_CLOEXEC);
	pid_t pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		start_failed(c, "fork");
		return;
	}
	if (pid == 0) {
		close(p[0]);
		child_run(p[1], n);
	}
	close(p[1]);
	c->fork_us = ld_mono_us() - c->started_us;
	c->pid = pid;
	c->fd = p[0];
	c->th_live = pthread_create(&c->th, NULL, reader_main, c) == 0;
	if (!c->th_live) {
		kill(pid, SIGKILL);
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		close(p[0]);
		c->fd = -1;
		start_failed(c, "pthread_create");
	}
}

bool ld_capture_take(ld_capture *c, ln_event *ev, uint64_t *ms,
		     uint64_t *fork_ms, char *err, size_t errlen)
{
	if (!c->busy)
		return false;
	pthread_mutex_lock(&c->lock);
	bool done = c->done;
	pthread_mutex_unlock(&c->lock);
	if (!done)
		return false;
	if (c->th_live)
		pthread_join(c->th, NULL);
	c->th_live = false;
	*ev = (ln_event){.type = LN_EV_SNAPSHOT,
			 .snap = c->snap,
			 .snap_len = c->len,
			 .snap_base = c->base,
			 .snap_sum = c->sum};
	*ms = (ld_mono_us() - c->started_us) / 1000;
	*fork_ms = c->fork_us / 1000;
	snprintf(err, errlen, "%s", c->err);
	if (c->snap != NULL)
		c->taken++;
	else
		c->failed++;
	c->snap = NULL;
	c->done = false;
	c->busy = false;
	return true;
}

void ld_capture_destroy(ld_capture *c)
{
	if (c->busy) {
		pthread_mutex_lock(&c->lock);
		bool done = c->done;
		pthread_mutex_unlock(&c->lock);
		if (!done && c->pid > 0)
			kill(c->pid, SIGKILL);
		if (c->th_live)
			pthread_join(c->th, NULL);
		c->th_live = false;
		free(c->snap);
		c->snap = NULL;
		c->busy = false;
	}
	pthread_mutex_destroy(&c->lock);
}
