/* take_lease: take a named lease and do work only while it is held.
 *
 *   take_lease ENDPOINTS NAME [SECONDS]
 *
 * Opens a client and a session, acquires NAME (waiting up to 5 s for the
 * current holder), then does one "unit of work" every 200 ms for SECONDS
 * (default 10), each one only after lc_session_held says the lease is still
 * ours. The session renews the lease in the background; its callback
 * reports JEOPARDY (renewals failing: stop starting new work) and LOST (the
 * deadline passed or the cell dropped the lease: stop for good). The fencing
 * token goes with every unit of work, so a downstream service can refuse a
 * stale holder (see fenced_store.c). */
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "lockclient.h"

/* The last state the session reported (written by its monitor thread). */
static atomic_int state = LC_LEASE_HELD;

static void on_lease(lc_lease_state st, const char *name, uint64_t token,
		     void *arg)
{
	(void)arg;
	fprintf(stderr, "lease %s (token %" PRIu64 "): %s\n", name, token,
		lc_lease_state_name(st));
	atomic_store(&state, (int)st);
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s ENDPOINTS NAME [SECONDS]\n",
			argv[0]);
		return 2;
	}
	const char *name = argv[2];
	int seconds = argc > 3 ? atoi(argv[3]) : 10;

	lc_client *c;
	int rv = lc_open(argv[1], NULL, &c);
	if (rv != LC_OK) {
		fprintf(stderr, "lc_open: %s\n", lc_strerror(rv));
		return 1;
	}
	lc_session_options so;
	lc_session_options_init(&so);
	so.callback = on_lease;
	lc_sess *s;
	if ((rv = lc_session_open(c, &so, &s)) != LC_OK) {
		fprintf(stderr, "lc_session_open: %s\n", lc_strerror(rv));
		lc_close(c);
		return 1;
	}

	/* 2 s TTL, wait up to 5 s in the queue. */
	lc_lease l;
	rv = lc_session_acquire(s, name, 2000, 5000, "take_lease", 10, &l);
	if (rv != LC_OK) {
		fprintf(stderr, "cannot take %s: %s (%s)\n", name,
			lc_strerror(rv), lc_last_error());
		lc_session_close(s);
		lc_close(c);
		return 1;
	}
	printf("took %s token=%" PRIu64 "\n", name, l.token);

	int status = 0;
	uint64_t end = lc_now_us() + (uint64_t)seconds * 1000000u;
	unsigned done = 0;
	while (lc_now_us() < end) {
		int st = atomic_load(&state);
		if (st == LC_LEASE_LOST) {
			fprintf(stderr, "lost %s: stopping\n", name);
			status = 1;
			break;
		}
		/* JEOPARDY: do not start new work; it may come back (HELD)
		 * or end (LOST). lc_session_held is the authority: it is
		 * computed from the deadline now, not reported later. */
		if (st == LC_LEASE_JEOPARDY || !lc_session_held(s, name)) {
			sleep_ms(50);
			continue;
		}
		printf("work unit %u under token %" PRIu64 "\n", ++done,
		       l.token);
		fflush(stdout);
		sleep_ms(200);
	}
	lc_session_close(s); /* releases the lease (reported RELEASED) */
	lc_close(c);
	return status;
}
